"""Hypothesis strategies for the federation core: maps, sections, members, decisions.

Maps are drawn from a shared *universe*: for each section name a few candidate values whose
versions come from a small range, so that two maps often hold the same section at the same
version — with the same content (a correct writer), or, when ``conflicts`` is on, with
different content (what a buggy or restarted writer could produce). Every value is canonical
(members sorted, link pairs ordered, timelines sorted and unique) and every map is valid for
``map_from_json`` (ids unique, numeric ids below ``next_id``).

Hypothesis draws the structure (which sections, which versions and variants, which
timeline items, which candidate each map holds), so that it shrinks to the sections that
matter; the *content* of a candidate is built by a ``random.Random`` seeded with
``(seed, section, version, variant)``, which keeps generation cheap enough for a suite
that must run in seconds on two cores.

``CORE`` is the settings profile of every core property test: a fixed number of examples,
no deadline (the CI machine is small and shared), derandomized so that every run is the same.
``ESGF_HYPOTHESIS_EXAMPLES`` raises the count for a longer local run.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from esgf_nodemgr.core import nodemap as nm

settings.register_profile(
    "esgf-core",
    max_examples=int(os.environ.get("ESGF_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
#: Decorator for property tests: ``@CORE`` above ``@given(...)``.
CORE = settings.get_profile("esgf-core")
#: Fewer examples for the expensive properties (whole operation sequences).
CORE_SLOW = settings(CORE, max_examples=max(CORE.max_examples // 2, 10))

SUPERNODE_IDS = ("1", "2", "3", "4", "5", "6")
RETIRED_IDS = ("7", "8", "9", "10", "11", "12")
MEMBER_HOSTS = tuple(f"m{i}.example.org" for i in range(1, 9))
SUPERNODE_HOSTS = tuple(f"sn{i}.example.org" for i in range(1, 13))
PROJECTS = ("CMIP6", "CORDEX", "obs4MIPs")
#: Every numeric id a generated map uses is below this (legacy member ids included).
NEXT_ID_FLOOR = 200
#: Versions of the timeline items generated maps hold: few, so that timelines overlap.
TIMELINE_ROUNDS = 10

node_ids = st.sampled_from(SUPERNODE_IDS)
member_hosts = st.sampled_from(MEMBER_HOSTS)


# --------------------------------------------------------------------------------------------
# Section values, built from a seeded random source
# --------------------------------------------------------------------------------------------
def build_member(rng: random.Random, home: str, seq: int, hostname: str) -> nm.Member:
    """A member of ``home``'s entry: id ``home.seq``, or (legacy) a number of its own."""
    legacy = rng.random() < 0.25
    member_id = str(100 + 10 * int(home) + seq) if legacy else f"{home}.{seq}"
    return nm.Member(id=member_id, hostname=hostname, project=rng.choice(PROJECTS),
                     standby=rng.random() < 0.3, since=rng.randint(0, 5),
                     address=rng.choice([hostname, f"10.0.0.{seq}"]),
                     port=rng.choice([nm.DEFAULT_PORT, 8443]))


def build_entry(rng: random.Random, supernode: str, version: int) -> nm.Entry:
    if version == 0:
        return nm.Entry(supernode=supernode)
    hosts = rng.sample(MEMBER_HOSTS, rng.randint(0, 3))
    seqs = rng.sample(range(1, 10), len(hosts))
    members = [build_member(rng, supernode, seq, h) for h, seq in zip(hosts, seqs)]
    return nm.Entry(supernode=supernode, version=version,
                    next_seq=max(seqs, default=0) + 1 + rng.randint(0, 2),
                    members=tuple(sorted(members, key=lambda m: m.hostname)))


def build_report(rng: random.Random, supernode: str, version: int) -> nm.Report:
    if version == 0:
        return nm.Report(supernode=supernode)
    health = {h: rng.choice(nm.MEMBER_HEALTH) for h in rng.sample(MEMBER_HOSTS,
                                                                   rng.randint(0, 3))}
    peers = [i for i in SUPERNODE_IDS if i != supernode]
    rtt = {p: (None if rng.random() < 0.2 else round(rng.uniform(0, 500), 1))
           for p in rng.sample(peers, rng.randint(0, 3))}
    return nm.Report(supernode=supernode, version=version, members=health, rtt_ms=rtt)


