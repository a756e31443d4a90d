"""Merge laws of the node map (a state-based CRDT), codecs and anti-entropy, as properties.

Maps come from ``strategies.related_maps``: sections overlap between maps, and — unless a
test says otherwise — two maps may hold one section at the same version with different
content, the case where only the canonical tie-break keeps the merge a join.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Dict, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CORE, node_maps, related_maps, shuffled_copy, timeline_pool, timelines

from esgf_nodemgr.core import merge as mg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError


def version_tuples(m: nm.NodeMap) -> Dict[str, Tuple[Any, ...]]:
    """Each section's version, without the content fingerprint that ``versions`` appends."""
    return {name: tuple(v[:-1]) for name, v in mg.versions(m).items()}


def copy_of(m: nm.NodeMap) -> nm.NodeMap:
    """An equal map that is a different object (``merge`` short-cuts ``a is b``)."""
    return mg.parse_sections(json.loads(json.dumps(nm.sections(m))))


# -- the laws -------------------------------------------------------------------------------
# Each law is a function; one example (three maps from one universe) checks them all, which
# keeps the number of generated maps — the expensive part — low.
def commutative(a: nm.NodeMap, b: nm.NodeMap) -> None:
    assert mg.merge(a, b) == mg.merge(b, a), "merge is not commutative"


def associative(a: nm.NodeMap, b: nm.NodeMap, c: nm.NodeMap) -> None:
    assert mg.merge(mg.merge(a, b), c) == mg.merge(a, mg.merge(b, c)), \
        "merge is not associative"


def idempotent(a: nm.NodeMap) -> None:
    assert mg.merge(a, copy_of(a)) == a, "merge(a, a) != a"
    assert mg.merge(a, replace(a)) == a, "merge(a, a) != a"


def absorbing(a: nm.NodeMap, b: nm.NodeMap) -> None:
    # Receiving the same update twice changes nothing the second time.
    ab = mg.merge(a, b)
    assert mg.merge(ab, copy_of(b)) == ab, "a duplicate update changed the map"
    assert mg.merge(copy_of(a), ab) == ab, "an old update changed the map"


def monotone(a: nm.NodeMap, b: nm.NodeMap) -> None:
    merged_map = mg.merge(a, b)
    merged = version_tuples(merged_map)
    for side in (a, b):
        for name, version in version_tuples(side).items():
            assert name in merged, f"section {name} lost"
            if name == "timeline":
                # (round, leader) of its newest item.
                assert merged[name] >= version, (merged[name], version)
                assert len(merged_map.timeline) >= len(side.timeline)
            else:
                assert merged[name] >= version, (name, merged[name], version)


def one_of_the_inputs(a: nm.NodeMap, b: nm.NodeMap) -> None:
    # A join of registers: no section of the result is a mixture (the timeline is a set).
    merged = nm.sections(mg.merge(a, b))
    sa, sb = nm.sections(a), nm.sections(b)
    for name, value in merged.items():
        if name != "timeline":
            assert value in (sa.get(name), sb.get(name)), f"section {name} is a mixture"


@CORE
@given(related_maps(3))
def test_merge_is_a_semilattice_join(maps: Tuple[nm.NodeMap, ...]) -> None:
    """Commutative, associative, idempotent, absorbing, monotone; same-version conflicts
    included."""
    a, b, c = maps
    commutative(a, b)
    commutative(b, c)
    associative(a, b, c)
    idempotent(a)
    absorbing(a, b)
    monotone(a, b)
    one_of_the_inputs(a, c)


@CORE
@given(related_maps(2, conflicts=False))
def test_merge_laws_without_conflicts(maps: Tuple[nm.NodeMap, ...]) -> None:
    a, b = maps
    commutative(a, b)
    idempotent(b)
    absorbing(b, a)
    monotone(a, b)
    # Sections a peer did not send parse to version-0 defaults, which never win.
    assert mg.merge(a, mg.parse_sections({})) == a
    assert mg.merge(mg.parse_sections({}), a) == a


