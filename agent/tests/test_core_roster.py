"""Roster and ids: stable per hostname forever, never reused, versions bumped only on change."""

from __future__ import annotations

from typing import Dict, List

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CORE

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import roster as ro
from esgf_nodemgr.core.errors import RosterError


def specs(*hosts: str) -> List[ro.SupernodeSpec]:
    return [ro.SupernodeSpec(h) for h in hosts]


def ids_by_host(r: nm.Roster) -> Dict[str, str]:
    return {s.hostname: s.id for s in r.supernodes}


def test_first_roster_numbers_supernodes_in_order() -> None:
    r = ro.build_roster(nm.Roster(), specs("a", "b", "c"))
    assert ids_by_host(r) == {"a": "1", "b": "2", "c": "3"}
    assert r.version == 1
    assert r.next_id == 4
    assert r.supernodes[0] == nm.Supernode("1", "a", "a", nm.DEFAULT_PORT)


def test_reordering_keeps_ids_and_changes_only_the_order() -> None:
    r1 = ro.build_roster(nm.Roster(), specs("a", "b", "c"))
    r2 = ro.build_roster(r1, specs("c", "a", "b"))
    assert ids_by_host(r2) == ids_by_host(r1)
    assert r2.ids == ("3", "1", "2")
    assert r2.version == r1.version + 1  # the order is rotation order: a real change


def test_rebuilding_the_same_inventory_is_a_no_op() -> None:
    r1 = ro.build_roster(nm.Roster(), specs("a", "b"), capacity=5)
    assert ro.build_roster(r1, specs("a", "b")) is r1
    assert ro.build_roster(r1, specs("a", "b"), capacity=5) is r1
    r2 = ro.build_roster(r1, specs("a", "b"), capacity=6)
    assert (r2.version, r2.capacity) == (r1.version + 1, 6)
    moved = ro.build_roster(r1, [ro.SupernodeSpec("a", address="10.0.0.1"), *specs("b")])
    assert moved.version == r1.version + 1
    assert moved.by_hostname("a") == nm.Supernode("1", "a", "10.0.0.1", nm.DEFAULT_PORT)


def test_new_host_gets_an_id_above_retired_ones() -> None:
    r1 = ro.build_roster(nm.Roster(), specs("a", "b", "c"))
    r2 = ro.build_roster(r1, specs("a", "b"))
    assert [(x.id, x.hostname) for x in r2.retired] == [("3", "c")]
    r3 = ro.build_roster(r2, specs("a", "b", "d"))
    assert ids_by_host(r3)["d"] == "4"


def test_new_host_gets_an_id_above_legacy_gaps() -> None:
    # A prototype map may hold ids such as 1, 2 and 11 with next_id not yet above them.
    legacy = nm.Roster(version=3, supernodes=(nm.Supernode("1", "a", "a"),
                                              nm.Supernode("11", "b", "b")), next_id=2)
    r = ro.build_roster(legacy, specs("a", "b", "c"))
    assert ids_by_host(r) == {"a": "1", "b": "11", "c": "12"}
    assert r.next_id == 13


def test_new_host_gets_an_id_above_numeric_member_ids() -> None:
    r1 = ro.build_roster(nm.Roster(), specs("a"))
    r2 = ro.build_roster(r1, specs("a", "b"), used_ids=["40", "1.7", "x"])
    assert ids_by_host(r2)["b"] == "41"


def test_generate_counts_member_ids_as_used() -> None:
    m = ro.generate(specs("a"))
    member = nm.Member("57", "m.org", "CMIP6")
    m = m.with_entry(nm.Entry("1", 1, 2, (member,)))
    m2 = ro.generate(specs("a", "b"), m)
    assert ids_by_host(m2.roster)["b"] == "58"
    assert m2.entries["58"] == nm.Entry("58")


def test_removed_host_is_retired_and_gets_its_id_back() -> None:
    r1 = ro.build_roster(nm.Roster(), specs("a", "b", "c"))
    r2 = ro.build_roster(r1, specs("a", "c"))
    assert [x.hostname for x in r2.retired] == ["b"]
    r3 = ro.build_roster(r2, specs("a", "c", "d"))
    r4 = ro.build_roster(r3, specs("b", "a", "c", "d"))
    assert ids_by_host(r4) == {"a": "1", "b": "2", "c": "3", "d": "4"}
    assert r4.retired == ()
    assert r4.version == 4


