"""Membership: how a supernode answers a member's join or leave request.

Answers are ``accept``, ``deny`` (with a reason, and possibly a supernode to try instead) or
``delayed`` (ask again later). A join the supernode accepts adds the member to its own entry
under an id ``<supernode id>.<seq>`` that no other node can produce; re-joining is a no-op
answered with the member's current server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.view import member_claims, members

ACCEPT = "accept"
DENY = "deny"
DELAYED = "delayed"
ANSWERS = (ACCEPT, DENY, DELAYED)


@dataclass(frozen=True)
class Answer:
    """A supernode's answer to a join or leave request."""

    answer: str
    reason: str
    #: For an accepted join: who holds the member's entry, who serves it now, and its id.
    home: Optional[str] = None
    server: Optional[str] = None
    member_id: Optional[str] = None
    #: For a denial: a supernode (hostname) worth trying next.
    redirect: Optional[str] = None


def load(m: nm.NodeMap, supernode_id: str) -> int:
    """How many members a supernode serves now (its own that are home, plus adopted)."""
    return sum(1 for v in members(m) if v.server == supernode_id)


def least_loaded(m: nm.NodeMap, exclude: str) -> Optional[nm.Supernode]:
    """The live supernode (other than ``exclude``) with the most free capacity, or None."""
    best: Optional[Tuple[int, int, nm.Supernode]] = None
    for pos, s in enumerate(m.roster.supernodes):
        if s.id == exclude or (m.decision is not None and m.decision.is_down(s.id)):
            continue
        n = load(m, s.id)
        if n >= m.roster.capacity:
            continue
        if best is None or (n, pos) < best[:2]:
            best = (n, pos, s)
    return best[2] if best else None


def decide_join(m: nm.NodeMap, me: str, hostname: str, project: str, standby: bool, *,
                address: str, port: int, round_now: int,
                synced: bool) -> Tuple[Answer, Optional[nm.Entry]]:
    """Answer a join request received by supernode ``me``; return the new entry if changed."""
    sn = m.roster.by_id(me)
    if sn is None:
        return Answer(DENY, "not a supernode (any more)"), None
    if m.roster.by_hostname(hostname) is not None:
        return Answer(DENY, f"{hostname} is a supernode, not a member"), None
    if not project:
        return Answer(DENY, "a project is required"), None
    if not synced:
        return Answer(DELAYED, "this supernode restarted and is catching up with the map"), None
    if m.decision is not None and m.decision.is_down(me):
        return Answer(DELAYED, "this supernode was declared down; reassignment in progress"), None

    claim = member_claims(m).get(hostname)
    if claim is not None:
        home, member = claim
        server = next((v.server for v in members(m) if v.hostname == hostname), None)
        own = m.entry(me)
        if home == me and (member.project != project or member.standby != standby
                           or member.address != address or member.port != port):
            updated = replace(member, project=project, standby=standby, address=address,
                              port=port)
            entry = replace(own, version=own.version + 1, members=tuple(sorted(
                [updated if x.hostname == hostname else x for x in own.members],
                key=lambda x: x.hostname)))
            return Answer(ACCEPT, "already a member; details updated", home=home,
                          server=server, member_id=member.id), entry
        reason = "already a member" if home == me else \
            f"already a member through supernode {home}"
        return Answer(ACCEPT, reason, home=home, server=server, member_id=member.id), None

    if load(m, me) >= m.roster.capacity:
        other = least_loaded(m, exclude=me)
        if other is None:
            return Answer(DENY, f"full ({m.roster.capacity} members) and so is every other "
                          f"live supernode"), None
        return Answer(DENY, f"full ({m.roster.capacity} members); {other.hostname} has room",
                      redirect=other.hostname), None

    own = m.entry(me)
    member = nm.Member(id=f"{me}.{own.next_seq}", hostname=hostname, project=project,
                       standby=standby, since=max(round_now, 0), address=address, port=port)
    entry = replace(own, version=own.version + 1, next_seq=own.next_seq + 1,
                    members=tuple(sorted([*own.members, member], key=lambda x: x.hostname)))
    return Answer(ACCEPT, "joined", home=me, server=me, member_id=member.id), entry


def decide_leave(m: nm.NodeMap, me: str, hostname: str) -> Tuple[Answer, Optional[nm.Entry]]:
    """Answer a leave request received by supernode ``me``."""
    claim = member_claims(m).get(hostname)
    own = m.entry(me)
    if claim is None and own.member(hostname) is None:
        return Answer(ACCEPT, "not a member (nothing to do)"), None
    if own.member(hostname) is not None:
        entry = replace(own, version=own.version + 1,
                        members=tuple(x for x in own.members if x.hostname != hostname))
        return Answer(ACCEPT, "left"), entry
    assert claim is not None
    home = claim[0]
    holder = m.roster.by_id(home)
    if holder is None or (m.decision is not None and m.decision.is_down(home)):
        return Answer(DELAYED, f"its supernode {home} is down; leave once it is back"), None
    return Answer(DENY, f"held by supernode {holder.hostname}", redirect=holder.hostname), None