def build_decision(rng: random.Random, round_: int, leader: str) -> nm.Decision:
    health = {i: rng.choice(nm.SUPERNODE_HEALTH) for i in rng.sample(SUPERNODE_IDS,
                                                                     rng.randint(0, 4))}
    links: Dict[Tuple[str, str], str] = {}
    for _ in range(rng.randint(0, 3)):
        a, b = rng.sample(SUPERNODE_IDS, 2)
        links[nm.pair(a, b)] = rng.choice(("unverified", "init", "down"))
    placement = {h: rng.choice(SUPERNODE_IDS + MEMBER_HOSTS)
                 for h in rng.sample(MEMBER_HOSTS, rng.randint(0, 3))}
    return nm.Decision(
        round=round_, leader=leader, health=health, links=links, placement=placement,
        promoted=tuple(rng.sample(MEMBER_HOSTS, rng.randint(0, 2))),
        unplaced=tuple(sorted(rng.sample(MEMBER_HOSTS, rng.randint(0, 2)))),
        summary=rng.choice(("", "round 1: sn3 down", "state updated")))


def build_roster(rng: random.Random, version: int) -> nm.Roster:
    """A valid roster: distinct ids and hostnames, retired ones disjoint, next_id above all."""
    n = rng.randint(0, 5)
    hosts = rng.sample(SUPERNODE_HOSTS, n + 2)
    ids = rng.sample(SUPERNODE_IDS, n)
    sns = tuple(nm.Supernode(id=i, hostname=h, address=rng.choice([h, f"192.0.2.{k + 1}"]),
                             port=rng.choice([nm.DEFAULT_PORT, 9443]))
                for k, (i, h) in enumerate(zip(ids, hosts)))
    n_retired = rng.randint(0, 2)
    retired = tuple(nm.RetiredSupernode(id=i, hostname=h)
                    for i, h in zip(RETIRED_IDS[:n_retired], hosts[n:]))
    return nm.Roster(version=version, supernodes=sns, retired=retired,
                     next_id=NEXT_ID_FLOOR + rng.randint(0, 3), capacity=rng.randint(1, 30))


def build_epoch(rng: random.Random, version: int) -> nm.Epoch:
    if version == 0:
        return nm.Epoch()
    return nm.Epoch(version=version, value=rng.choice([None, round(rng.uniform(0, 2e9), 3)]))


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("/".join(str(p) for p in (seed, *parts)))


# --------------------------------------------------------------------------------------------
# Universes and the maps drawn from them
# --------------------------------------------------------------------------------------------
Universe = Dict[str, List[Any]]


@st.composite
def universes(draw: Any, conflicts: bool = True) -> Universe:
    """Candidate values per section name (the key ``timeline`` holds candidate items).

    Without ``conflicts`` a version determines the content: one candidate per version, and
    version 0 is the section's empty default, as with correct writers. With ``conflicts`` two
    candidates may share a version and differ.
    """
    seed = draw(st.integers(0, 2 ** 16))

    def candidates(name: str, build: Callable[[random.Random, int], Any],
                   lowest: int = 0) -> List[Any]:
        if conflicts:
            keys = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1)),
                                 min_size=1, max_size=3, unique=True))
        else:
            keys = [(v, 0) for v in draw(st.lists(st.integers(lowest, 4), min_size=1,
                                                  max_size=3, unique=True))]
        return [build(_rng(seed, name, v, variant), v) for v, variant in keys]

    u: Universe = {
        # Conflicts aside, a real roster always has a version >= 1 (build_roster bumps it).
        "roster": candidates("roster", build_roster, lowest=1),
        "epoch": candidates("epoch", build_epoch),
    }
    for sid in draw(st.lists(node_ids, unique=True, max_size=4)):
        u[f"entry/{sid}"] = candidates(f"entry/{sid}",
                                       lambda rng, v, sid=sid: build_entry(rng, sid, v))
    for sid in draw(st.lists(node_ids, unique=True, max_size=3)):
        u[f"report/{sid}"] = candidates(f"report/{sid}",
                                        lambda rng, v, sid=sid: build_report(rng, sid, v))
    keys = draw(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(("1", "2")),
                                   st.integers(0, 1 if conflicts else 0)),
                         unique=True, max_size=3))
    u["decision"] = [build_decision(_rng(seed, "decision", r, lead, var), r, lead)
                     for r, lead, var in keys]
    u["timeline"] = [nm.TimelineItem(r, lead, s) for r in range(TIMELINE_ROUNDS)
                     for lead in ("1", "2") for s in (("a", "b") if conflicts else ("a",))]
    return u


