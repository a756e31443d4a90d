"""Health: from probe results to link status, and from observations to supernode health.

Two levels, each with its own rule:

1. *Observer* (every supernode, about each peer it probes): a link goes ``down`` after
   ``down_after`` consecutive failed probes and comes back ``up`` after ``up_after``
   consecutive successes (hysteresis: one lost packet never flips it). The latency kept is
   smoothed over successful round trips.
2. *Leader* (one per round, from the observations sent to it): a supernode is ``unreachable``
   only when no live, voting supernode reaches it — every voting observer that reported says
   its link to it is down or at least that its last probe failed ("suspect"), more than half
   of the other live supernodes say down (a quorum), and its own observations did not reach
   the leader (a message from it proves it is alive). Properties that lapsed make it
   ``bad``; properties with an issue make it ``unhealthy`` (still serving).

An observer that has lost more than half of its links to peers believed alive stops voting: it
is more likely to be the one cut off than everyone else at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import AbstractSet, Dict, Mapping, Optional, Tuple

from esgf_nodemgr.core import nodemap as nm

#: What a probe answer says of the probed node's properties.
PROPS_GOOD = "GOOD"
PROPS_LAPSED = "LAPSED"
PROPS_ISSUE = "ISSUE"
PROPS_STATUS = (PROPS_GOOD, PROPS_LAPSED, PROPS_ISSUE)
#: Weight of a new latency sample in the smoothed latency.
RTT_GAIN = 0.25


@dataclass(frozen=True)
class LinkState:
    """An observer's view of one peer: status with hysteresis counters and latency."""

    status: str = "unverified"
    misses: int = 0
    successes: int = 0
    rtt_ms: Optional[float] = None
    props: Optional[str] = None


def observe(state: LinkState, rtt_ms: Optional[float], props: Optional[str], *,
            down_after: int, up_after: int) -> LinkState:
    """The link state after one probe (``rtt_ms`` None: the probe failed)."""
    if rtt_ms is None:
        misses = state.misses + 1
        status = state.status
        if misses >= down_after:
            status = "down"
        return replace(state, misses=misses, successes=0, status=status)
    successes = state.successes + 1
    status = state.status
    if status in ("unverified", "init") or (status == "down" and successes >= up_after):
        status = "up"
    # Smoothed latency (EWMA): one slow answer should not look like a slower link.
    smoothed = rtt_ms if state.rtt_ms is None else (1 - RTT_GAIN) * state.rtt_ms + \
        RTT_GAIN * rtt_ms
    return LinkState(status=status, misses=0, successes=successes, rtt_ms=smoothed,
                     props=props or state.props)


def reported(state: LinkState) -> str:
    """The link status an observer reports to the leader.

    A link still ``down`` by hysteresis whose last probe succeeded is reported ``unverified``:
    the peer answers again, it is only not confirmed ``up`` yet. Reporting it ``down`` would
    let a leader declare a supernode that just came back down again in the very next round
    (every observer still holds ``down`` after one success, and the returning node's own
    observations, later than the others' when its clock is behind, are not waited for).
    """
    if state.status == "down" and state.misses == 0 and state.successes > 0:
        return "unverified"
    return state.status


def is_voting(links: Mapping[str, LinkState], believed_alive: AbstractSet[str]) -> bool:
    """Whether an observer's reports count: it reaches at least half of its live peers."""
    peers = [p for p in links if p in believed_alive]
    if not peers:
        return True
    lost = sum(1 for p in peers if links[p].status == "down")
    return lost * 2 <= len(peers)


@dataclass(frozen=True)
class Observation:
    """What one supernode reports to the round leader."""

    observer: str
    round: int
    voting: bool
    #: peer id -> link status after hysteresis ("up", "down", "unverified")
    links: Mapping[str, str]
    #: peer id -> properties status seen in the last successful probe
    props: Mapping[str, str]
    #: peers still ``up`` whose last probe failed: they neither vote down nor against
    suspect: AbstractSet[str] = frozenset()

    def says(self, target: str) -> Optional[str]:
        """This observer's vote about ``target``: "down", "suspect", its link status, or
        None when it has none."""
        status = self.links.get(target)
        if status == "up" and target in self.suspect:
            return "suspect"
        return status


def decide_health(roster_ids: Tuple[str, ...], previous: Mapping[str, str],
                  observations: Mapping[str, Observation], leader: str) -> Dict[str, str]:
    """Supernode health for this round from the observations the leader received.

    ``observations`` includes the leader's own. A supernode with no evidence either way keeps
    its previous health (``new`` if it never had one).
    """
    alive_before = {i for i in roster_ids if previous.get(i, "new") not in nm.DOWN_HEALTH}
    voters = {o for o, obs in observations.items() if obs.voting and o in roster_ids}
    result: Dict[str, str] = {}
    for target in roster_ids:
        prev = previous.get(target, "new")
        props = _props_verdict(target, observations)
        if target in observations or target == leader:
            # It reached the leader (or is the leader): alive, whatever links say.
            result[target] = _from_props(props)
            continue
        reports = [observations[v].says(target) for v in voters if v != target]
        reports = [s for s in reports if s is not None]
        if any(s == "up" for s in reports):
            result[target] = _from_props(props)
            continue
        down_votes = sum(1 for s in reports if s == "down")
        others_alive = len(alive_before - {target})
        quorum = down_votes * 2 > others_alive
        # Every voter that reported agrees: down, or its last probe failed too ("suspect":
        # with clocks apart, some observers reach ``down_after`` misses one round later).
        if down_votes and quorum and all(s in ("down", "suspect") for s in reports):
            result[target] = "unreachable"
        else:
            result[target] = prev
    return result


def _props_verdict(target: str, observations: Mapping[str, Observation]) -> Optional[str]:
    seen = [obs.props[target] for obs in observations.values() if target in obs.props]
    if not seen:
        return None
    # A lapse seen by anyone wins over an issue, an issue over good: be conservative.
    for status in (PROPS_LAPSED, PROPS_ISSUE, PROPS_GOOD):
        if status in seen:
            return status
    return None


def _from_props(props: Optional[str]) -> str:
    if props == PROPS_LAPSED:
        return "bad"
    if props == PROPS_ISSUE:
        return "unhealthy"
    return "good"


def decide_links(roster_ids: Tuple[str, ...], previous: Mapping[Tuple[str, str], str],
                 observations: Mapping[str, Observation],
                 had_decision: bool) -> Dict[Tuple[str, str], str]:
    """Status of every link that is not ``up`` (the decision's sparse link table).

    A link is down when every report about it (from either end) says down, up when any says
    up, and otherwise keeps its previous status.
    """
    out: Dict[Tuple[str, str], str] = {}
    ids = list(roster_ids)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            key = nm.pair(a, b)
            seen = []
            if a in observations and b in observations[a].links:
                seen.append(observations[a].links[b])
            if b in observations and a in observations[b].links:
                seen.append(observations[b].links[a])
            seen = [s for s in seen if s in ("up", "down")]
            if seen and all(s == "down" for s in seen):
                status = "down"
            elif "up" in seen:
                status = "up"
            else:
                status = previous.get(key, "up" if had_decision else "unverified")
            if status != "up":
                out[key] = status
    return out
