"""The 2015 prototype's node map (``esgf_nodemgr_map.json``): import, export, detection.

The prototype kept one JSON object per federation::

    {"supernodes":  [{"id": "1", "hostname": "a.org", "health": "good"}, ...],
     "membernodes": [{"supernode": "1", "status": "OK",
                      "members": [{"id": "5", "hostname": "m.org", "project": "CMIP6",
                                   "standby": false, "health": "good"}, ...]}, ...],
     "links":       [{"from": "1", "to": "2", "status": "up", "speed": 0.0154}, ...],
     "total_supernodes": 4, "total_membernodes": 2, "create_timestamp": 1461172342.1}

When a supernode went down the prototype copied each of its members into the entry of an
adopting supernode, marked ``"temp_assign": true`` with ``"prev_owner": <home id>``.

Mapping (prototype -> ours; ``to_legacy`` does the reverse)
============================================================

====================================  ======================================================
prototype                             ours
====================================  ======================================================
``supernodes[i]`` (list order)        ``roster.supernodes[i]``: id kept as given ("11"),
                                      ``address`` = hostname, default port
(all ids, members included)           ``roster.next_id`` = 1 + highest numeric id; version 1;
                                      default capacity; no retired ids
``supernodes[i].health``              ``decision.health[id]`` (``unverified`` -> ``new``)
``membernodes[k].members[j]``         ``entries[k.supernode].members``: id kept, ``since`` 0;
(not ``temp_assign``)                 every supernode gets an entry (version 1)
a ``temp_assign`` copy in the         ``decision.placement[hostname] = <adopter id>``; the
entry of supernode A, with            member itself lives in the entry of ``prev_owner`` (from
``prev_owner`` H                      the copy when H's entry does not list it)
``members[j].health`` in the entry    ``reports[S].members[hostname]`` (``unverified`` ->
of supernode S (original or copy)     ``new``): S is the node that listed it
``links[k].status`` (not ``up``)      ``decision.links[pair(from, to)]``; pairs the list
                                      lacks are ``unverified``
``links[k].speed`` (seconds)          ``reports[a].rtt_ms[b]`` with ``(a, b) = pair(from, to)``,
                                      ``round(speed * 1000, 3)`` (microseconds); a negative
                                      speed (the prototype's ``-1.0``, "never measured") is
                                      left out of ``rtt_ms``
(the map as a whole)                  ``decision``: round 0, leader ``""`` ("imported"),
                                      summary ``IMPORT_SUMMARY``; no decision without
                                      supernodes; epoch and timeline empty
``membernodes[k].status``,            not kept
``create_timestamp``, totals          (``LegacyImport.create_timestamp`` keeps the timestamp;
                                      totals are checked, see below)
====================================  ======================================================

Export writes one ``membernodes`` entry per roster supernode (roster order; members sorted by
hostname, then the ``temp_assign`` copies that supernode holds, sorted by hostname), one link per
unordered pair in roster order oriented as ``pair`` orders it (``speed`` =
``round(rtt_ms / 1000, 6)``, ``-1.0`` when unknown or unreachable, ``unverified`` when either
end has no decided health), health strings from the decision (``new`` when none), the totals,
and ``create_timestamp`` when the caller passes one (the core has no clock).

Normalization: ``to_legacy(from_legacy(x)) == normalize(x)`` where ``normalize``
 - drops ``membernodes[k].status``, unknown keys and ``temp_assign: false`` / its ``prev_owner``;
 - adds missing defaults: ``members`` -> ``[]``, ``standby`` -> ``false``, ``health`` -> ``new``,
   an entry for a supernode ``membernodes`` lacks, an ``unverified`` link (speed ``-1.0``) for a
   pair ``links`` lacks, and the original of a ``temp_assign`` copy in its ``prev_owner``'s entry;
 - rewrites ``unverified`` health as ``new``, negative speeds as ``-1.0`` and speeds to the
   microsecond (``round(round(s * 1000, 3) / 1000, 6)``);
 - orders ``membernodes`` and ``links`` as export writes them (``from`` the lower id);
 - sets the totals from the lists and drops ``create_timestamp`` unless passed back in.
And ``from_legacy(to_legacy(from_legacy(x))) == from_legacy(x)`` exactly.

What the prototype format cannot hold (``export_losses`` lists it for a given map): ports and
addresses, retired ids and ``next_id`` (the prototype derives ids from counts), capacity,
epoch, versions, timeline, ``since``, promoted standbys and placements onto them, ``unplaced``.

Accepted and rejected
=====================
Tolerated: a ``membernodes`` item without ``members`` (``node_mgr_map.super.json``), missing
``standby``/``health``, unknown keys (warned about), links in any orientation and order,
``init`` links, a ``temp_assign`` copy whose original is missing. Totals that disagree with
the lists, or are missing, are *warnings* (``LegacyImport.warnings``; ``esgf-nm map check``
prints them) because the prototype's own counters drifted and nothing depends on them.

Rejected with ``MapFormatError`` naming the JSON path: wrong types; ids or hostnames that are
empty or not ours (ids: ASCII letters, digits, ``.-_``); a supernode id or hostname used twice;
a member id used by another node; a member listed twice (a ``temp_assign`` copy aside); two
copies of one member; a copy whose ``prev_owner`` is unknown, is the adopter itself, or
disagrees with the entry holding the original, or whose fields differ from the original; a
``membernodes`` item for an unknown supernode or listed twice; a link to an unknown supernode,
to itself, or given twice; an unknown health or link status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import view
from esgf_nodemgr.core.errors import MapFormatError
from esgf_nodemgr.core.parse import Reader, describe

#: Summary of the decision an import creates (round 0, leader "").
IMPORT_SUMMARY = "imported from a prototype map"
#: Health the prototype wrote that we spell differently.
_HEALTH_ALIASES = {"unverified": "new"}
#: ``speed`` the prototype wrote for a link never measured.
UNKNOWN_SPEED = -1.0

_TOP_KEYS = ("supernodes", "membernodes", "links", "total_supernodes", "total_membernodes",
             "create_timestamp")


@dataclass(frozen=True)
class LegacyImport:
    """The result of reading a prototype map."""

    map: nm.NodeMap
    #: Things tolerated but worth telling (totals that disagree, unknown keys ignored…).
    warnings: Tuple[str, ...] = ()
    #: The prototype's ``create_timestamp`` (seconds since 1970), when present.
    create_timestamp: Optional[float] = None


@dataclass(frozen=True)
class _Listing:
    """One member object as it appears in a ``membernodes`` entry."""

    path: str
    supernode: str
    member: nm.Member
    health: str
    copy: bool
    prev_owner: str


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------
def detect_format(value: Any) -> str:
    """``"ours"`` or ``"legacy"``; raise ``MapFormatError`` when ``value`` is neither."""
    if isinstance(value, dict):
        if "format" in value or "roster" in value:
            return "ours"
        if any(k in value for k in ("supernodes", "membernodes", "links")):
            return "legacy"
        raise MapFormatError(["$: not a node map: expected 'format' and 'roster' (esgf-nodemgr)"
                              " or 'supernodes', 'membernodes' and 'links' (prototype)"])
    raise MapFormatError([f"$: not a node map: expected an object, got {describe(value)}"])


def load_any(value: Any) -> nm.NodeMap:
    """Parse a decoded JSON map in either format."""
    if detect_format(value) == "ours":
        return nm.map_from_json(value)
    return from_legacy(value)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------
def _node_id(r: Reader, value: Any, path: str) -> str:
    text = r.string(value, path, max_len=64)
    if text and not all(c.isascii() and (c.isalnum() or c in ".-_") for c in text):
        r.problem(path, f"node id may hold ASCII letters, digits, '.', '-' and '_' only; "
                  f"got {text!r}")
    return text


def _hostname(r: Reader, value: Any, path: str) -> str:
    text = r.string(value, path, max_len=nm.MAX_HOSTNAME)
    if text and (any(c.isspace() for c in text) or "/" in text):
        r.problem(path, f"not a hostname: {text!r}")
    return text


def _health(r: Reader, value: Any, path: str, allowed: Sequence[str]) -> str:
    text = r.choice(value, path, (*allowed, *_HEALTH_ALIASES))
    return _HEALTH_ALIASES.get(text, text)


def _keys(r: Reader, warnings: List[str], o: Mapping[str, Any], path: str,
          required: Sequence[str], optional: Sequence[str]) -> None:
    for key in required:
        if key not in o:
            r.problem(f"{path}.{key}", "is required")
    for key in o:
        if key not in required and key not in optional:
            warnings.append(f"{path}.{key}: unknown key, ignored")


def _speed_to_ms(seconds: float) -> Optional[float]:
    return None if seconds < 0 else round(seconds * 1000.0, 3)


def _ms_to_speed(ms: Optional[float]) -> float:
    return UNKNOWN_SPEED if ms is None else round(ms / 1000.0, 6)


def read_legacy(value: Any) -> LegacyImport:
    """Import a decoded prototype map; raise ``MapFormatError`` listing every problem."""
    r = Reader()
    warnings: List[str] = []
    o = r.obj(value, "$")
    _keys(r, warnings, o, "$", ["supernodes", "membernodes", "links"], _TOP_KEYS)

    # -- supernodes --------------------------------------------------------------------------
    supernodes: List[nm.Supernode] = []
    health: Dict[str, str] = {}
    where_id: Dict[str, str] = {}
    where_host: Dict[str, str] = {}
    for i, v in enumerate(r.array(o.get("supernodes", []), "$.supernodes")):
        path = f"$.supernodes[{i}]"
        so = r.obj(v, path)
        _keys(r, warnings, so, path, ["id", "hostname"], ["health"])
        sid = _node_id(r, so.get("id"), f"{path}.id")
        host = _hostname(r, so.get("hostname"), f"{path}.hostname")
        state = _health(r, so.get("health", "new"), f"{path}.health", nm.SUPERNODE_HEALTH)
        if sid and sid in where_id:
            r.problem(f"{path}.id", f"id {sid!r} used twice (also {where_id[sid]})")
            continue
        if host and host in where_host:
            r.problem(f"{path}.hostname",
                      f"hostname {host!r} listed twice (also {where_host[host]})")
            continue
        where_id[sid] = path
        where_host[host] = path
        supernodes.append(nm.Supernode(id=sid, hostname=host, address=host))
        health[sid] = state
    known = set(where_id)

    # -- membernodes -------------------------------------------------------------------------
    listings: List[_Listing] = []
    seen_entry: Dict[str, str] = {}
    for k, v in enumerate(r.array(o.get("membernodes", []), "$.membernodes")):
        path = f"$.membernodes[{k}]"
        eo = r.obj(v, path)
        _keys(r, warnings, eo, path, ["supernode"], ["members", "status"])
        sid = _node_id(r, eo.get("supernode"), f"{path}.supernode")
        if sid and sid not in known:
            r.problem(f"{path}.supernode", f"unknown supernode {sid!r}")
        elif sid in seen_entry:
            r.problem(f"{path}.supernode",
                      f"supernode {sid!r} has a second entry (also {seen_entry[sid]})")
        seen_entry.setdefault(sid, path)
        for j, mv in enumerate(r.array(eo.get("members", []), f"{path}.members")):
            listing = _read_member(r, warnings, mv, f"{path}.members[{j}]", sid)
            if listing is not None:
                listings.append(listing)

    placement, members = _resolve_members(r, listings, known, where_host)

    # -- links -------------------------------------------------------------------------------
    links: Dict[Tuple[str, str], str] = {}
    rtt: Dict[str, Dict[str, Optional[float]]] = {}
    where_link: Dict[Tuple[str, str], str] = {}
    for k, v in enumerate(r.array(o.get("links", []), "$.links")):
        path = f"$.links[{k}]"
        lo = r.obj(v, path)
        _keys(r, warnings, lo, path, ["from", "to", "status"], ["speed"])
        a = _node_id(r, lo.get("from"), f"{path}.from")
        b = _node_id(r, lo.get("to"), f"{path}.to")
        status = r.choice(lo.get("status"), f"{path}.status", nm.LINK_STATUS)
        speed = r.number(lo.get("speed", UNKNOWN_SPEED), f"{path}.speed")
        bad = False
        for end, key in ((a, "from"), (b, "to")):
            if end and end not in known:
                r.problem(f"{path}.{key}", f"unknown supernode {end!r}")
                bad = True
        if a and a == b:
            r.problem(path, f"link from supernode {a!r} to itself")
            bad = True
        if bad or not a or not b:
            continue
        key2 = nm.pair(a, b)
        if key2 in where_link:
            r.problem(path, f"second link between {key2[0]!r} and {key2[1]!r} (also "
                      f"{where_link[key2]})")
            continue
        where_link[key2] = path
        if status != "up":
            links[key2] = status
        ms = _speed_to_ms(speed)
        if ms is not None:
            rtt.setdefault(key2[0], {})[key2[1]] = ms

    roster_links = nm.Roster(supernodes=tuple(supernodes)).links()
    for a, b in roster_links:
        if (a, b) not in where_link:
            links[(a, b)] = "unverified"
            warnings.append(f"$.links: no link between supernodes {a!r} and {b!r}; taken as "
                            f"unverified")

    # -- totals and timestamp ----------------------------------------------------------------
    _check_total(r, warnings, o, "total_supernodes", len(supernodes), "supernodes")
    _check_total(r, warnings, o, "total_membernodes", len(members), "members")
    stamp: Optional[float] = None
    if o.get("create_timestamp") is not None:
        stamp = r.number(o.get("create_timestamp"), "$.create_timestamp", minimum=0)

    r.raise_if_problems()
    return LegacyImport(map=_build(supernodes, health, members, listings, placement, links, rtt),
                        warnings=tuple(warnings), create_timestamp=stamp)


def _read_member(r: Reader, warnings: List[str], value: Any, path: str,
                 supernode: str) -> Optional[_Listing]:
    mo = r.obj(value, path)
    _keys(r, warnings, mo, path, ["id", "hostname", "project"],
          ["standby", "health", "temp_assign", "prev_owner"])
    if not mo:
        return None
    host = _hostname(r, mo.get("hostname"), f"{path}.hostname")
    member = nm.Member(
        id=_node_id(r, mo.get("id"), f"{path}.id"),
        hostname=host,
        project=r.string(mo.get("project"), f"{path}.project", max_len=128),
        standby=r.boolean(mo.get("standby", False), f"{path}.standby"),
    )
    state = _health(r, mo.get("health", "new"), f"{path}.health", nm.MEMBER_HEALTH)
    copy = r.boolean(mo.get("temp_assign", False), f"{path}.temp_assign")
    prev_owner = ""
    if copy:
        if "prev_owner" not in mo:
            r.problem(f"{path}.prev_owner", "is required for a temp_assign copy")
        else:
            prev_owner = _node_id(r, mo.get("prev_owner"), f"{path}.prev_owner")
    elif "prev_owner" in mo:
        warnings.append(f"{path}.prev_owner: ignored (temp_assign is false)")
    return _Listing(path=path, supernode=supernode, member=member, health=state, copy=copy,
                    prev_owner=prev_owner)


def _resolve_members(r: Reader, listings: Sequence[_Listing], known: AbstractSet[str],
                     supernode_hosts: Mapping[str, str]
                     ) -> Tuple[Dict[str, str], Dict[str, Tuple[str, nm.Member]]]:
    """Pair copies with originals: ``(placement, {hostname: (home id, member)})``."""
    originals: Dict[str, _Listing] = {}
    for x in listings:
        if x.copy or not x.member.hostname:
            continue
        first = originals.get(x.member.hostname)
        if first is not None:
            r.problem(f"{x.path}.hostname", f"member {x.member.hostname!r} listed twice (also "
                      f"{first.path})")
            continue
        originals[x.member.hostname] = x
    members: Dict[str, Tuple[str, nm.Member]] = {
        h: (x.supernode, x.member) for h, x in originals.items()}
    placement: Dict[str, str] = {}
    copies: Dict[str, _Listing] = {}
    for x in listings:
        if not x.copy or not x.member.hostname or not x.prev_owner:
            continue
        host = x.member.hostname
        where = f"{x.path}.prev_owner"
        if host in copies:
            r.problem(f"{x.path}.hostname", f"member {host!r} has a second temp_assign copy "
                      f"(also {copies[host].path})")
            continue
        copies[host] = x
        if x.prev_owner not in known:
            r.problem(where, f"unknown supernode {x.prev_owner!r}")
            continue
        if x.prev_owner == x.supernode:
            r.problem(where, f"a copy cannot be adopted by its own home {x.prev_owner!r}")
            continue
        original = originals.get(host)
        if original is not None:
            if original.supernode != x.prev_owner:
                r.problem(where, f"says {x.prev_owner!r} but {original.path} lists {host!r} "
                          f"under supernode {original.supernode!r}")
                continue
            if original.member != x.member:
                r.problem(x.path, f"temp_assign copy of {host!r} differs from the original at "
                          f"{original.path}")
                continue
        else:
            members[host] = (x.prev_owner, x.member)
        placement[host] = x.supernode

    # Ids: unique over supernodes and (distinct) members.
    owner: Dict[str, str] = {sid: f"supernode {sid}" for sid in known}
    for x in listings:
        host = x.member.hostname
        if host in supernode_hosts:
            r.problem(f"{x.path}.hostname", f"{host!r} is a supernode (at "
                      f"{supernode_hosts[host]})")
        mid = x.member.id
        if not mid:
            continue
        prev = owner.get(mid)
        if prev is not None and prev != f"member {host}":
            r.problem(f"{x.path}.id", f"id {mid!r} of member {host!r} is already used by {prev}")
        owner.setdefault(mid, f"member {host}")
    return placement, members


def _check_total(r: Reader, warnings: List[str], o: Mapping[str, Any], key: str, count: int,
                 what: str) -> None:
    if key not in o:
        warnings.append(f"$.{key}: missing (the lists hold {count} {what})")
        return
    total = r.integer(o.get(key), f"$.{key}", minimum=0)
    if total != count and isinstance(o.get(key), int):
        warnings.append(f"$.{key}: says {total} but the lists hold {count} {what}")


def _build(supernodes: Sequence[nm.Supernode], health: Mapping[str, str],
           members: Mapping[str, Tuple[str, nm.Member]], listings: Sequence[_Listing],
           placement: Mapping[str, str], links: Mapping[Tuple[str, str], str],
           rtt: Mapping[str, Mapping[str, Optional[float]]]) -> nm.NodeMap:
    ids = [s.id for s in supernodes] + [mem.id for _, mem in members.values()]
    highest = max((n for n in (nm.id_number(i) for i in ids) if n is not None), default=0)
    roster = nm.Roster(version=1, supernodes=tuple(supernodes), next_id=highest + 1)
    by_home: Dict[str, List[nm.Member]] = {s.id: [] for s in supernodes}
    for home, mem in members.values():
        by_home[home].append(mem)
    entries = {sid: nm.Entry(supernode=sid, version=1,
                             members=tuple(sorted(ms, key=lambda m: m.hostname)))
               for sid, ms in by_home.items()}
    seen: Dict[str, Dict[str, str]] = {}
    for x in listings:
        seen.setdefault(x.supernode, {})[x.member.hostname] = x.health
    for host, (home, _) in members.items():
        # A copy whose original is missing: export writes the original back with "new".
        seen.setdefault(home, {}).setdefault(host, "new")
    reports = {}
    for sid in by_home:
        if seen.get(sid) or rtt.get(sid):
            reports[sid] = nm.Report(supernode=sid, version=1, members=dict(seen.get(sid, {})),
                                     rtt_ms=dict(rtt.get(sid, {})))
    decision = None
    if supernodes:
        decision = nm.Decision(round=0, leader="", health=dict(health), links=dict(links),
                               placement=dict(placement), summary=IMPORT_SUMMARY)
    return nm.NodeMap(roster=roster, entries=entries, reports=reports, decision=decision)


def from_legacy(value: Any) -> nm.NodeMap:
    """Import a decoded prototype map (see ``read_legacy``)."""
    return read_legacy(value).map


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
def _health_of(m: nm.NodeMap, sid: str) -> str:
    return view.supernode_health(m, sid)


def _link_status(m: nm.NodeMap, a: str, b: str) -> str:
    d = m.decision
    # A supernode the decision never judged (added after it) has unverified links, not "up".
    if d is None or a not in d.health or b not in d.health:
        return "unverified"
    return d.link_status(a, b)


def _rtt(m: nm.NodeMap, a: str, b: str) -> Optional[float]:
    for x, y in ((a, b), (b, a)):
        value = m.report(x).rtt_ms.get(y)
        if value is not None:
            return value
    return None


def _member_json(mem: nm.Member, health: str) -> Dict[str, Any]:
    return {"id": mem.id, "hostname": mem.hostname, "project": mem.project,
            "standby": mem.standby, "health": health}


def to_legacy(m: nm.NodeMap, *, create_timestamp: Optional[float] = None) -> Dict[str, Any]:
    """The prototype's map for ``m`` (see the module docstring; ``export_losses`` says what
    does not fit). Raises ``MapFormatError`` when members live under a supernode that is not
    in the roster: the prototype format has nowhere to put them."""
    ids = list(m.roster.ids)
    claims = view.member_claims(m)
    homeless = sorted({home for home, _ in claims.values() if home not in ids},
                      key=nm.id_sort_key)
    if homeless:
        raise MapFormatError([
            f"$.entries[{home!r}]: supernode {home!r} is not in the roster; the prototype "
            f"format cannot hold its members (run 'esgf-nm map generate' to move them)"
            for home in homeless])
    placement = dict(m.decision.placement) if m.decision is not None else {}
    own: Dict[str, List[Dict[str, Any]]] = {sid: [] for sid in ids}
    adopted: Dict[str, List[Dict[str, Any]]] = {sid: [] for sid in ids}
    for host in sorted(claims):
        home, mem = claims[host]
        own[home].append(_member_json(mem, m.report(home).members.get(host, "new")))
        target = placement.get(host)
        if target is not None and target in adopted and target != home:
            copy = _member_json(mem, m.report(target).members.get(host, "new"))
            copy.update({"temp_assign": True, "prev_owner": home})
            adopted[target].append(copy)
    out: Dict[str, Any] = {
        "supernodes": [{"id": s.id, "hostname": s.hostname, "health": _health_of(m, s.id)}
                       for s in m.roster.supernodes],
        "membernodes": [{"supernode": sid, "members": own[sid] + adopted[sid]} for sid in ids],
        "links": [{"from": a, "to": b, "status": _link_status(m, a, b),
                   "speed": _ms_to_speed(_rtt(m, a, b))} for a, b in m.roster.links()],
        "total_supernodes": len(ids),
        "total_membernodes": len(claims),
    }
    if create_timestamp is not None:
        out["create_timestamp"] = create_timestamp
    return out


def export_losses(m: nm.NodeMap) -> List[str]:
    """What ``to_legacy(m)`` leaves out, one sentence each (empty when nothing is lost)."""
    losses: List[str] = []
    r = m.roster
    custom = [s.hostname for s in r.supernodes
              if s.address != s.hostname or s.port != nm.DEFAULT_PORT]
    if custom:
        losses.append(f"addresses/ports of supernodes {', '.join(custom)}")
    if r.retired:
        losses.append("retired supernode ids " + ", ".join(
            f"{x.id} ({x.hostname})" for x in r.retired) + ": the prototype may reuse them")
    used = [n for n in (nm.id_number(i) for i in m.used_ids()) if n is not None]
    if r.next_id > max(used, default=0) + 1:
        losses.append(f"next_id {r.next_id} (ids below it may be reused)")
    if r.capacity != nm.DEFAULT_CAPACITY:
        losses.append(f"capacity {r.capacity}")
    if m.epoch.value is not None:
        losses.append("the epoch")
    if m.timeline:
        losses.append(f"the timeline ({len(m.timeline)} items)")
    claims = view.member_claims(m)
    stale = len(m.all_members()) - len(claims)
    if stale:
        losses.append(f"{stale} stale duplicate member claim(s)")
    moved = [h for h, (_, mem) in claims.items()
             if mem.address != mem.hostname or mem.port != nm.DEFAULT_PORT]
    if moved:
        losses.append(f"addresses/ports of members {', '.join(sorted(moved))}")
    d = m.decision
    if d is not None:
        if d.promoted:
            losses.append(f"promoted standbys {', '.join(d.promoted)}")
        off = sorted(h for h, t in d.placement.items()
                     if h in claims and r.by_id(t) is None)
        if off:
            losses.append(f"placement of {', '.join(off)} on promoted standbys")
        if d.unplaced:
            losses.append(f"the list of unplaced members ({', '.join(d.unplaced)})")
    return losses
