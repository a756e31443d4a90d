"""Fault schedules: what goes wrong, when, derived from the seed alone.

A schedule is a list of ``Fault`` values with times relative to the start of the safety phase.
It depends only on the scenario, the federation's size, the safety phase's length and a seed,
never on the protocol profile, so that both profiles (ours and the 2015 prototype) face exactly
the same faults in a comparison run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Sequence, Tuple

SCENARIOS = ("none", "crash", "partition", "link-cut", "churn")

CRASH, RESTART, PARTITION, HEAL, CUT, UNCUT, JOIN, LEAVE = (
    "crash", "restart", "partition", "heal", "cut", "uncut", "join", "leave")


@dataclass(frozen=True)
class Fault:
    """One fault (or repair, or membership change) at ``at`` seconds into the safety phase.

    ``nodes`` holds the hostnames it concerns: the crashed supernode, the two ends of a cut
    link, the joining or leaving member; for a partition, ``groups`` holds the two sides.
    """

    at: float
    action: str
    nodes: Tuple[str, ...] = ()
    groups: Tuple[Tuple[str, ...], ...] = ()


def plan(scenario: str, supernodes: Sequence[str], members: Sequence[str],
         duration_s: float, seed: int) -> List[Fault]:
    """The fault schedule of ``scenario`` over a safety phase of ``duration_s`` seconds.

    Crashed supernodes always restart and partitions and cuts always heal before the end of
    the safety phase; the liveness phase then starts from a whole network.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (choose from {', '.join(SCENARIOS)})")
    rng = random.Random(f"faults:{seed}:{scenario}")
    faults: List[Fault] = []
    n = len(supernodes)
    if scenario in ("crash", "churn"):
        faults += _crashes(rng, supernodes, duration_s)
    if scenario == "partition" and n >= 2:
        faults += _partitions(rng, supernodes, members, duration_s)
    if scenario == "link-cut" and n >= 2:
        faults += _cuts(rng, supernodes, duration_s)
    if scenario == "churn":
        faults += _churn(rng, members, duration_s)
    faults.sort(key=lambda f: (f.at, f.action, f.nodes))
    return faults


def _crashes(rng: random.Random, supernodes: Sequence[str], d: float) -> List[Fault]:
    """About one supernode in five crashes (at least one); each stays down long enough for the
    prototype's minute-long turns to notice too, then restarts from its disk."""
    count = max(1, len(supernodes) // 5)
    victims = rng.sample(list(supernodes), count)
    out: List[Fault] = []
    for host in victims:
        at = rng.uniform(0.05, 0.4) * d
        back = at + rng.uniform(0.3, 0.5) * d
        out += [Fault(at, CRASH, (host,)), Fault(min(back, 0.95 * d), RESTART, (host,))]
    return out


def _partitions(rng: random.Random, supernodes: Sequence[str], members: Sequence[str],
                d: float) -> List[Fault]:
    """Two successive splits of the federation into two sides (members take a side too)."""
    out: List[Fault] = []
    for start, end in ((0.05, 0.4), (0.5, 0.9)):
        hosts = list(supernodes)
        rng.shuffle(hosts)
        minority = rng.randint(1, max(1, len(hosts) // 2))
        side_a = set(hosts[:minority])
        side_b = set(hosts[minority:])
        for m in members:
            (side_a if rng.random() < minority / len(hosts) else side_b).add(m)
        at = rng.uniform(start, start + 0.1) * d
        heal = rng.uniform(end - 0.15, end) * d
        out += [Fault(at, PARTITION, groups=(tuple(sorted(side_a)), tuple(sorted(side_b)))),
                Fault(heal, HEAL)]
    return out


def _cuts(rng: random.Random, supernodes: Sequence[str], d: float) -> List[Fault]:
    """Single supernode-to-supernode links cut for a while (about one per three supernodes)."""
    out: List[Fault] = []
    hosts = list(supernodes)
    for _ in range(max(1, len(hosts) // 3)):
        a, b = rng.sample(hosts, 2)
        at = rng.uniform(0.05, 0.6) * d
        out += [Fault(at, CUT, (a, b)), Fault(at + rng.uniform(0.1, 0.3) * d, UNCUT, (a, b))]
    return out


def _churn(rng: random.Random, members: Sequence[str], d: float) -> List[Fault]:
    """New members join and some of the initial ones leave, spread over the phase."""
    out: List[Fault] = []
    joins = max(2, len(members) // 5)
    for i in range(joins):
        out.append(Fault(rng.uniform(0.02, 0.85) * d, JOIN, (f"c{i + 1}",)))
    for host in rng.sample(list(members), max(1, len(members) // 10)):
        out.append(Fault(rng.uniform(0.02, 0.85) * d, LEAVE, (host,)))
    return out