@st.composite
def timelines(draw: Any, pool: List[nm.TimelineItem],
              max_size: int = nm.TIMELINE_LENGTH) -> Tuple[nm.TimelineItem, ...]:
    """A sorted timeline without two items of one version, drawn from ``pool``."""
    picked = draw(st.lists(st.sampled_from(pool), max_size=max_size))
    by_version: Dict[Tuple[int, str], nm.TimelineItem] = {}
    for item in picked:
        by_version.setdefault(item.version, item)
    return tuple(sorted(by_version.values(), key=lambda t: t.version))


def timeline_pool(rounds: int, summaries: Tuple[str, ...] = ("a",)) -> List[nm.TimelineItem]:
    return [nm.TimelineItem(r, lead, s) for r in range(rounds) for lead in ("1", "2")
            for s in summaries]


@st.composite
def maps_from(draw: Any, u: Universe) -> nm.NodeMap:
    """One map holding, for each section of the universe, nothing or one candidate."""
    ents: Dict[str, nm.Entry] = {}
    reps: Dict[str, nm.Report] = {}
    decision: Optional[nm.Decision] = None
    for name, candidates in u.items():
        if name in ("roster", "epoch", "timeline") or not candidates:
            continue
        if not draw(st.booleans()):
            continue
        value = draw(st.sampled_from(candidates))
        if name.startswith("entry/"):
            ents[name[len("entry/"):]] = value
        elif name.startswith("report/"):
            reps[name[len("report/"):]] = value
        else:
            decision = value
    return nm.NodeMap(roster=draw(st.sampled_from(u["roster"])),
                      epoch=draw(st.sampled_from(u["epoch"])),
                      entries=ents, reports=reps, decision=decision,
                      timeline=draw(timelines(u["timeline"], max_size=8)))


@st.composite
def related_maps(draw: Any, n: int = 2, conflicts: bool = True) -> Tuple[nm.NodeMap, ...]:
    """``n`` maps drawn from one universe (so that their sections overlap)."""
    u = draw(universes(conflicts=conflicts))
    return tuple(draw(maps_from(u)) for _ in range(n))


node_maps = related_maps(1).map(lambda t: t[0])


def shuffled_copy(m: nm.NodeMap) -> nm.NodeMap:
    """An equal map whose dicts were built in the reverse insertion order."""
    return replace(m, entries=dict(reversed(list(m.entries.items()))),
                   reports=dict(reversed(list(m.reports.items()))))


# --------------------------------------------------------------------------------------------
# Members and decisions for the membership properties
# --------------------------------------------------------------------------------------------
#: One operation on a federation: ("join", host, supernode index, standby),
#: ("leave", host, supernode index), ("fail", supernode index), ("recover", supernode index).
Operation = Tuple[Any, ...]

_hosts = st.sampled_from(MEMBER_HOSTS)
_index = st.integers(0, 5)
operations = st.one_of(
    st.tuples(st.just("join"), _hosts, _index, st.booleans()),
    st.tuples(st.just("join"), _hosts, _index, st.booleans()),
    st.tuples(st.just("leave"), _hosts, _index),
    st.tuples(st.just("fail"), _index),
    st.tuples(st.just("recover"), _index),
)


@st.composite
def federations(draw: Any) -> Tuple[int, int, List[Operation]]:
    """(number of supernodes, capacity, operations): members join first, then anything."""
    n = draw(st.integers(2, 4))
    capacity = draw(st.integers(1, 3))
    joins = draw(st.lists(st.tuples(st.just("join"), _hosts, _index, st.booleans()),
                          min_size=2, max_size=8))
    ops = draw(st.lists(operations, min_size=1, max_size=20))
    return n, capacity, joins + ops


health_values = st.sampled_from(nm.SUPERNODE_HEALTH)
