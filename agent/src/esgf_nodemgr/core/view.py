"""The derived view of a map: who is a member, who serves whom, and how healthy everyone is.

Nothing here is stored; every node derives the same view from the same map. A hostname claimed
by two entries (a member whose first join answer was lost and who joined elsewhere) counts once:
the claim with the highest ``(since, supernode id)`` wins, and the losing supernode removes its
stale copy when it sees the other (``supernode.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from esgf_nodemgr.core import nodemap as nm


def claim_key(home: str, member: nm.Member) -> Tuple[int, Tuple[int, str]]:
    return (member.since, nm.id_sort_key(home))


def member_claims(m: nm.NodeMap) -> Dict[str, Tuple[str, nm.Member]]:
    """hostname -> (home supernode id, member) with duplicates resolved."""
    out: Dict[str, Tuple[str, nm.Member]] = {}
    for home, e in m.entries.items():
        for member in e.members:
            prev = out.get(member.hostname)
            if prev is None or claim_key(home, member) > claim_key(*prev):
                out[member.hostname] = (home, member)
    # The winner does not depend on the order above (claim keys differ: one entry lists a
    # hostname once); the dict is returned in hostname order.
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class MemberView:
    hostname: str
    id: str
    project: str
    standby: bool
    home: str
    #: The node serving it now: its home, a supernode that adopted it, a promoted standby's
    #: hostname, or None when it is unplaced.
    server: Optional[str]
    adopted: bool
    health: str


@dataclass(frozen=True)
class SupernodeView:
    id: str
    hostname: str
    health: str
    members: int
    adopted: int


def supernode_health(m: nm.NodeMap, supernode_id: str) -> str:
    if m.decision is None:
        return "new"
    return m.decision.health.get(supernode_id, "new")


def serving_node(m: nm.NodeMap, hostname: str) -> Optional[str]:
    """Who serves member ``hostname`` now (see ``MemberView.server``)."""
    claim = member_claims(m).get(hostname)
    if claim is None:
        return None
    return _server(m, claim[0], hostname)


def _server(m: nm.NodeMap, home: str, hostname: str) -> Optional[str]:
    d = m.decision
    if (d is None or not d.is_down(home)) and m.roster.by_id(home) is not None:
        return home
    if d is not None and hostname in d.placement:
        return d.placement[hostname]
    return None


def members(m: nm.NodeMap, *, with_health: bool = True) -> List[MemberView]:
    """Every member with its home, server and health, sorted by hostname.

    ``with_health=False`` leaves every health at "new" (it is read from reports, which change
    far more often than the rest of the view; the supernode core does not need it).
    """
    out = []
    claims = member_claims(m)
    d = m.decision
    roster_ids = set(m.roster.ids)
    down = {i for i in roster_ids if d is not None and d.is_down(i)}

    def server_of(home: str, hostname: str) -> Optional[str]:
        if home not in down and home in roster_ids:
            return home
        if d is not None and hostname in d.placement:
            return d.placement[hostname]
        return None

    for hostname, (home, mem) in sorted(claims.items()):
        server = server_of(home, hostname)
        health = "new"
        if server is not None and with_health:
            reporter = server if server in roster_ids else None
            if reporter is None:
                # Served by a promoted standby: its own server relays the health.
                claim = claims.get(server)
                reporter = server_of(claim[0], server) if claim else None
            if reporter is not None:
                health = m.report(reporter).members.get(hostname, "new")
        out.append(MemberView(hostname=hostname, id=mem.id, project=mem.project,
                              standby=mem.standby, home=home, server=server,
                              adopted=server is not None and server != home, health=health))
    return out


def supernodes(m: nm.NodeMap) -> List[SupernodeView]:
    """Every roster supernode with its health and how many members it serves."""
    views = members(m)
    out = []
    for s in m.roster.supernodes:
        own = sum(1 for v in views if v.server == s.id and not v.adopted)
        adopted = sum(1 for v in views if v.server == s.id and v.adopted)
        out.append(SupernodeView(id=s.id, hostname=s.hostname, health=supernode_health(m, s.id),
                                 members=own, adopted=adopted))
    return out


def link_status(m: nm.NodeMap, a: str, b: str) -> str:
    if m.decision is None:
        return "unverified"
    return m.decision.link_status(a, b)
