"""Redistribution: who serves the members of supernodes that are down.

A pure function of the map, the new health and the supernodes the leader heard from in the
round: the same inputs give the same placement on every node. Rules:

1. Members of supernodes that are up are served by their own supernode (no placement).
2. A member of a down supernode keeps its previous placement while that target is still up
   and within capacity (no needless moves).
3. Others go, in (home id, hostname) order, to the live supernode with the most free
   capacity (ties by roster order), first among those whose observations reached the leader
   this round (``heard``), then among the other live ones. Capacity counts own members plus
   adopted ones. A live supernode the leader did not hear from is one every voter already
   sees as down or suspect (or whose observations were lost): often one that crashed and is
   not yet declared down. A member placed there would wait, with its dead server, for the
   next decision to place it again (seen in the simulator: 3.4 s at N=50).
4. When no supernode has room, standby members (served by a live node, sorted by hostname) are
   promoted and take members up to the same capacity.
5. Whatever still has no room is listed as unplaced (never dropped, never placed twice); the
   next decision retries.

When a supernode comes back its members simply drop out of the placement: they return home.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Dict, List, Mapping, Optional, Tuple

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.view import member_claims


@dataclass(frozen=True)
class Placement:
    placement: Mapping[str, str]
    promoted: Tuple[str, ...]
    unplaced: Tuple[str, ...]


def place(m: nm.NodeMap, health: Mapping[str, str],
          previous: Optional[nm.Decision] = None,
          heard: Optional[AbstractSet[str]] = None) -> Placement:
    """Placement of the members of down supernodes (see the module docstring)."""
    roster_ids = list(m.roster.ids)
    capacity = m.roster.capacity
    down = {i for i in roster_ids if health.get(i, "new") in nm.DOWN_HEALTH}
    live = [i for i in roster_ids if i not in down]
    claims = member_claims(m)  # hostname -> (home id, Member), one claim per hostname

    load: Dict[str, int] = {i: 0 for i in live}
    orphans: List[Tuple[str, nm.Member]] = []
    for home, member in claims.values():
        if home in load:
            load[home] += 1
        elif home in down or home not in roster_ids:
            orphans.append((home, member))
    orphans.sort(key=lambda hm: (nm.id_sort_key(hm[0]), hm[1].hostname))

    prev_place = dict(previous.placement) if previous else {}
    prev_promoted = list(previous.promoted) if previous else []
    placement: Dict[str, str] = {}
    pending: List[Tuple[str, nm.Member]] = []

    # Standbys that may serve: members served by a live node and not themselves orphans.
    orphan_hosts = {mem.hostname for _, mem in orphans}
    standbys = sorted(h for h, (home, mem) in claims.items()
                      if mem.standby and home in load and h not in orphan_hosts)
    promoted: List[str] = [h for h in prev_promoted if h in standbys]
    for h in promoted:
        load[h] = 0

    # Rule 2: keep valid previous placements.
    for home, mem in orphans:
        target = prev_place.get(mem.hostname)
        if target is not None and target in load and load[target] < capacity:
            placement[mem.hostname] = target
            load[target] += 1
        else:
            pending.append((home, mem))

    # Rule 3: most free capacity first, among supernodes (then promoted standbys).
    order = {i: n for n, i in enumerate(live)}
    first = live if heard is None else [i for i in live if i in heard]
    unplaced: List[str] = []
    for _home, mem in pending:
        target = _best(load, order, capacity, first)
        if target is None and heard is not None:
            target = _best(load, order, capacity, live)
        if target is None:
            target = _best(load, order, capacity, promoted)
        if target is None:
            # Rule 4: promote the next standby.
            candidates = [h for h in standbys if h not in promoted]
            if candidates:
                promoted.append(candidates[0])
                load[candidates[0]] = 0
                target = candidates[0]
        if target is None:
            unplaced.append(mem.hostname)
        else:
            placement[mem.hostname] = target
            load[target] += 1

    # A promoted standby that serves nobody any more is released.
    used = set(placement.values())
    promoted = [h for h in promoted if h in used]
    return Placement(placement=placement, promoted=tuple(promoted),
                     unplaced=tuple(sorted(unplaced)))


def _best(load: Mapping[str, int], order: Mapping[str, int], capacity: int,
          among: List[str]) -> Optional[str]:
    best: Optional[str] = None
    for t in among:
        if t not in load or load[t] >= capacity:
            continue
        if best is None or (load[t], order.get(t, 1 << 30), t) < (
                load[best], order.get(best, 1 << 30), best):
            best = t
    return best
