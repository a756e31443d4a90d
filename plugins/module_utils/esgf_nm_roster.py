# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""Rosters and map documents as the modules see them (pure functions, no IO).

The agent owns the format (``esgf_nodemgr.core.nodemap``); these helpers only read the few
fields a module needs to decide ``changed``, build ``diff`` and choose a starting point. A
roster is the JSON object ``{version, capacity, next_id, supernodes: [{id, hostname, address,
port}], retired: [{id, hostname}]}``.
"""

from __future__ import annotations

OUR_FORMAT = "esgf-nodemgr/map/1"


def is_our_map(doc):
    """Whether ``doc`` (decoded JSON) is a map in our format."""
    return isinstance(doc, dict) and doc.get("format") == OUR_FORMAT and isinstance(doc.get("roster"), dict)


def roster_of(doc):
    """The roster of a map in our format or of a ``{"roster": ...}`` document, else None."""
    if isinstance(doc, dict) and isinstance(doc.get("roster"), dict) and (
            "format" not in doc or doc.get("format") == OUR_FORMAT):
        return doc["roster"]
    return None


def roster_version(roster):
    """The roster's version (0 when absent or not a number)."""
    if not isinstance(roster, dict):
        return 0
    version = roster.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        return 0
    return version


def _supernodes(roster):
    return [s for s in (roster or {}).get("supernodes") or [] if isinstance(s, dict)]


def _retired(roster):
    return [r for r in (roster or {}).get("retired") or [] if isinstance(r, dict)]


def hostnames(roster):
    """Hostnames of the roster's supernodes, in roster order."""
    return [s.get("hostname") for s in _supernodes(roster)]


def retired_hostnames(roster):
    """Hostnames of the roster's retired supernodes."""
    return [r.get("hostname") for r in _retired(roster)]


def ids_by_hostname(roster):
    """``{hostname: id}`` over the supernodes and the retired ones."""
    out = dict((r.get("hostname"), r.get("id")) for r in _retired(roster))
    out.update((s.get("hostname"), s.get("id")) for s in _supernodes(roster))
    return out


def comparable(roster):
    """What makes two rosters the same roster (defaults filled in; order of supernodes kept)."""
    if not isinstance(roster, dict):
        return None
    return {
        "version": roster_version(roster),
        "capacity": roster.get("capacity"),
        "next_id": roster.get("next_id"),
        "supernodes": [(s.get("id"), s.get("hostname"), s.get("address"), s.get("port"))
                       for s in _supernodes(roster)],
        "retired": sorted((r.get("id"), r.get("hostname")) for r in _retired(roster)),
    }


def same_roster(a, b):
    """Whether rosters ``a`` and ``b`` hold the same content."""
    return comparable(a) == comparable(b)


def roster_text(roster):
    """The roster as a few readable lines, for ``diff`` (empty text when there is none)."""
    if not isinstance(roster, dict):
        return ""
    lines = [f"roster version {roster_version(roster)}, capacity {roster.get('capacity')}, "
             f"next id {roster.get('next_id')}"]
    for s in _supernodes(roster):
        address = s.get("address")
        if address and ":" in str(address):
            address = f"[{address}]"
        lines.append("supernode {} {} {}:{}".format(s.get("id"), s.get("hostname"), address, s.get("port")))
    for r in _retired(roster):
        lines.append("retired {} {}".format(r.get("id"), r.get("hostname")))
    return "\n".join(lines) + "\n"


def roster_changes(before, after):
    """``(added, retired)`` hostnames: supernodes new in ``after``, and newly retired ones."""
    old = set(hostnames(before))
    new = hostnames(after)
    added = [h for h in new if h not in old]
    old_retired = set(retired_hostnames(before))
    retired = [h for h in retired_hostnames(after) if h not in old_retired]
    return added, retired


def starting_map(dest_doc, live_roster):
    """The map to build on (``--existing``): ``dest_doc`` with the live roster when it is newer.

    ``dest_doc`` is the decoded map file (our format) or None; ``live_roster`` the running
    agent's roster or None. The roster with the higher version wins (the agent's on a tie: it is
    what the federation runs), ``next_id`` never goes down, so ids stay stable and are never
    reused. Returns the map document, or None when there is nothing to start from.
    """
    if live_roster is None:
        return dest_doc
    if dest_doc is None:
        return {"format": OUR_FORMAT, "roster": live_roster}
    dest_roster = roster_of(dest_doc)
    out = dict(dest_doc)
    if dest_roster is None or roster_version(live_roster) >= roster_version(dest_roster):
        roster = dict(live_roster)
        if dest_roster is not None:
            roster["next_id"] = max(_int(live_roster.get("next_id")), _int(dest_roster.get("next_id")))
            # Retired hostnames keep their ids, whichever side remembers them.
            known = set(r.get("hostname") for r in _retired(live_roster)) | set(hostnames(live_roster))
            used = set(ids_by_hostname(live_roster).values())
            extra = [r for r in _retired(dest_roster)
                     if r.get("hostname") not in known and r.get("id") not in used]
            if extra:
                roster["retired"] = _retired(live_roster) + extra
        out["roster"] = roster
    return out


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