def test_merge_of_same_version_conflict_is_decided_by_content() -> None:
    # Two entries claiming version 3 with different members: both orders pick the same one.
    x = nm.Entry("1", 3, 3, (nm.Member("1.1", "a.org", "CMIP6"),))
    y = nm.Entry("1", 3, 3, (nm.Member("1.2", "b.org", "CMIP6"),))
    assert mg.merge_entry(x, y) == mg.merge_entry(y, x)
    newer = nm.Entry("1", 4)
    assert mg.merge_entry(x, newer) == newer == mg.merge_entry(newer, y)


@CORE
@given(node_maps)
def test_merge_with_own_sections_is_identity(a: nm.NodeMap) -> None:
    parsed = mg.parse_sections(nm.sections(a))
    assert parsed == a
    assert mg.merge(a, parsed) == a
    assert mg.merge(parsed, a) == a
    # ... and nothing depends on the insertion order of the map's dicts.
    assert mg.merge(a, shuffled_copy(a)) == a
    assert nm.digest(shuffled_copy(a)) == nm.digest(a)


@CORE
@given(st.data())
def test_timeline_merge_is_a_join_with_truncation(data: st.DataObject) -> None:
    # A short length makes truncation happen in most examples.
    pool = timeline_pool(30, ("a", "b"))
    a, b, c = (data.draw(timelines(pool, max_size=12)) for _ in range(3))
    n = 5
    a, b, c = (mg.merge_timeline(x, (), n) for x in (a, b, c))
    assert mg.merge_timeline(a, b, n) == mg.merge_timeline(b, a, n)
    assert mg.merge_timeline(mg.merge_timeline(a, b, n), c, n) == \
        mg.merge_timeline(a, mg.merge_timeline(b, c, n), n)
    assert mg.merge_timeline(a, a, n) == a
    ab = mg.merge_timeline(a, b, n)
    assert len(ab) <= n
    assert [t.version for t in ab] == sorted({t.version for t in a + b})[-n:]


# -- codecs ---------------------------------------------------------------------------------
@CORE
@given(node_maps)
def test_json_and_sections_round_trip(a: nm.NodeMap) -> None:
    assert nm.map_from_json(json.loads(json.dumps(nm.map_to_json(a)))) == a
    assert nm.load_map_text(nm.dump_map_text(a)) == a
    assert nm.from_sections(json.loads(json.dumps(nm.sections(a)))) == a


@CORE
@given(related_maps(2))
def test_digest_equal_iff_maps_equal(maps: Tuple[nm.NodeMap, ...]) -> None:
    a, b = maps
    assert (nm.digest(a) == nm.digest(b)) == (a == b)
    # What a node persists after a change is exactly what differs.
    changed = mg.changed_sections(a, b)
    sa, sb = nm.sections(a), nm.sections(b)
    assert set(changed) == {k for k in sb if sa.get(k) != sb[k]}


def test_digest_sees_a_one_field_change() -> None:
    m = nm.NodeMap(entries={"1": nm.Entry("1", 1, 2, (nm.Member("1.1", "a", "CMIP6"),))})
    changed = m.with_entry(nm.Entry("1", 1, 2, (nm.Member("1.1", "a", "CMIP6", standby=True),)))
    assert nm.digest(m) != nm.digest(changed)


# -- anti-entropy ---------------------------------------------------------------------------
def exchange(a: nm.NodeMap, b: nm.NodeMap) -> Tuple[nm.NodeMap, nm.NodeMap]:
    """One Sync round trip, as the supernodes do it, through JSON both ways.

    A sends its versions; B answers with its newer sections and the names it wants; A merges
    those and sends what B wanted; B merges.
    """
    asked = json.loads(json.dumps(mg.versions(a)))
    reply = json.loads(json.dumps(mg.newer_sections(b, asked)))
    want = mg.wanted_sections(b, asked)
    a2 = mg.merge(a, mg.parse_sections(reply))
    pushed = json.loads(json.dumps({k: v for k, v in nm.sections(a2).items() if k in want}))
    b2 = mg.merge(b, mg.parse_sections(pushed))
    return a2, b2


