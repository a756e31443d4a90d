"""Schedule and health: rounds, leader rotation, link hysteresis, voting, leader decisions."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CORE

from esgf_nodemgr.core import health as hl
from esgf_nodemgr.core.schedule import Schedule, leader

IDS = ("1", "2", "3", "4", "5")
SCH = Schedule(epoch=1000.0, round_s=2.0, probe_timeout_s=0.5, skew_s=1.0)


# -- schedule -------------------------------------------------------------------------------
@pytest.mark.parametrize("now, expected", [
    (0.0, -1), (999.999, -1), (1000.0, 0), (1001.999, 0), (1002.0, 1), (1007.5, 3),
])
def test_round_at(now: float, expected: int) -> None:
    assert SCH.round_at(now) == expected


def test_round_boundaries() -> None:
    assert SCH.start(0) == 1000.0
    assert SCH.start(5) == 1010.0
    assert SCH.report_at(5) == 1010.5
    # The leader waits for an observer whose clock is skew_s late, plus transit.
    assert SCH.decide_by(5) == 1010.5 + 1.0 + 0.5
    assert SCH.decide_by(5) > SCH.report_at(5) + SCH.skew_s


@CORE
@given(st.floats(min_value=1000.0, max_value=1e7, allow_nan=False))
def test_a_round_contains_its_start_and_not_the_next(now: float) -> None:
    r = SCH.round_at(now)
    assert SCH.start(r) <= now < SCH.start(r + 1)


@CORE
@given(st.floats(min_value=0, max_value=2e9, allow_nan=False),
       st.sampled_from([0.1, 0.2, 0.3, 0.7, 1.5, 2.0, 2.5]), st.integers(0, 10 ** 7))
def test_round_at_agrees_with_start(epoch: float, round_s: float, r: int) -> None:
    # Exactly at a round's start, the round has started (float division can land a hair
    # below the boundary: 0.1 + 3 * 0.1 - 0.1 is 2.9999999999999996 rounds of 0.1).
    sch = Schedule(epoch=epoch, round_s=round_s, probe_timeout_s=round_s / 2)
    assert sch.round_at(sch.start(r)) == r
    assert sch.round_at(sch.start(r + 1)) == r + 1


@pytest.mark.parametrize("round_s, timeout", [(0.0, 0.5), (-1.0, 0.5), (2.0, 0.0), (2.0, 2.0)])
def test_bad_schedules_are_refused(round_s: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        Schedule(epoch=0.0, round_s=round_s, probe_timeout_s=timeout)


def test_leader_rotates_through_the_roster() -> None:
    assert [leader(IDS[:3], set(IDS[:3]), r) for r in range(7)] == \
        ["1", "2", "3", "1", "2", "3", "1"]
    assert leader(IDS, set(IDS), -1) is None
    assert leader(IDS, set(), 4) is None


def test_leader_skips_supernodes_believed_down() -> None:
    alive = {"1", "2", "4"}
    assert [leader(IDS[:4], alive, r) for r in range(6)] == ["1", "2", "4", "1", "2", "4"]


@CORE
@given(st.sets(st.sampled_from(IDS), min_size=2), st.integers(0, 10_000))
def test_a_dead_leader_costs_at_most_one_round(alive: set, r: int) -> None:
    # A supernode that died unnoticed (still in ``alive``) leads at most one round in a row;
    # over len(alive) rounds everyone leads exactly once; nobody believed down ever leads.
    assert leader(IDS, alive, r) != leader(IDS, alive, r + 1)
    window = [leader(IDS, alive, r + k) for k in range(len(alive))]
    assert sorted(window) == sorted(alive)


# -- link hysteresis ------------------------------------------------------------------------
UP = hl.LinkState(status="up")


def run(results: List[Optional[float]], k: int = 3, j: int = 2,
        start: hl.LinkState = UP) -> List[str]:
    state, seen = start, []
    for rtt in results:
        state = hl.observe(state, rtt, hl.PROPS_GOOD if rtt is not None else None,
                           down_after=k, up_after=j)
        seen.append(state.status)
    return seen


def test_k_misses_take_a_link_down() -> None:
    assert run([None, None, None]) == ["up", "up", "down"]


def test_single_losses_never_flip_a_link() -> None:
    assert run([None, 1.0, None, 1.0, None, None, 1.0, None]) == ["up"] * 8


def test_j_successes_bring_it_back() -> None:
    assert run([None, None, None, 1.0, None, 1.0, 1.0]) == \
        ["up", "up", "down", "down", "down", "down", "up"]


def test_a_down_link_whose_last_probe_succeeded_is_reported_unverified() -> None:
    down = hl.LinkState()
    for _ in range(2):
        down = hl.observe(down, None, None, down_after=2, up_after=2)
    assert hl.reported(down) == "down"
    # One success: still down (hysteresis), but the peer answers: not a vote against it.
    recovering = hl.observe(down, 30.0, None, down_after=2, up_after=2)
    assert recovering.status == "down" and hl.reported(recovering) == "unverified"
    # A failure again: a down vote again, at once.
    again = hl.observe(recovering, None, None, down_after=2, up_after=2)
    assert again.status == "down" and hl.reported(again) == "down"
    up = hl.observe(recovering, 30.0, None, down_after=2, up_after=2)
    assert hl.reported(up) == "up"
    assert hl.reported(hl.LinkState()) == "unverified"


def test_first_success_verifies_a_new_link() -> None:
    assert run([5.0], start=hl.LinkState()) == ["up"]
    assert run([None, None], k=2, start=hl.LinkState()) == ["unverified", "down"]


def test_observe_keeps_the_last_latency_and_properties() -> None:
    s = hl.observe(hl.LinkState(), 12.5, hl.PROPS_ISSUE, down_after=2, up_after=2)
    s = hl.observe(s, None, None, down_after=2, up_after=2)
    assert (s.rtt_ms, s.props, s.misses, s.successes) == (12.5, hl.PROPS_ISSUE, 1, 0)
    s = hl.observe(s, 3.0, None, down_after=2, up_after=2)
    # Latency is smoothed: one sample moves it by RTT_GAIN of the difference.
    assert s.props == hl.PROPS_ISSUE
    assert s.rtt_ms == pytest.approx(12.5 + hl.RTT_GAIN * (3.0 - 12.5))


@CORE
@given(st.lists(st.booleans(), max_size=40), st.integers(1, 4), st.integers(1, 4))
def test_hysteresis_needs_a_streak_to_flip(probes: List[bool], k: int, j: int) -> None:
    statuses = run([1.0 if ok else None for ok in probes], k=k, j=j)
    for i in range(1, len(statuses)):
        tail = probes[: i + 1]
        if statuses[i] == "down" and statuses[i - 1] == "up":
            assert tail[-k:] == [False] * k and len(tail) >= k
        if statuses[i] == "up" and statuses[i - 1] == "down":
            assert tail[-j:] == [True] * j and len(tail) >= j


# -- voting ---------------------------------------------------------------------------------
def links(**status: str) -> Dict[str, hl.LinkState]:
    return {peer.lstrip("_"): hl.LinkState(status=s) for peer, s in status.items()}


def test_observer_that_lost_more_than_half_its_links_stops_voting() -> None:
    alive = {"2", "3", "4", "5"}
    assert hl.is_voting(links(_2="up", _3="up", _4="down", _5="down"), alive)
    assert not hl.is_voting(links(_2="up", _3="down", _4="down", _5="down"), alive)
    # Links to peers already believed down do not count.
    assert hl.is_voting(links(_2="up", _3="down", _4="down", _5="down"), {"2", "3"})
    assert hl.is_voting({}, alive)


# -- leader decisions -----------------------------------------------------------------------
def obs(observer: str, voting: bool = True, props: Optional[Mapping[str, str]] = None,
        **status: str) -> hl.Observation:
    return hl.Observation(observer=observer, round=7, voting=voting,
                          links={p.lstrip("_"): s for p, s in status.items()},
                          props=dict(props or {}))


def decide(observations: List[hl.Observation], previous: Optional[Mapping[str, str]] = None,
           ids: Tuple[str, ...] = IDS[:4], lead: str = "1") -> Dict[str, str]:
    if previous is None:
        previous = {i: "good" for i in ids}
    return hl.decide_health(ids, previous,
                            {o.observer: o for o in observations}, lead)


def test_all_reachable_is_all_good() -> None:
    up = {"_1": "up", "_2": "up", "_3": "up", "_4": "up"}
    got = decide([obs(i, **{k: v for k, v in up.items() if k != f"_{i}"}) for i in IDS[:4]],
                 previous={})
    assert got == {"1": "good", "2": "good", "3": "good", "4": "good"}


def test_down_only_when_every_voting_report_says_down() -> None:
    down4 = [obs("1", _4="down"), obs("2", _4="down"), obs("3", _4="down")]
    assert decide(down4)["4"] == "unreachable"
    # One observer still reaches it: alive.
    assert decide([obs("1", _4="down"), obs("2", _4="up"), obs("3", _4="down")])["4"] == "good"


def test_a_non_voting_observer_neither_saves_nor_condemns() -> None:
    got = decide([obs("1", _4="down"), obs("2", _4="down"), obs("3", voting=False, _4="up")])
    assert got["4"] == "unreachable"
    # Only non-voting observers say down: no evidence, keep the previous health.
    got = decide([obs("2", voting=False, _4="down"), obs("3", voting=False, _4="down")],
                 ids=IDS[:4], lead="1")
    assert got["4"] == "good"


def test_down_needs_a_quorum_of_the_live_supernodes() -> None:
    # 5 supernodes, 4 others alive: one report of "down" is not a majority of them.
    got = decide([obs("1", _5="down")], ids=IDS)
    assert got["5"] == "good"
    got = decide([obs("1", _5="down"), obs("2", _5="down"), obs("3", _5="down")], ids=IDS)
    assert got["5"] == "unreachable"
    # Two of four is not more than half.
    got = decide([obs("1", _5="down"), obs("2", _5="down")], ids=IDS)
    assert got["5"] == "good"


def test_a_suspect_vote_neither_saves_nor_condemns() -> None:
    # Observer 3's last probe of 4 failed but its link is still up (one miss short of
    # down_after): with clocks apart it reaches "down" a round later than the others.
    late = hl.Observation(observer="3", round=7, voting=True, links={"4": "up"}, props={},
                          suspect=frozenset({"4"}))
    assert late.says("4") == "suspect"
    assert decide([obs("1", _4="down"), obs("2", _4="down"), late])["4"] == "unreachable"
    # Suspect votes alone are no quorum: two suspects and one down of three others.
    late2 = hl.Observation(observer="2", round=7, voting=True, links={"4": "up"}, props={},
                           suspect=frozenset({"4"}))
    assert decide([obs("1", _4="down"), late2, late])["4"] == "good"
    # A clean "up" still saves it.
    assert decide([obs("1", _4="down"), obs("2", _4="down"), obs("3", _4="up")])["4"] == "good"


def test_a_node_whose_own_report_arrived_is_alive() -> None:
    got = decide([obs("1", _4="down"), obs("2", _4="down"), obs("3", _4="down"),
                  obs("4", _1="down", _2="down", _3="down")])
    assert got["4"] == "good"


def test_the_leader_is_alive_whatever_links_say() -> None:
    got = decide([obs("2", _1="down"), obs("3", _1="down"), obs("4", _1="down")], lead="1")
    assert got["1"] == "good"


@pytest.mark.parametrize("props, expected", [
    (hl.PROPS_LAPSED, "bad"), (hl.PROPS_ISSUE, "unhealthy"), (hl.PROPS_GOOD, "good"),
])
def test_properties_decide_among_the_living(props: str, expected: str) -> None:
    got = decide([obs("1", props={"3": props}, _3="up"), obs("3")])
    assert got["3"] == expected


def test_a_lapse_seen_by_anyone_wins() -> None:
    got = decide([obs("1", props={"3": hl.PROPS_GOOD}, _3="up"),
                  obs("2", props={"3": hl.PROPS_LAPSED}, _3="up"),
                  obs("4", props={"3": hl.PROPS_ISSUE}, _3="up")])
    assert got["3"] == "bad"


def test_no_evidence_keeps_the_previous_health() -> None:
    previous = {"1": "good", "2": "unhealthy", "3": "unreachable", "4": "bad"}
    assert decide([obs("1")], previous=previous) == previous
    assert decide([obs("1")], previous={})["3"] == "new"


def test_a_down_node_comes_back_when_anyone_reaches_it() -> None:
    previous = {"1": "good", "2": "good", "3": "good", "4": "unreachable"}
    assert decide([obs("1", _4="up")], previous=previous)["4"] == "good"


@CORE
@given(st.dictionaries(st.sampled_from(IDS), st.tuples(
    st.booleans(), st.dictionaries(st.sampled_from(IDS), st.sampled_from(
        ("up", "down", "unverified")), max_size=5)), max_size=5),
    st.dictionaries(st.sampled_from(IDS), st.sampled_from(("good", "unreachable", "new"))))
def test_decide_health_laws(raw: Dict[str, Tuple[bool, Dict[str, str]]],
                            previous: Dict[str, str]) -> None:
    observations = {o: hl.Observation(o, 1, v, {p: s for p, s in ls.items() if p != o}, {})
                    for o, (v, ls) in raw.items()}
    got = hl.decide_health(IDS, previous, observations, "1")
    voters = [o for o in observations.values() if o.voting]
    for target, health in got.items():
        if health == "unreachable" and previous.get(target) != "unreachable":
            # Newly down: it did not report, is not the leader, and every voter that
            # spoke of it said down.
            assert target not in observations and target != "1"
            said = [o.links[target] for o in voters if target in o.links]
            assert said and all(s == "down" for s in said)
        if target in observations or target == "1":
            assert health == "good"
        if any(o.links.get(target) == "up" for o in voters):
            assert health == "good"


def test_decide_links() -> None:
    observations = {
        "1": obs("1", _2="down", _3="up"),
        "2": obs("2", _1="down", _3="up"),
        "3": obs("3", _1="down", _2="up"),
    }
    ids = ("1", "2", "3", "4")
    got = hl.decide_links(ids, {}, observations, had_decision=True)
    # 1-2: both ends say down. 1-3: one end says up. 2-3: up. x-4: no report, keeps "up".
    assert got == {("1", "2"): "down"}
    first = hl.decide_links(ids, {}, observations, had_decision=False)
    assert first == {("1", "2"): "down", ("1", "4"): "unverified", ("2", "4"): "unverified",
                     ("3", "4"): "unverified"}
    kept = hl.decide_links(ids, {("1", "4"): "down"}, observations, had_decision=True)
    assert kept[("1", "4")] == "down"
    back = hl.decide_links(ids, {("1", "2"): "down"}, {"1": obs("1", _2="up")}, True)
    assert ("1", "2") not in back
