"""Import and export of the prototype's node map (``core/legacy.py``).

Samples of real prototype maps are read from the shared folder next to the repository when it
is there (they are not copied into the repository); our own fixtures live in
``fixtures/legacy``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esgf_nodemgr.core import legacy, roster, view
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "legacy"
MAP_FIXTURES = HERE / "fixtures" / "maps"
SHARED_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "esgf" / "legacy-maps"

OWN = sorted(FIXTURES.glob("*.json"))


def _sample_params() -> List[Any]:
    samples = sorted(SHARED_SAMPLES.glob("*.json")) if SHARED_SAMPLES.is_dir() else []
    if not samples:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"prototype sample maps not found in {SHARED_SAMPLES}"), id="no-samples")]
    return [pytest.param(p, id=f"shared-{p.name}") for p in samples]


ALL = [*_sample_params(), *(pytest.param(p, id=p.name) for p in OWN)]


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def shared(name: str) -> Any:
    path = SHARED_SAMPLES / name
    if not path.is_file():
        pytest.skip(f"prototype sample {name} not found in {SHARED_SAMPLES}")
    return load(path)


# --------------------------------------------------------------------------------------------
# The documented normalization, written independently of the importer
# --------------------------------------------------------------------------------------------
def _health(value: Optional[str]) -> str:
    return "new" if value in (None, "unverified") else str(value)


def _speed(value: Any) -> float:
    if value is None or value < 0:
        return -1.0
    return float(round(round(value * 1000, 3) / 1000, 6))


def normalize(x: Dict[str, Any]) -> Dict[str, Any]:
    """What ``to_legacy(from_legacy(x))`` must give, per the module docstring."""
    ids = [s["id"] for s in x["supernodes"]]

    def member(m: Dict[str, Any], health: Optional[str] = None) -> Dict[str, Any]:
        return {"id": m["id"], "hostname": m["hostname"], "project": m["project"],
                "standby": m.get("standby", False),
                "health": _health(m.get("health")) if health is None else health}

    originals: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    copies: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for e in x["membernodes"]:
        for m in e.get("members", []):
            if m.get("temp_assign"):
                copies[m["hostname"]] = (e["supernode"], m)
            else:
                originals[m["hostname"]] = (e["supernode"], member(m))
    for host, (_, m) in copies.items():
        originals.setdefault(host, (m["prev_owner"], member(m, "new")))
    membernodes = []
    for sid in ids:
        own = [m for _, (home, m) in sorted(originals.items()) if home == sid]
        adopted = [dict(member(m), temp_assign=True, prev_owner=m["prev_owner"])
                   for _, (target, m) in sorted(copies.items()) if target == sid]
        membernodes.append({"supernode": sid, "members": own + adopted})
    listed = {nm.pair(link["from"], link["to"]): link for link in x["links"]}
    links = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            a, b = nm.pair(ids[i], ids[j])
            link = listed.get((a, b), {"status": "unverified"})
            links.append({"from": a, "to": b, "status": link["status"],
                          "speed": _speed(link.get("speed"))})
    out = {
        "supernodes": [{"id": s["id"], "hostname": s["hostname"],
                        "health": _health(s.get("health"))} for s in x["supernodes"]],
        "membernodes": membernodes,
        "links": links,
        "total_supernodes": len(ids),
        "total_membernodes": len(originals),
    }
    if "create_timestamp" in x:
        out["create_timestamp"] = x["create_timestamp"]
    return out


# --------------------------------------------------------------------------------------------
# Round trips over samples and fixtures
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ALL)
def test_import_export_import_is_identity(path: Path) -> None:
    m = legacy.from_legacy(load(path))
    assert legacy.from_legacy(legacy.to_legacy(m)) == m


@pytest.mark.parametrize("path", ALL)
def test_export_of_import_is_the_normalized_input(path: Path) -> None:
    x = load(path)
    imported = legacy.read_legacy(x)
    assert legacy.to_legacy(imported.map, create_timestamp=imported.create_timestamp) == \
        normalize(x)


@pytest.mark.parametrize("path", ALL)
def test_imported_map_is_valid_in_our_format(path: Path) -> None:
    m = legacy.from_legacy(load(path))
    assert nm.map_from_json(json.loads(nm.dump_map_text(m))) == m
    assert legacy.load_any(nm.map_to_json(m)) == m


def test_large_fixture_imports_to_the_golden_map() -> None:
    # Guards the mapping table: any change to how a prototype map is read shows up here.
    golden = nm.map_from_json(load(MAP_FIXTURES / "large-imported.json"))
    assert legacy.from_legacy(load(FIXTURES / "large.json")) == golden


def test_samples_without_members_key_have_no_members() -> None:
    m = legacy.from_legacy(shared("node_mgr_map.super.json"))
    assert m.roster.ids == ("1", "2", "3")
    assert all(not e.members for e in m.entries.values())
    assert m.decision is not None
    assert dict(m.decision.links) == {("1", "2"): "init", ("1", "3"): "init",
                                      ("2", "3"): "init"}
    assert m.reports == {}  # every speed is -1.0: never measured


def test_sample_map_maps_as_documented() -> None:
    m = legacy.from_legacy(shared("node_mgr_map.json"))
    assert m.roster.ids == ("1", "2", "3", "4")
    assert m.roster.version == 1 and m.roster.next_id == 7 and m.roster.retired == ()
    assert m.roster.by_id("1") == nm.Supernode("1", "aims2.llnl.gov", "aims2.llnl.gov")
    assert [x.id for x in m.entry("1").members] == ["5"]
    assert m.entry("2").members[0] == nm.Member("6", "greyworm7", "ACME", False, 0)
    assert m.decision == nm.Decision(round=0, leader="", health=dict.fromkeys(m.roster.ids, "good"),
                                     summary=legacy.IMPORT_SUMMARY)
    assert m.report("1").rtt_ms == {"2": 15.401, "3": 9.57, "4": 8.291}
    assert m.report("1").members == {"greyworm3.llnl.gov": "good"}


def test_empty_sample() -> None:
    m = legacy.from_legacy(shared("node_mgr_map.empty.json"))
    assert m.roster.supernodes == () and m.decision is None and m.roster.next_id == 1


def test_gaps_fixture_keeps_ids_and_placement() -> None:
    imported = legacy.read_legacy(load(FIXTURES / "gaps.json"))
    m = imported.map
    assert imported.warnings == ()
    assert imported.create_timestamp == 1461172342.117
    assert m.roster.ids == ("1", "2", "5", "11")
    assert m.roster.next_id == 18  # above member id "17"
    assert m.decision is not None
    assert m.decision.placement == {"vesg.ipsl.example": "1"}
    assert m.decision.links == {("1", "5"): "down", ("2", "5"): "down", ("5", "11"): "down"}
    assert m.report("1").members["vesg.ipsl.example"] == "good"
    by_host = {v.hostname: v for v in view.members(m)}
    vesg = by_host["vesg.ipsl.example"]
    assert (vesg.home, vesg.server, vesg.adopted, vesg.health) == ("5", "1", True, "good")
    assert by_host["esgf1.dkrz.example"].health == "unreachable"
    assert [(s.id, s.members, s.adopted) for s in view.supernodes(m)] == [
        ("1", 2, 1), ("2", 1, 0), ("5", 0, 0), ("11", 0, 0)]


def test_quirks_fixture_is_tolerated_with_warnings() -> None:
    imported = legacy.read_legacy(load(FIXTURES / "quirks.json"))
    m = imported.map
    assert sorted(imported.warnings) == sorted([
        "$.comment: unknown key, ignored",
        "$.membernodes[0].members[1].prev_owner: ignored (temp_assign is false)",
        "$.links[2].probe: unknown key, ignored",
        "$.links: no link between supernodes '3' and '9'; taken as unverified",
        "$.links: no link between supernodes '1' and '9'; taken as unverified",
        "$.links: no link between supernodes '7' and '9'; taken as unverified",
        "$.total_membernodes: says 3 but the lists hold 2 members",
    ])
    assert m.roster.ids == ("3", "1", "7", "9")  # list order is roster order
    # The copy's original is missing: the member lives in its prev_owner's entry.
    assert [x.hostname for x in m.entry("1").members] == ["orphan.example.net"]
    assert m.decision is not None and m.decision.placement == {"orphan.example.net": "3"}
    assert m.decision.health == {"3": "good", "1": "bad", "7": "new", "9": "unhealthy"}
    assert m.decision.links[("1", "3")] == "down"
    # Speeds: oriented low -> high id, microseconds, negative = unknown.
    assert m.report("3").rtt_ms == {"7": 50.0}
    assert m.report("1").rtt_ms == {"7": 123.457}


def test_missing_totals_are_a_warning() -> None:
    x = load(FIXTURES / "gaps.json")
    del x["total_supernodes"]
    x["total_membernodes"] = 9
    warnings = legacy.read_legacy(x).warnings
    assert "$.total_supernodes: missing (the lists hold 4 supernodes)" in warnings
    assert "$.total_membernodes: says 9 but the lists hold 4 members" in warnings


# --------------------------------------------------------------------------------------------
# Ids on imported maps: kept, never reused
# --------------------------------------------------------------------------------------------
def test_add_supernode_to_imported_map_gets_a_fresh_id() -> None:
    m = legacy.from_legacy(load(FIXTURES / "gaps.json"))
    added = roster.add_supernode(m, roster.SupernodeSpec("new.example.org"))
    assert added.roster.ids == ("1", "2", "5", "11", "18")
    assert legacy.to_legacy(added)["supernodes"][-1] == {
        "id": "18", "hostname": "new.example.org", "health": "new"}
    # A supernode the imported decision never judged has unverified links, not "up".
    links = {(x["from"], x["to"]): x["status"] for x in legacy.to_legacy(added)["links"]}
    assert links[("1", "18")] == "unverified" and links[("1", "2")] == "up"


def test_removed_ids_are_retired_and_members_move() -> None:
    m = legacy.from_legacy(load(FIXTURES / "gaps.json"))
    hosts = [s.hostname for s in m.roster.supernodes]
    without_5 = roster.generate([roster.SupernodeSpec(h) for h in hosts if h != hosts[2]], m)
    assert [x.id for x in without_5.roster.retired] == ["5"]
    assert len(view.member_claims(without_5)) == 4
    again = roster.generate([roster.SupernodeSpec(h) for h in [*hosts[:2], hosts[3], "x.org"]],
                            without_5)
    assert again.roster.by_hostname("x.org").id == "18"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Export of our own maps
# --------------------------------------------------------------------------------------------
def test_export_of_a_generated_map() -> None:
    specs = [roster.SupernodeSpec(h) for h in ("a.org", "b.org", "c.org", "d.org", "e.org")]
    m = roster.generate(specs)
    m = m.with_entry(nm.Entry("2", 1, 2, (nm.Member("2.1", "m.org", "CMIP6"),)))
    doc = legacy.to_legacy(m)
    assert len(doc["links"]) == 10
    assert {(x["status"], x["speed"]) for x in doc["links"]} == {("unverified", -1.0)}
    assert [s["health"] for s in doc["supernodes"]] == ["new"] * 5
    assert doc["total_supernodes"] == 5 and doc["total_membernodes"] == 1
    assert doc["membernodes"][1] == {"supernode": "2", "members": [{
        "id": "2.1", "hostname": "m.org", "project": "CMIP6", "standby": False,
        "health": "new"}]}
    assert "create_timestamp" not in doc
    assert legacy.to_legacy(m, create_timestamp=12.5)["create_timestamp"] == 12.5
    assert legacy.export_losses(m) == []


def test_export_of_a_running_map_lists_its_losses() -> None:
    m = nm.map_from_json(load(MAP_FIXTURES / "federation.json"))
    losses = legacy.export_losses(m)
    assert any("sn-b.example.org" in x for x in losses)
    assert any(x.startswith("retired supernode ids 4") for x in losses)
    assert any("promoted standbys" in x for x in losses)
    doc = legacy.to_legacy(m)
    copies = {(e["supernode"], x["hostname"], x["prev_owner"]) for e in doc["membernodes"]
              for x in e["members"] if x.get("temp_assign")}
    # dn3.c.example is placed on a promoted standby: not expressible, stays home only.
    assert copies == {("1", "dn1.c.example", "3"), ("2", "dn2.c.example", "3")}
    back = legacy.from_legacy(doc)
    assert back.decision is not None
    assert back.decision.placement == {"dn1.c.example": "1", "dn2.c.example": "2"}
    assert legacy.from_legacy(legacy.to_legacy(back)) == back


def test_export_refuses_members_of_a_supernode_not_in_the_roster() -> None:
    m = roster.generate([roster.SupernodeSpec("a.org")])
    m = m.with_entry(nm.Entry("9", 1, 2, (nm.Member("9.1", "m.org", "P"),)))
    with pytest.raises(MapFormatError) as err:
        legacy.to_legacy(m)
    assert err.value.problems[0].startswith("$.entries['9']: supernode '9' is not in the roster")


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------
def test_detect_format() -> None:
    ours = nm.map_to_json(roster.generate([roster.SupernodeSpec("a.org")]))
    assert legacy.detect_format(ours) == "ours"
    assert legacy.detect_format(load(FIXTURES / "init.json")) == "legacy"
    for bad, message in (({"hello": 1}, "$: not a node map: expected 'format'"),
                         ([], "$: not a node map: expected an object, got []")):
        with pytest.raises(MapFormatError) as err:
            legacy.detect_format(bad)
        assert err.value.problems[0].startswith(message)
    assert legacy.load_any(ours) == nm.map_from_json(ours)


# --------------------------------------------------------------------------------------------
# Rejected: each problem names its JSON path
# --------------------------------------------------------------------------------------------
Mutation = Callable[[Dict[str, Any]], None]


def _sn(x: Dict[str, Any], i: int) -> Dict[str, Any]:
    return x["supernodes"][i]  # type: ignore[no-any-return]


def _mem(x: Dict[str, Any], k: int, j: int) -> Dict[str, Any]:
    return x["membernodes"][k]["members"][j]  # type: ignore[no-any-return]


def _add_member(x: Dict[str, Any], k: int, **fields: Any) -> None:
    x["membernodes"][k]["members"].append(fields)


def _supernodes_not_a_list(x: Dict[str, Any]) -> None:
    x["supernodes"] = 5


def _copy_adopted_by_home(x: Dict[str, Any]) -> None:
    x["membernodes"][0]["members"].pop(2)
    _add_member(x, 2, **dict(_mem(x, 2, 0), temp_assign=True, prev_owner="5"))


# gaps.json: supernodes 1, 2, 5, 11 (entries 0..3); entry 0 holds 12, 17 and a copy of 14
# (home 5, entry 2); entry 1 holds 13.
BAD: List[Tuple[str, Mutation, str]] = [
    ("supernodes not a list", _supernodes_not_a_list, "$.supernodes: expected an array"),
    ("missing supernodes", lambda x: x.pop("supernodes"), "$.supernodes: is required"),
    ("duplicate supernode id", lambda x: _sn(x, 1).update(id="1"),
     "$.supernodes[1].id: id '1' used twice (also $.supernodes[0])"),
    ("duplicate hostname", lambda x: _sn(x, 3).update(hostname=_sn(x, 0)["hostname"]),
     "$.supernodes[3].hostname: hostname 'esgf-node.llnl.example' listed twice"),
    ("integer id", lambda x: _sn(x, 0).update(id=1), "$.supernodes[0].id: expected a string"),
    ("id with a space", lambda x: _sn(x, 2).update(id="5 6"), "$.supernodes[2].id: node id"),
    ("non-ASCII digit id", lambda x: _sn(x, 2).update(id="\u00b2"),
     "$.supernodes[2].id: node id"),
    ("hostname with a slash", lambda x: _sn(x, 0).update(hostname="a/b"),
     "$.supernodes[0].hostname: not a hostname"),
    ("unknown health", lambda x: _sn(x, 0).update(health="dead"),
     "$.supernodes[0].health: must be one of"),
    ("link to unknown supernode", lambda x: x["links"][0].update(to="7"),
     "$.links[0].to: unknown supernode '7'"),
    ("link to itself", lambda x: x["links"][0].update(to="1"),
     "$.links[0]: link from supernode '1' to itself"),
    ("link given twice", lambda x: x["links"].append({"from": "2", "to": "1", "status": "up",
                                                      "speed": 1.0}),
     "$.links[6]: second link between '1' and '2' (also $.links[0])"),
    ("unknown link status", lambda x: x["links"][1].update(status="sideways"),
     "$.links[1].status: must be one of unverified, init, up, down"),
    ("speed not a number", lambda x: x["links"][1].update(speed="fast"),
     "$.links[1].speed: expected a number"),
    ("entry for unknown supernode", lambda x: x["membernodes"][3].update(supernode="12"),
     "$.membernodes[3].supernode: unknown supernode '12'"),
    ("entry given twice", lambda x: x["membernodes"][3].update(supernode="2"),
     "$.membernodes[3].supernode: supernode '2' has a second entry (also $.membernodes[1])"),
    ("members not an array", lambda x: x["membernodes"][3].update(members={}),
     "$.membernodes[3].members: expected an array"),
    ("member listed twice", lambda x: _add_member(x, 3, **{
        k: v for k, v in _mem(x, 1, 0).items()}),
     "$.membernodes[3].members[0].hostname: member 'esgf1.dkrz.example' listed twice "
     "(also $.membernodes[1].members[0])"),
    ("member id of a supernode", lambda x: _mem(x, 1, 0).update(id="11"),
     "$.membernodes[1].members[0].id: id '11' of member 'esgf1.dkrz.example' is already "
     "used by supernode 11"),
    ("member id of another member", lambda x: _mem(x, 1, 0).update(id="12"),
     "$.membernodes[1].members[0].id: id '12' of member 'esgf1.dkrz.example' is already used "
     "by member aims3.llnl.example"),
    ("member hostname of a supernode", lambda x: _mem(x, 1, 0).update(
        hostname="esgf.nci.example"),
     "$.membernodes[1].members[0].hostname: 'esgf.nci.example' is a supernode"),
    ("member without project", lambda x: _mem(x, 1, 0).pop("project"),
     "$.membernodes[1].members[0].project: is required"),
    ("standby not a boolean", lambda x: _mem(x, 1, 0).update(standby="no"),
     "$.membernodes[1].members[0].standby: expected true or false"),
    ("member health a supernode health", lambda x: _mem(x, 1, 0).update(health="bad"),
     "$.membernodes[1].members[0].health: must be one of"),
    ("copy without prev_owner", lambda x: _mem(x, 0, 2).pop("prev_owner"),
     "$.membernodes[0].members[2].prev_owner: is required for a temp_assign copy"),
    ("copy of unknown home", lambda x: _mem(x, 0, 2).update(prev_owner="7"),
     "$.membernodes[0].members[2].prev_owner: unknown supernode '7'"),
    ("copy adopted by its home", _copy_adopted_by_home,
     "$.membernodes[2].members[1].prev_owner: a copy cannot be adopted by its own home '5'"),
    ("copy names the wrong home", lambda x: _mem(x, 0, 2).update(prev_owner="2"),
     "$.membernodes[0].members[2].prev_owner: says '2' but $.membernodes[2].members[0] lists"),
    ("copy differs from original", lambda x: _mem(x, 0, 2).update(project="CMIP5"),
     "$.membernodes[0].members[2]: temp_assign copy of 'vesg.ipsl.example' differs"),
    ("two copies", lambda x: _add_member(x, 1, **_mem(x, 0, 2)),
     "$.membernodes[1].members[1].hostname: member 'vesg.ipsl.example' has a second "
     "temp_assign copy (also $.membernodes[0].members[2])"),
    ("temp_assign not a boolean", lambda x: _mem(x, 0, 2).update(temp_assign="yes"),
     "$.membernodes[0].members[2].temp_assign: expected true or false"),
    ("total not an integer", lambda x: x.update(total_supernodes="4"),
     "$.total_supernodes: expected an integer"),
    ("timestamp not a number", lambda x: x.update(create_timestamp="yesterday"),
     "$.create_timestamp: expected a number"),
]


@pytest.mark.parametrize(("mutate", "expected"), [pytest.param(f, e, id=n) for n, f, e in BAD])
def test_rejected_with_path(mutate: Mutation, expected: str) -> None:
    x = load(FIXTURES / "gaps.json")
    mutate(x)
    with pytest.raises(MapFormatError) as err:
        legacy.read_legacy(x)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_every_problem_is_listed() -> None:
    x = load(FIXTURES / "gaps.json")
    _sn(x, 1)["id"] = "1"
    x["links"][0]["status"] = "?"
    _mem(x, 1, 0)["standby"] = 1
    with pytest.raises(MapFormatError) as err:
        legacy.read_legacy(x)
    paths = [p.split(":")[0] for p in err.value.problems]
    assert {"$.supernodes[1].id", "$.links[0].status",
            "$.membernodes[1].members[0].standby"} <= set(paths)


def test_non_object_top_level() -> None:
    with pytest.raises(MapFormatError) as err:
        legacy.read_legacy(["supernodes"])
    assert err.value.problems[0].startswith("$: expected an object")


# --------------------------------------------------------------------------------------------
# Properties over generated prototype maps
# --------------------------------------------------------------------------------------------
PROPS = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])
HEALTH = ("new", "good", "unhealthy", "bad", "unreachable", "unverified")
SPEEDS = st.one_of(st.just(-1.0), st.floats(0, 1000, allow_nan=False),
                   st.floats(-5, -0.001))


@st.composite
def legacy_maps(draw: Any) -> Dict[str, Any]:
    numbers = draw(st.lists(st.integers(1, 40), min_size=0, max_size=7, unique=True))
    ids = [str(n) for n in numbers]
    sns = [{"id": i, "hostname": f"sn{i}.example", "health": draw(st.sampled_from(HEALTH))}
           for i in ids]
    free = [n for n in range(1, 120) if n not in numbers]
    member_ids = draw(st.lists(st.sampled_from(free), max_size=12, unique=True)) if ids else []
    membernodes: List[Dict[str, Any]] = [{"supernode": i, "members": []} for i in ids]
    for n in member_ids:
        k = draw(st.integers(0, len(ids) - 1))
        member = {"id": str(n), "hostname": f"m{n}.example", "project": "P",
                  "standby": draw(st.booleans()),
                  "health": draw(st.sampled_from(("new", "good", "unreachable", "unverified")))}
        membernodes[k]["members"].append(member)
        if len(ids) > 1 and draw(st.booleans()):
            target = draw(st.sampled_from([j for j in range(len(ids)) if j != k]))
            membernodes[target]["members"].append(dict(
                member, health=draw(st.sampled_from(("new", "good"))), temp_assign=True,
                prev_owner=ids[k]))
            if draw(st.integers(0, 4)) == 0:
                membernodes[k]["members"].remove(member)  # copy without its original
    for e in membernodes:
        draw(st.randoms()).shuffle(e["members"])
        if not e["members"] and draw(st.booleans()):
            del e["members"]
    links = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            if draw(st.integers(0, 9)) == 0:
                continue  # missing link
            ends = [ids[a], ids[b]]
            if draw(st.booleans()):
                ends.reverse()
            links.append({"from": ends[0], "to": ends[1], "speed": draw(SPEEDS),
                          "status": draw(st.sampled_from(nm.LINK_STATUS))})
    draw(st.randoms()).shuffle(links)
    draw(st.randoms()).shuffle(membernodes)
    return {"supernodes": sns, "membernodes": membernodes, "links": links,
            "total_supernodes": len(ids), "total_membernodes": len(member_ids)}


@PROPS
@given(legacy_maps())
def test_property_round_trips(x: Dict[str, Any]) -> None:
    original = copy.deepcopy(x)
    m = legacy.from_legacy(x)
    assert x == original  # the input is not modified
    exported = legacy.to_legacy(m)
    assert exported == normalize(x)
    assert legacy.from_legacy(exported) == m
    assert nm.map_from_json(nm.map_to_json(m)) == m


@PROPS
@given(st.floats(0, 1e6, allow_nan=False))
def test_property_rtt_is_stable_after_one_round(ms: float) -> None:
    m = roster.generate([roster.SupernodeSpec("a.org"), roster.SupernodeSpec("b.org")])
    m = replace(m.with_report(nm.Report("1", 1, {}, {"2": ms})),
                decision=nm.Decision(0, "", {"1": "good", "2": "good"}))
    once = legacy.from_legacy(legacy.to_legacy(m))
    assert abs(once.report("1").rtt_ms["2"] - ms) <= 0.0011  # type: ignore[operator]
    assert legacy.from_legacy(legacy.to_legacy(once)) == once


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.floats(allow_nan=False),
              st.sampled_from(["1", "2", "5", "11", "", "x y", "\u00b2", "up", "good"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["id", "hostname", "members",
                                                             "supernode", "from", "to"]),
                                            inner, max_size=3)),
    max_leaves=6)


def _paths(value: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@PROPS
@given(st.data())
def test_property_garbage_only_raises_map_format_error(data: st.DataObject) -> None:
    x = load(FIXTURES / "gaps.json")
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(x)[1:]
        where = data.draw(st.sampled_from(paths))
        parent = x
        for step in where[:-1]:
            parent = parent[step]
        parent[where[-1]] = data.draw(JSON_VALUES)
    try:
        m = legacy.from_legacy(x)
    except MapFormatError as exc:
        assert exc.problems and all(p.startswith("$") for p in exc.problems)
    else:
        assert legacy.from_legacy(legacy.to_legacy(m)) == m