@pytest.mark.parametrize("bad, message", [
    (specs("a", "b", "a"), "'a' is listed twice (#1 and #3)"),
    ([ro.SupernodeSpec("a", port=0)], "port 0 out of range"),
    ([ro.SupernodeSpec("a", port=65536)], "port 65536 out of range"),
    (specs("a", ""), "supernode #2 has an empty hostname"),
])
def test_bad_inventories_are_rejected_clearly(bad: List[ro.SupernodeSpec], message: str
                                              ) -> None:
    current = ro.build_roster(nm.Roster(), specs("a"))
    with pytest.raises(RosterError) as info:
        ro.build_roster(current, bad)
    assert message in str(info.value)


def test_capacity_below_one_is_rejected() -> None:
    with pytest.raises(RosterError, match="capacity must be at least 1"):
        ro.build_roster(nm.Roster(), specs("a"), capacity=0)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8])
def test_links_are_every_unordered_pair_once(n: int) -> None:
    r = ro.build_roster(nm.Roster(), specs(*[f"h{i}" for i in range(n)]))
    links = r.links()
    assert len(links) == n * (n - 1) // 2
    assert len(set(links)) == len(links)
    assert all(a != b and (a, b) == nm.pair(b, a) for a, b in links)


def test_pair_orders_numeric_ids_numerically() -> None:
    assert nm.pair("11", "2") == ("2", "11")
    assert nm.pair("3.1", "2") == ("2", "3.1")


def test_add_and_remove_supernode() -> None:
    m = ro.generate(specs("a", "b"))
    m = ro.add_supernode(m, ro.SupernodeSpec("c"))
    assert m.roster.ids == ("1", "2", "3")
    with pytest.raises(RosterError, match="already supernode 3"):
        ro.add_supernode(m, ro.SupernodeSpec("c"))
    with pytest.raises(RosterError, match="not a supernode"):
        ro.remove_supernode(m, "zz")
    m = m.with_entry(nm.Entry("2", 1, 3, (nm.Member("2.1", "x", "P"), nm.Member("2.2", "y", "P"))))
    with pytest.raises(RosterError, match="still serves 2 member"):
        ro.remove_supernode(m, "b")
    moved = ro.remove_supernode(m, "b", move_members=True)
    assert moved.roster.ids == ("1", "3")
    assert moved.entries["2"].members == ()
    # Members keep their ids and are spread over the rest, least loaded first.
    homes = {mem.hostname: (sid, mem.id) for sid, mem in moved.all_members()}
    assert homes == {"x": ("1", "2.1"), "y": ("3", "2.2")}
    assert moved.entries["2"].version == 2


def test_removing_every_supernode_with_members_is_refused() -> None:
    m = ro.generate(specs("a"))
    m = m.with_entry(nm.Entry("1", 1, 2, (nm.Member("1.1", "x", "P"),)))
    with pytest.raises(RosterError, match="would have no home"):
        ro.remove_supernode(m, "a", move_members=True)


hostnames = st.sampled_from([f"h{i}.org" for i in range(10)])


@CORE
@given(st.lists(st.lists(hostnames, unique=True, max_size=6), min_size=1, max_size=8))
def test_ids_are_stable_and_never_reused(inventories: List[List[str]]) -> None:
    """Through any sequence of inventories: a hostname keeps its first id forever, no id
    ever names two hostnames, the version goes up exactly when something changed."""
    roster = nm.Roster()
    first_id: Dict[str, str] = {}
    for hosts in inventories:
        new = ro.build_roster(roster, specs(*hosts))
        for s in new.supernodes:
            assert first_id.setdefault(s.hostname, s.id) == s.id
        assert len(set(first_id.values())) == len(first_id)
        assert new.version == roster.version + (new != roster)
        assert {x.hostname for x in new.retired} == set(first_id) - set(hosts)
        assert new.next_id > max(int(i) for i in first_id.values()) if first_id else True
        # Every roster the builder makes passes the strict parser.
        assert nm.map_from_json(nm.map_to_json(nm.NodeMap(roster=new))).roster == new
        roster = new
