"""``core/nodemap.schema.json`` describes exactly what ``map_to_json`` writes.

Every map our code writes validates; every map the parser rejects for a structural reason is
rejected by the schema too. Checks that need more than one value at a time (uniqueness, next_id,
keys matching ids…) are the parser's alone: ``PARSER_ONLY`` lists them, and the schema's
description says so.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esgf_nodemgr.core import legacy, roster
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError

HERE = Path(__file__).resolve().parent
MAPS = sorted((HERE / "fixtures" / "maps").glob("*.json"))
LEGACY = sorted((HERE / "fixtures" / "legacy").glob("*.json"))


def _schema() -> Dict[str, Any]:
    # Read as package data, as an installed package would be.
    text = resources.files("esgf_nodemgr.core").joinpath("nodemap.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


SCHEMA = _schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def schema_errors(doc: Any) -> List[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_enums_match_the_code() -> None:
    defs = SCHEMA["$defs"]
    assert tuple(defs["memberHealth"]["enum"]) == nm.MEMBER_HEALTH
    assert tuple(defs["supernodeHealth"]["enum"]) == nm.SUPERNODE_HEALTH
    assert tuple(defs["linkStatus"]["enum"]) == nm.LINK_STATUS
    assert SCHEMA["properties"]["format"]["const"] == nm.FORMAT
    assert defs["roster"]["properties"]["capacity"]["maximum"] == nm.MAX_NODES
    assert defs["hostname"]["maxLength"] == nm.MAX_HOSTNAME


# --------------------------------------------------------------------------------------------
# Everything we write validates
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", MAPS, ids=lambda p: p.name)
def test_fixture_maps_validate(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    assert nm.map_to_json(nm.map_from_json(doc)) == doc


@pytest.mark.parametrize("path", LEGACY, ids=lambda p: p.name)
def test_imported_maps_validate(path: Path) -> None:
    m = legacy.from_legacy(json.loads(path.read_text()))
    assert schema_errors(nm.map_to_json(m)) == []


def test_empty_and_generated_maps_validate() -> None:
    assert schema_errors(nm.map_to_json(nm.NodeMap())) == []
    m = roster.generate([roster.SupernodeSpec("a.org"), roster.SupernodeSpec("b.org", "::1", 9)])
    m = roster.remove_supernode(m, "a.org")
    assert schema_errors(nm.map_to_json(m)) == []


ID = st.one_of(st.integers(1, 60).map(str),
               st.text("abcXYZ019.-_", min_size=1, max_size=8))
HOST = st.text("abcdefghij.-0123456789", min_size=1, max_size=30)


@st.composite
def any_maps(draw: Any) -> nm.NodeMap:
    """Maps built through the value classes and round-tripped through the parser."""
    hosts = draw(st.lists(HOST, min_size=0, max_size=5, unique=True))
    specs = [roster.SupernodeSpec(h, draw(st.sampled_from([None, "10.0.0.1"])),
                                  draw(st.integers(1, 65535))) for h in hosts]
    m = roster.generate(specs, capacity=draw(st.integers(1, nm.MAX_NODES)))
    if hosts and draw(st.booleans()):
        m = roster.remove_supernode(m, hosts[0])
    ids = list(m.roster.ids)
    seq = 0
    for sid in ids:
        members = []
        for h in draw(st.lists(HOST, max_size=3, unique=True)):
            seq += 1
            members.append(nm.Member(f"{sid}.{seq}", f"m-{sid}-{h}", draw(st.text(min_size=1,
                                                                                max_size=9)),
                                     draw(st.booleans()), draw(st.integers(0, 10**6))))
        m = m.with_entry(nm.Entry(sid, draw(st.integers(0, 99)), seq + 1, tuple(members)))
        rtt = {p: draw(st.one_of(st.none(), st.floats(0, 1e5))) for p in ids if p != sid}
        m = m.with_report(nm.Report(sid, draw(st.integers(0, 99)), {
            mem.hostname: draw(st.sampled_from(nm.MEMBER_HEALTH)) for mem in members}, rtt))
    if ids:
        links = {nm.pair(a, b): draw(st.sampled_from(nm.LINK_STATUS))
                 for a, b in m.roster.links() if draw(st.booleans())}
        decision = nm.Decision(
            round=draw(st.integers(0, 10**9)), leader=draw(st.sampled_from(["", *ids])),
            health={i: draw(st.sampled_from(nm.SUPERNODE_HEALTH)) for i in ids},
            links=links, placement={"m.org": ids[0]},
            promoted=tuple(draw(st.lists(HOST, max_size=2))),
            unplaced=tuple(draw(st.lists(HOST, max_size=2))), summary=draw(st.text(max_size=20)))
        m = nm.NodeMap(roster=m.roster, epoch=nm.Epoch(1, draw(st.floats(0, 2e9))),
                       entries=m.entries, reports=m.reports, decision=decision,
                       timeline=(nm.TimelineItem(decision.round, decision.leader, "x"),))
    return nm.map_from_json(nm.map_to_json(m))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(any_maps())
def test_property_every_written_map_validates(m: nm.NodeMap) -> None:
    doc = json.loads(nm.dump_map_text(m))
    assert schema_errors(doc) == []


# --------------------------------------------------------------------------------------------
# What the parser rejects for its structure, the schema rejects too
# --------------------------------------------------------------------------------------------
Mutation = Callable[[Dict[str, Any]], Any]


def _base() -> Dict[str, Any]:
    doc: Dict[str, Any] = json.loads((HERE / "fixtures" / "maps" / "federation.json").read_text())
    return doc


def _sn(d: Dict[str, Any]) -> Dict[str, Any]:
    return d["roster"]["supernodes"][0]  # type: ignore[no-any-return]


def _member(d: Dict[str, Any]) -> Dict[str, Any]:
    return d["entries"]["1"]["members"][0]  # type: ignore[no-any-return]


STRUCTURAL: List[Tuple[str, Mutation]] = [
    ("top level an array", lambda d: [d]),
    ("unknown top-level key", lambda d: d.update(extra=1)),
    ("missing format", lambda d: d.pop("format")),
    ("wrong format", lambda d: d.update(format="esgf-nodemgr/map/2")),
    ("missing roster", lambda d: d.pop("roster")),
    ("roster without version", lambda d: d["roster"].pop("version")),
    ("roster version negative", lambda d: d["roster"].update(version=-1)),
    ("roster version a string", lambda d: d["roster"].update(version="3")),
    ("roster version a boolean", lambda d: d["roster"].update(version=True)),
    ("capacity zero", lambda d: d["roster"].update(capacity=0)),
    ("capacity too large", lambda d: d["roster"].update(capacity=nm.MAX_NODES + 1)),
    ("next_id zero", lambda d: d["roster"].update(next_id=0)),
    ("roster unknown key", lambda d: d["roster"].update(leader="1")),
    ("supernodes an object", lambda d: d["roster"].update(supernodes={})),
    ("supernode without hostname", lambda d: _sn(d).pop("hostname")),
    ("supernode id empty", lambda d: _sn(d).update(id="")),
    ("supernode id with slash", lambda d: _sn(d).update(id="1/2")),
    ("supernode id too long", lambda d: _sn(d).update(id="9" * 65)),
    ("supernode hostname with space", lambda d: _sn(d).update(hostname="a b")),
    ("supernode hostname too long", lambda d: _sn(d).update(hostname="a" * 254)),
    ("supernode port zero", lambda d: _sn(d).update(port=0)),
    ("supernode port too large", lambda d: _sn(d).update(port=65536)),
    ("supernode unknown key", lambda d: _sn(d).update(health="good")),
    ("retired without hostname", lambda d: d["roster"]["retired"][0].pop("hostname")),
    ("epoch without value", lambda d: d["epoch"].pop("value")),
    ("epoch value negative", lambda d: d["epoch"].update(value=-1)),
    ("epoch value a string", lambda d: d["epoch"].update(value="now")),
    ("entries an array", lambda d: d.update(entries=[])),
    ("entry without version", lambda d: d["entries"]["1"].pop("version")),
    ("entry next_seq zero", lambda d: d["entries"]["1"].update(next_seq=0)),
    ("entry members missing", lambda d: d["entries"]["1"].pop("members")),
    ("member without project", lambda d: _member(d).pop("project")),
    ("member project empty", lambda d: _member(d).update(project="")),
    ("member project too long", lambda d: _member(d).update(project="p" * 129)),
    ("member standby a string", lambda d: _member(d).update(standby="yes")),
    ("member since negative", lambda d: _member(d).update(since=-1)),
    ("member unknown key", lambda d: _member(d).update(health="good")),
    ("report without version", lambda d: d["reports"]["1"].pop("version")),
    ("report member health unknown", lambda d: d["reports"]["1"]["members"].update(
        {"dn1.a.example": "bad"})),
    ("report rtt negative", lambda d: d["reports"]["1"]["rtt_ms"].update({"2": -1.0})),
    ("report rtt a string", lambda d: d["reports"]["1"]["rtt_ms"].update({"2": "fast"})),
    ("decision without round", lambda d: d["decision"].pop("round")),
    ("decision leader a number", lambda d: d["decision"].update(leader=2)),
    ("decision health unknown", lambda d: d["decision"]["health"].update({"1": "dead"})),
    ("decision link of two", lambda d: d["decision"]["links"].append(["1", "2"])),
    ("decision link status unknown", lambda d: d["decision"]["links"][0].__setitem__(2, "?")),
    ("decision placement empty", lambda d: d["decision"]["placement"].update({"x": ""})),
    ("decision promoted empty string", lambda d: d["decision"].update(promoted=[""])),
    ("decision summary a list", lambda d: d["decision"].update(summary=[])),
    ("decision unknown key", lambda d: d["decision"].update(version=3)),
    ("timeline item without summary", lambda d: d["timeline"][0].pop("summary")),
    ("timeline an object", lambda d: d.update(timeline={})),
]


def _mutated(mutate: Mutation) -> Any:
    doc = _base()
    result = mutate(doc)
    return result if isinstance(result, list) else doc


@pytest.mark.parametrize("mutate", [pytest.param(f, id=n) for n, f in STRUCTURAL])
def test_structural_problems_are_rejected_by_both(mutate: Mutation) -> None:
    doc = _mutated(mutate)
    with pytest.raises(MapFormatError):
        nm.map_from_json(copy.deepcopy(doc))
    assert schema_errors(doc) != []


# Rejected by the parser only: they relate several values (documented in the schema).
PARSER_ONLY: List[Tuple[str, Mutation]] = [
    ("supernode id used twice", lambda d: d["roster"]["supernodes"][1].update(id="1")),
    ("supernode hostname used twice", lambda d: d["roster"]["supernodes"][1].update(
        hostname=_sn(d)["hostname"])),
    ("retired id active", lambda d: d["roster"]["retired"][0].update(id="1")),
    ("next_id not above the ids", lambda d: d["roster"].update(next_id=3)),
    ("entry filed under another id", lambda d: d["entries"]["1"].update(supernode="2")),
    ("report filed under another id", lambda d: d["reports"]["1"].update(supernode="2")),
    ("member listed twice in an entry", lambda d: d["entries"]["1"]["members"].append(
        _member(d))),
    ("member id used by a supernode", lambda d: _member(d).update(id="2")),
    ("integer written as 2.0", lambda d: d["roster"].update(version=2.0)),
]


@pytest.mark.parametrize("mutate", [pytest.param(f, id=n) for n, f in PARSER_ONLY])
def test_semantic_problems_are_the_parsers_alone(mutate: Mutation) -> None:
    doc = _mutated(mutate)
    with pytest.raises(MapFormatError):
        nm.map_from_json(copy.deepcopy(doc))
    assert schema_errors(doc) == []


def test_schema_is_stricter_on_non_ascii_ids() -> None:
    # The parser takes any str.isalnum() letter in an id; the schema ASCII only. Our code only
    # writes ASCII ids (numbers, "<supernode>.<seq>", ids imported from prototype maps).
    doc = _base()
    doc["roster"]["supernodes"][0]["id"] = "\u00e9"
    doc["decision"]["health"]["\u00e9"] = doc["decision"]["health"].pop("1")
    assert nm.map_from_json(doc).roster.ids[0] == "\u00e9"
    assert schema_errors(doc) != []
