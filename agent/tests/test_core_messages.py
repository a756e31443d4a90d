"""The message codec: every kind round-trips; anything malformed is a ProtocolError that
names the offending path, and nothing is guessed."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import CORE, MEMBER_HOSTS, SUPERNODE_IDS, node_maps

from esgf_nodemgr.core import merge as mg
from esgf_nodemgr.core import messages as msg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import ProtocolError

ROSTER = nm.Roster(version=3, supernodes=(nm.Supernode("1", "sn1.org", "10.0.0.1", 7443),),
                   next_id=5)

EXAMPLES = [
    msg.Observations(round=7, voting=True, links={"2": "up", "3": "down"},
                     props={"2": "GOOD", "3": "LAPSED"}),
    msg.Observations(round=0, voting=False, links={}, props={}),
    msg.Observations(round=3, voting=True, links={"2": "up"}, props={}, suspect=("2",)),
    msg.Push(sections={"epoch": {"version": 1, "value": 1000.0}}),
    msg.Sync(versions={"roster": [3, "a1b2"], "entry/1": [4, "c3d4"],
                       "decision": [12, "2", "e5f6"],
                       "timeline": [12, "2", "0123456789abcdef"]}),
    msg.SyncReply(sections={"roster": nm.roster_to_json(ROSTER)}, want=("entry/2", "report/1")),
    msg.SyncReply(sections={}, want=()),
    msg.Join(project="CMIP6", standby=True, address="10.1.1.1", port=7000),
    msg.Leave(),
    msg.Reply(of="join", answer="accept", reason="joined", home="1", server="1",
              member_id="1.3"),
    msg.Reply(of="join", answer="deny", reason="full", redirect="sn2.org"),
    msg.Reply(of="leave", answer="delayed", reason=""),
    msg.Slice(roster=nm.roster_to_json(ROSTER), epoch={"version": 1, "value": 5.0}, home="1",
              server="m2.org", server_hostname="m2.org", member_id="1.1",
              serve=(msg.ServedNode("m3.org", "10.0.0.3", 7443),)),
    msg.Slice(roster=nm.roster_to_json(nm.Roster()), epoch={"version": 0, "value": None},
              home=None, server=None, server_hostname=None, member_id=None),
    msg.MemberHealth(health={"m3.org": "unreachable", "m4.org": "good"}),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_every_kind_round_trips(message: msg.Message) -> None:
    encoded = json.dumps(msg.message_to_json(message))
    assert msg.parse_message(json.loads(encoded)) == message


def test_every_kind_is_covered() -> None:
    kinds = {m.kind for m in EXAMPLES}
    assert kinds == {"observations", "push", "sync", "sync_reply", "join", "leave", "reply",
                     "slice", "member_health"}


@CORE
@given(node_maps)
def test_sync_and_push_of_real_maps_round_trip(m: nm.NodeMap) -> None:
    for message in (msg.Sync(versions=mg.versions(m)), msg.Push(sections=nm.sections(m))):
        wire = json.loads(json.dumps(msg.message_to_json(message)))
        assert msg.message_to_json(msg.parse_message(wire)) == wire


@CORE
@given(st.dictionaries(st.sampled_from(SUPERNODE_IDS), st.sampled_from(nm.LINK_STATUS)),
       st.integers(0, 2 ** 40), st.booleans(),
       st.dictionaries(st.sampled_from(MEMBER_HOSTS), st.sampled_from(nm.MEMBER_HEALTH)))
def test_generated_messages_round_trip(links: Dict[str, str], rnd: int, voting: bool,
                                       health: Dict[str, str]) -> None:
    for message in (msg.Observations(rnd, voting, links, {k: "GOOD" for k in links}),
                    msg.MemberHealth(health)):
        assert msg.parse_message(json.loads(json.dumps(msg.message_to_json(message)))) == \
            message


def good(kind: str) -> Dict[str, Any]:
    (example,) = [m for m in EXAMPLES if m.kind == kind][:1]
    return json.loads(json.dumps(msg.message_to_json(example)))


def with_(kind: str, **changes: Any) -> Dict[str, Any]:
    doc = good(kind)
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


DROP = object()
BIG = {f"k{i}": "up" for i in range(msg.MAX_ITEMS + 1)}

MALFORMED = [
    ("not an object", [1, 2], "$: expected an object"),
    ("no kind", {}, "$.kind: unknown message kind None"),
    ("unknown kind", {"kind": "gossip"}, "$.kind: unknown message kind 'gossip'"),
    ("missing key", with_("join", port=DROP), "$.port: is required"),
    ("unknown key", with_("leave", extra=1), "$.extra: unknown key"),
    ("wrong type", with_("join", port="7000"), "$.port: expected an integer"),
    ("bool is not int", with_("observations", round=True), "$.round: expected an integer"),
    ("port range", with_("join", port=70000), "$.port: must be <= 65535"),
    ("negative round", with_("observations", round=-1), "$.round: must be >= 0"),
    ("bad link status", with_("observations", links={"2": "sideways"}), "$.links['2']"),
    ("bad props", with_("observations", props={"2": "FINE"}), "$.props['2']"),
    ("voting not bool", with_("observations", voting="yes"), "$.voting: expected true or false"),
    ("oversized links", with_("observations", links=BIG), "$.links: more than 20000 items"),
    ("oversized sections", with_("push", sections={f"entry/{i}": {} for i in range(20_001)}),
     "$.sections: more than 20000 items"),
    ("sections not object", with_("push", sections=[]), "$.sections: expected an object"),
    ("version shape", with_("sync", versions={"roster": ["x"]}),
     "$.versions['roster']: expected [integer, string]"),
    ("decision version", with_("sync", versions={"decision": [3, "ab"]}),
     "$.versions['decision']: expected [integer, string, string]"),
    ("decision version types", with_("sync", versions={"decision": ["3", 1, "ab"]}),
     "$.versions['decision']: expected [integer, string, string]"),
    ("timeline version", with_("sync", versions={"timeline": [1, "2", 3]}),
     "$.versions['timeline']: expected [integer, string, string]"),
    ("version bool", with_("sync", versions={"entry/1": [True, "ab"]}), "$.versions['entry/1']"),
    ("want not list", with_("sync_reply", want="entry/1"), "$.want: expected an array"),
    ("want item", with_("sync_reply", want=[1]), "$.want[0]: expected a string"),
    ("reply answer", with_("reply", answer="maybe"), "$.answer: must be one of"),
    ("reply of", with_("reply", of="probe"), "$.of: must be one of"),
    ("empty project", with_("join", project=""), "$.project: must not be empty"),
    ("long project", with_("join", project="p" * 129), "$.project: longer than 128"),
    ("slice roster", with_("slice", roster={"version": 1, "supernodes": [{"id": "1"}]}),
     "$.roster.supernodes[0].hostname: is required"),
    ("slice serve", with_("slice", serve=[{"hostname": "a", "address": "a"}]),
     "$.serve[0].port: is required"),
    ("member health", with_("member_health", health={"m": "fine"}), "$.health['m']"),
]


@pytest.mark.parametrize("doc, where", [(d, w) for _, d, w in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_messages_name_the_path(doc: Any, where: str) -> None:
    with pytest.raises(ProtocolError) as info:
        msg.parse_message(doc)
    assert where in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    doc = with_("join", port="x", standby=1, extra=True)
    with pytest.raises(ProtocolError) as info:
        msg.parse_message(doc)
    text = str(info.value)
    assert "$.port" in text and "$.standby" in text and "$.extra" in text


def test_error_messages_are_bounded() -> None:
    with pytest.raises(ProtocolError) as info:
        msg.parse_message({"kind": "join", "project": "x" * 10_000, "standby": "y" * 10_000,
                           "address": "a", "port": 1})
    assert len(str(info.value)) < 400
