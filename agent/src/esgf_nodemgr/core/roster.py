"""Building the roster and administering the map from an ordered list of supernodes.

Ids are stable per hostname forever: a hostname that was ever a supernode keeps its id (even
after removal and return), and a new hostname gets an id never used before by any node —
``next_id`` is a high-water mark above every numeric id ever seen, including member ids and
ids imported from prototype maps (which may have gaps, such as "11").

These are administrator operations (the Ansible module and ``esgf-nm map``): they may rewrite
entries only on a map that is not running yet. In a running federation only a supernode writes
its own entry, and the admin changes just the roster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Optional, Sequence

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import RosterError


@dataclass(frozen=True)
class SupernodeSpec:
    """A supernode as the inventory describes it."""

    hostname: str
    address: Optional[str] = None
    port: int = nm.DEFAULT_PORT


def _next_free_id(next_id: int, used: Iterable[str]) -> int:
    highest = max((n for n in (nm.id_number(i) for i in used) if n is not None), default=0)
    return max(next_id, highest + 1)


def build_roster(current: nm.Roster, specs: Sequence[SupernodeSpec], *,
                 used_ids: Iterable[str] = (), capacity: Optional[int] = None) -> nm.Roster:
    """The roster for ``specs`` (in order), keeping every id ``current`` already assigned.

    Supernodes of ``current`` that are not in ``specs`` become retired (their id stays
    reserved). The version goes up by one when anything changed, and stays otherwise, so that
    building twice from the same inventory is a no-op.
    """
    seen: Dict[str, int] = {}
    for i, spec in enumerate(specs):
        if not spec.hostname:
            raise RosterError(f"supernode #{i + 1} has an empty hostname")
        if spec.hostname in seen:
            raise RosterError(f"supernode {spec.hostname!r} is listed twice "
                              f"(#{seen[spec.hostname] + 1} and #{i + 1})")
        if not 1 <= spec.port <= 65535:
            raise RosterError(f"supernode {spec.hostname!r}: port {spec.port} out of range")
        seen[spec.hostname] = i
    if capacity is not None and capacity < 1:
        raise RosterError(f"capacity must be at least 1, got {capacity}")

    known: Dict[str, str] = {s.hostname: s.id for s in current.supernodes}
    known.update({r.hostname: r.id for r in current.retired})
    used = set(used_ids) | {s.id for s in current.supernodes} | {r.id for r in current.retired}
    next_id = _next_free_id(current.next_id, used)

    supernodes: List[nm.Supernode] = []
    for spec in specs:
        node_id = known.get(spec.hostname)
        if node_id is None:
            node_id = str(next_id)
            next_id += 1
        supernodes.append(nm.Supernode(id=node_id, hostname=spec.hostname,
                                       address=spec.address or spec.hostname, port=spec.port))
    active = {s.hostname for s in supernodes}
    retired = [r for r in current.retired if r.hostname not in active]
    retired += [nm.RetiredSupernode(id=s.id, hostname=s.hostname)
                for s in current.supernodes if s.hostname not in active]
    retired.sort(key=lambda r: nm.id_sort_key(r.id))

    candidate = nm.Roster(version=current.version, supernodes=tuple(supernodes),
                          retired=tuple(retired), next_id=next_id,
                          capacity=capacity if capacity is not None else current.capacity)
    if candidate == current:
        return current
    return replace(candidate, version=current.version + 1)


def generate(specs: Sequence[SupernodeSpec], existing: Optional[nm.NodeMap] = None, *,
             capacity: Optional[int] = None) -> nm.NodeMap:
    """A map whose roster is ``specs``, keeping everything ``existing`` knew.

    Members are never dropped: members of a supernode that leaves the roster move to the
    remaining supernodes, least loaded first (ties by roster order), keeping their ids.
    """
    base = existing or nm.NodeMap()
    roster = build_roster(base.roster, specs, used_ids=base.used_ids(), capacity=capacity)
    result = replace(base, roster=roster)
    removed = [r.id for r in roster.retired if result.entries.get(r.id) and
               result.entries[r.id].members]
    if removed:
        result = _move_members(result, removed)
    for s in roster.supernodes:
        if s.id not in result.entries:
            result = result.with_entry(nm.Entry(supernode=s.id))
    return result


def _move_members(m: nm.NodeMap, from_ids: Sequence[str]) -> nm.NodeMap:
    targets = list(m.roster.ids)
    moving = [mem for sid in sorted(from_ids, key=nm.id_sort_key)
              for mem in m.entries[sid].members]
    if moving and not targets:
        raise RosterError(f"cannot remove every supernode: {len(moving)} member(s) "
                          f"({', '.join(x.hostname for x in moving[:5])}) would have no home")
    load = {t: len(m.entry(t).members) for t in targets}
    entries = {t: list(m.entry(t).members) for t in targets}
    for mem in moving:
        target = min(targets, key=lambda t: (load[t], targets.index(t)))
        entries[target].append(mem)
        load[target] += 1
    result = m
    for t in targets:
        if len(entries[t]) != len(m.entry(t).members):
            old = m.entry(t)
            result = result.with_entry(replace(old, version=old.version + 1, members=tuple(
                sorted(entries[t], key=lambda x: x.hostname))))
    for sid in from_ids:
        old = m.entries[sid]
        result = result.with_entry(replace(old, version=old.version + 1, members=()))
    return result


def add_supernode(m: nm.NodeMap, spec: SupernodeSpec) -> nm.NodeMap:
    """Append one supernode to the roster (``esgf-nm map add-supernode``)."""
    if m.roster.by_hostname(spec.hostname) is not None:
        raise RosterError(f"{spec.hostname!r} is already supernode "
                          f"{m.roster.by_hostname(spec.hostname).id}")  # type: ignore[union-attr]
    current = [SupernodeSpec(s.hostname, s.address, s.port) for s in m.roster.supernodes]
    return generate([*current, spec], m)


def remove_supernode(m: nm.NodeMap, hostname: str, *, move_members: bool = False) -> nm.NodeMap:
    """Remove a supernode from the roster; its id stays reserved.

    Refuses while it still has members unless ``move_members`` (offline maps only).
    """
    sn = m.roster.by_hostname(hostname)
    if sn is None:
        raise RosterError(f"{hostname!r} is not a supernode")
    members = m.entry(sn.id).members
    if members and not move_members:
        raise RosterError(f"supernode {hostname} still serves {len(members)} member(s); move "
                          f"them first")
    rest = [SupernodeSpec(s.hostname, s.address, s.port) for s in m.roster.supernodes
            if s.hostname != hostname]
    return generate(rest, m)