@CORE
@given(related_maps(2, conflicts=True))
def test_one_sync_round_trip_makes_maps_equal(maps: Tuple[nm.NodeMap, ...]) -> None:
    # Including two different values at the same version (a writer restarted from an empty
    # store): the fingerprints in ``versions`` make both travel, and the merge's tie-break
    # then settles both sides on the same one.
    a, b = maps
    a2, b2 = exchange(a, b)
    assert a2 == b2 == mg.merge(a, b)
    assert nm.digest(a2) == nm.digest(b2)
    # Only what the other lacks travels: every section sent changes its receiver (except the
    # timeline and same-version conflicts, which both sides send whenever they differ).
    sent = mg.newer_sections(b, mg.versions(a))
    conflicts = {name for name, v in mg.versions(a).items()
                 if name in mg.versions(b) and v[:-1] == mg.versions(b)[name][:-1]}
    for name in set(sent) - {"timeline"} - conflicts:
        merged = mg.merge(a, mg.parse_sections({name: sent[name]}))
        assert nm.sections(merged).get(name) != nm.sections(a).get(name), name
    # Equal maps exchange nothing.
    assert mg.newer_sections(a2, mg.versions(copy_of(b2))) == {}
    assert mg.wanted_sections(a2, mg.versions(copy_of(b2))) == []


def test_sync_notices_timelines_with_the_same_newest_item_and_length() -> None:
    # A missed decision 1, B missed decision 2 (a partition); both saw 3 and hold 2 items.
    t = [nm.TimelineItem(r, "1", f"round {r}") for r in (1, 2, 3)]
    a = nm.NodeMap(roster=nm.Roster(version=1), timeline=(t[0], t[2]))
    b = nm.NodeMap(roster=nm.Roster(version=1), timeline=(t[1], t[2]))
    a2, b2 = exchange(a, b)
    assert a2.timeline == b2.timeline == tuple(t)


# -- strict parsing of sections -------------------------------------------------------------
@pytest.mark.parametrize("sections, where", [
    ({"bogus": {}}, "$['bogus']"),
    ({"entry/1": {"supernode": "2", "version": 1, "members": []}}, "$['entry/1'].supernode"),
    ({"report/1": {"supernode": "1", "version": -1}}, "$['report/1'].version"),
    ({"roster": {"version": 1, "supernodes": [{"id": "1", "hostname": "a", "port": 0}]}},
     "$['roster'].supernodes[0].port"),
    ({"decision": {"round": 1, "leader": "1", "links": [["1", "2"]]}}, "$['decision'].links[0]"),
    ({"entry/1": {"supernode": "1", "version": 1, "members": [
        {"id": "1.1", "hostname": "a", "project": "P"},
        {"id": "1.2", "hostname": "a", "project": "P"}]}}, "$['entry/1'].members"),
    ({"x" * 90: {}}, "section name too long"),
])
def test_parse_sections_names_the_bad_path(sections: Dict[str, Any], where: str) -> None:
    with pytest.raises(MapFormatError) as info:
        mg.parse_sections(sections)
    assert where in str(info.value)


def test_from_sections_rejects_unknown_section() -> None:
    with pytest.raises(MapFormatError, match="unknown section"):
        nm.from_sections({"nonsense": {}})


def test_map_from_json_lists_every_problem() -> None:
    doc = {"format": nm.FORMAT,
           "roster": {"version": 1, "next_id": 2, "supernodes": [
               {"id": "1", "hostname": "a"}, {"id": "1", "hostname": "a"}]},
           "entries": {"1": {"supernode": "1", "version": "1", "members": []}}}
    with pytest.raises(MapFormatError) as info:
        nm.map_from_json(doc)
    text = "\n".join(info.value.problems)
    assert "$.roster.supernodes[1].id" in text
    assert "$.roster.supernodes[1].hostname" in text
    assert "$.entries['1'].version" in text
