"""The member state machine, driven directly with events; the supernodes' answers are written
by the test (and, at the end, given by real ``SupernodeCore`` objects over an in-memory link).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Dict, List, Optional, Type, TypeVar

from esgf_nodemgr.core import messages as msg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import roster as ro
from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.events import (
    AdminJoin,
    AdminLeave,
    AdminRoster,
    AdminSeedEpoch,
    Answer,
    Effect,
    Event,
    Note,
    Persist,
    Probe,
    Probed,
    ProbeDone,
    Received,
    Send,
    Tick,
)
from esgf_nodemgr.core.member import ASKING, FAILED, JOINED, LEFT, PROBING, MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore

CFG = CoreConfig(round_s=2.0, probe_timeout_s=0.5, reply_timeout_s=5.0, retry_s=2.0,
                 max_delays=3, orphan_rounds=10)
HOSTS = ("sn1.org", "sn2.org", "sn3.org")
ROSTER = ro.generate([ro.SupernodeSpec(h) for h in HOSTS]).roster
T0 = 5000.0
E = TypeVar("E")


def of(effects: List[Effect], kind: Type[E]) -> List[E]:
    return [e for e in effects if isinstance(e, kind)]


def asked(effects: List[Effect]) -> List[str]:
    return [s.to for s in of(effects, Send) if isinstance(s.message, (msg.Join, msg.Leave))]


def answer(effects: List[Effect]) -> Answer:
    return of(effects, Answer)[-1]


def reply(answer_: str, reason: str = "", of_: str = "join", **kw: Optional[str]) -> msg.Reply:
    return msg.Reply(of=of_, answer=answer_, reason=reason, **kw)


def member() -> MemberCore:
    return MemberCore("m.org", "10.0.0.9", 7000, CFG, roster=ROSTER)


def probing(core: MemberCore, rtts: Dict[str, Optional[float]], now: float = T0) -> List[Effect]:
    """Start a join and answer its probes; return the effects of the last probe answer."""
    effects = core.handle(AdminJoin("CMIP6", False, now))
    probes = of(effects, Probe)
    assert sorted(p.target for p in probes) == sorted(HOSTS)
    assert core.join.state == PROBING
    out: List[Effect] = []
    for p in probes:
        if p.target in rtts:
            out = core.handle(ProbeDone(p.target, p.round, rtts[p.target], now=now + 0.1))
    return out


def test_join_asks_the_fastest_supernode_first() -> None:
    core = member()
    effects = probing(core, {"sn1.org": 30.0, "sn2.org": 10.0, "sn3.org": 20.0})
    (send,) = of(effects, Send)
    assert send.to == "sn2.org" and send.message == msg.Join("CMIP6", False, "10.0.0.9", 7000)
    assert core.join.order == ["sn2.org", "sn3.org", "sn1.org"]
    assert core.join.state == ASKING
    effects = core.handle(Received("sn2.org", reply("accept", "joined", home="2", server="2",
                                                    member_id="2.1"), T0 + 1))
    assert isinstance(effects[0], Persist)
    assert effects[0].meta["member"]["member_id"] == "2.1"
    assert core.joined and core.join.state == JOINED
    st = core.status()
    assert (st["home"], st["server"], st["server_hostname"], st["member_id"]) == \
        ("2", "2", "sn2.org", "2.1")
    assert any("accepted by sn2.org" in n.text for n in of(effects, Note))


def test_deny_moves_on_to_the_redirect_first() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": 30.0})
    effects = core.handle(Received("sn1.org", reply("deny", "full", redirect="sn3.org"), T0 + 1))
    assert asked(effects) == ["sn3.org"]
    effects = core.handle(Received("sn3.org", reply("deny", "full"), T0 + 2))
    assert asked(effects) == ["sn2.org"]


def test_delayed_waits_and_asks_the_same_supernode_again() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": 30.0})
    assert asked(core.handle(Received("sn1.org", reply("delayed", "catching up"), T0 + 1))) == []
    assert asked(core.handle(Tick(T0 + 1 + CFG.retry_s - 0.01))) == []
    assert asked(core.handle(Tick(T0 + 1 + CFG.retry_s))) == ["sn1.org"]
    # After max_delays delayed answers it moves on.
    core.handle(Received("sn1.org", reply("delayed", "x"), T0 + 4))
    assert asked(core.handle(Tick(T0 + 6))) == ["sn1.org"]
    assert asked(core.handle(Received("sn1.org", reply("delayed", "x"), T0 + 7))) == ["sn2.org"]


def test_no_answer_moves_on_after_the_reply_timeout() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": 30.0})
    assert asked(core.handle(Tick(T0 + 0.1 + CFG.reply_timeout_s - 0.01))) == []
    assert asked(core.handle(Tick(T0 + 0.1 + CFG.reply_timeout_s))) == ["sn2.org"]
    (first,) = [a for a in core.join.attempts if a.hostname == "sn1.org"]
    assert (first.answer, first.reason) == ("no answer", "no reply in time")
    # A late answer from the one it gave up on decides nothing.
    core.handle(Received("sn1.org", reply("accept", "joined", home="1", server="1"), T0 + 6))
    assert not core.joined and core.join.order[core.join.index] == "sn2.org"


def test_unreachable_supernodes_are_not_asked() -> None:
    core = member()
    effects = probing(core, {"sn1.org": None, "sn2.org": 50.0, "sn3.org": None})
    assert asked(effects) == ["sn2.org"]
    assert core.join.order == ["sn2.org"]
    # A probe that never answers: the probe deadline orders what did answer.
    core = member()
    probing(core, {"sn3.org": 7.0})
    assert core.join.state == PROBING
    assert asked(core.handle(Tick(T0 + CFG.reply_timeout_s))) == ["sn3.org"]


def test_join_fails_with_a_reason_per_supernode_when_all_refuse() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": None})
    core.handle(Received("sn1.org", reply("deny", "full (20 members)"), T0 + 1))
    effects = core.handle(Tick(T0 + 1 + CFG.reply_timeout_s))
    assert core.join.state == FAILED and not core.joined
    (note,) = of(effects, Note)
    assert note.level == "warning"
    assert "sn1.org: deny (full (20 members))" in note.text
    assert "sn2.org: no answer (no reply in time)" in note.text
    assert "sn3.org: no answer (probe failed)" in note.text
    attempts = {a["supernode"]: a["answer"] for a in core.status()["attempts"]}  # type: ignore
    assert attempts == {"sn1.org": "deny", "sn2.org": "no answer", "sn3.org": "no answer"}
    # It can be started again.
    assert answer(core.handle(AdminJoin("CMIP6", False, T0 + 20))).status == "ok"
    assert core.join.state == PROBING


def test_join_commands_refused_or_no_op() -> None:
    core = MemberCore("m.org", "m.org", 7000, CFG)
    assert "no roster" in answer(core.handle(AdminJoin("CMIP6", False, T0))).detail
    core = member()
    assert answer(core.handle(AdminJoin("", False, T0))).status == "refused"
    core.handle(AdminJoin("CMIP6", False, T0))
    again = core.handle(AdminJoin("CMIP6", False, T0))
    assert answer(again).detail == "a join is already in progress" and of(again, Probe) == []
    assert answer(core.handle(AdminSeedEpoch(1.0, T0))).status == "refused"


def joined_member() -> MemberCore:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": 30.0})
    core.handle(Received("sn1.org", reply("accept", "joined", home="1", server="1",
                                          member_id="1.1"), T0 + 1))
    assert core.joined
    return core


def test_rejoin_is_a_no_op() -> None:
    core = joined_member()
    effects = core.handle(AdminJoin("CMIP6", False, T0 + 2))
    assert answer(effects).status == "unchanged"
    assert of(effects, Probe) == [] and of(effects, Persist) == []


def test_leave() -> None:
    core = joined_member()
    effects = core.handle(AdminLeave(T0 + 3))
    assert asked(effects) == ["sn1.org"]
    assert isinstance(of(effects, Send)[0].message, msg.Leave)
    effects = core.handle(Received("sn1.org", reply("accept", "left", of_="leave"), T0 + 4))
    assert isinstance(effects[0], Persist) and effects[0].meta["member"]["joined"] is False
    assert not core.joined and core.join.state == LEFT and core.home is None
    assert answer(core.handle(AdminLeave(T0 + 5))).status == "unchanged"


def test_a_late_answer_to_another_question_is_ignored() -> None:
    # A leave whose answer was late: the member gave up, then asked to join again (new
    # details). The leave's late "accept" must not make the joining member believe it left.
    core = joined_member()
    core.handle(AdminLeave(T0 + 2))
    core.handle(Tick(T0 + 2 + CFG.reply_timeout_s))
    assert core.join.state == FAILED and core.joined
    for p in of(core.handle(AdminJoin("CMIP6", True, T0 + 10)), Probe):
        core.handle(ProbeDone(p.target, p.round, 10.0 if p.target == "sn1.org" else 20.0,
                              now=T0 + 10.1))
    assert core.join.state == ASKING and core.join.order[0] == "sn1.org"
    core.handle(Received("sn1.org", reply("accept", "left", of_="leave"), T0 + 11))
    assert core.joined and core.join.state == ASKING
    core.handle(Received("sn1.org", reply("accept", "already a member; details updated",
                                          home="1", server="1", member_id="1.1"), T0 + 12))
    assert core.joined and core.join.state == JOINED and core.standby
    # And a late join answer does not end a leave.
    core.handle(AdminLeave(T0 + 13))
    core.handle(Received("sn1.org", reply("accept", "joined", home="1", server="1"), T0 + 14))
    assert core.join.state == "leaving"


def test_a_redirect_to_a_supernode_whose_probe_failed_is_one_attempt() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": None})
    assert asked(core.handle(Received("sn1.org", reply("deny", "full", redirect="sn3.org"),
                                      T0 + 1))) == ["sn3.org"]
    core.handle(Received("sn3.org", reply("accept", "joined", home="3", server="3"), T0 + 2))
    attempts = [(a.hostname, a.answer) for a in core.join.attempts]
    assert attempts == [("sn1.org", "deny"), ("sn2.org", None), ("sn3.org", "accept")]


def a_slice(server: str = "1", version: Optional[int] = None, **kw: object) -> msg.Slice:
    roster = ROSTER if version is None else replace(ROSTER, version=version)
    fields: Dict[str, object] = {"home": "1", "server": server, "server_hostname": None,
                                 "member_id": "1.1"}
    fields.update(kw)
    return msg.Slice(roster=nm.roster_to_json(roster),
                     epoch=nm.epoch_to_json(nm.Epoch(1, T0)), **fields)  # type: ignore


def test_slice_installation() -> None:
    core = joined_member()
    effects = core.handle(Received("sn2.org", a_slice(server="2"), T0 + 5))
    assert answer(effects) == Answer("ok", "slice installed")
    assert isinstance(effects[0], Persist)
    assert (core.home, core.server, core.epoch.value) == ("1", "2", T0)
    assert core.digest != ""
    # From a stranger: refused. With an older roster: ignored. Nothing changes.
    assert answer(core.handle(Received("x.org", a_slice(server="3"), T0 + 6))).status == \
        "refused"
    newer = core.handle(Received("sn1.org", a_slice(version=ROSTER.version + 1), T0 + 6))
    assert answer(newer).status == "ok" and core.roster.version == ROSTER.version + 1
    stale = core.handle(Received("sn1.org", a_slice(server="3"), T0 + 7))
    assert answer(stale) == Answer("ignored", "slice has an older roster")
    assert core.server == "1"
    bad = msg.Slice(roster={"version": "x"}, epoch={}, home=None, server=None,
                    server_hostname=None, member_id=None)
    assert "bad slice" in answer(core.handle(Received("sn1.org", bad, T0 + 8))).detail


def test_a_slice_overtaking_the_join_answer_completes_the_join() -> None:
    core = member()
    probing(core, {"sn1.org": 10.0, "sn2.org": 20.0, "sn3.org": 30.0})
    core.handle(Received("sn1.org", a_slice(), T0 + 1))
    assert core.joined and core.join.state == JOINED and core.member_id == "1.1"
    # The status says who accepted, although its answer has not arrived (and will be ignored).
    assert [(a.hostname, a.answer) for a in core.join.attempts if a.answer] == \
        [("sn1.org", "accept")]
    # Not joined and not asking: a slice is ignored.
    idle = member()
    assert answer(idle.handle(Received("sn1.org", a_slice(), T0))).status == "ignored"


def test_promoted_standby_serves_its_members_and_relays_their_health() -> None:
    core = joined_member()
    serve = (msg.ServedNode("x.org", "x.org", 7443),)
    core.handle(Received("sn1.org", a_slice(serve=serve), T0 + 2))
    probes = of(core.handle(Tick(T0 + 2.01)), Probe)
    assert [p.target for p in probes] == ["x.org"]
    core.handle(ProbeDone("x.org", probes[0].round, 2.0, now=T0 + 2.2))
    effects = core.handle(Tick(T0 + 4.01))
    (health,) = [s for s in of(effects, Send) if isinstance(s.message, msg.MemberHealth)]
    assert health.to == "sn1.org" and health.message == msg.MemberHealth({"x.org": "good"})


def test_an_orphan_rejoins_after_silence() -> None:
    core = joined_member()
    core.handle(Received("sn1.org", a_slice(), T0 + 1))  # the slice brings the epoch
    core.handle(Probed("sn1.org", T0 + 2))
    quiet = CFG.orphan_rounds * CFG.round_s
    assert of(core.handle(Tick(T0 + 2 + quiet)), Probe) == []
    effects = core.handle(Tick(T0 + 2 + quiet + 0.1))
    assert len(of(effects, Probe)) == 3 and core.join.state == PROBING


def test_admin_roster() -> None:
    core = member()
    newer = nm.roster_to_json(replace(ROSTER, version=ROSTER.version + 1))
    assert answer(core.handle(AdminRoster(newer, T0))).status == "ok"
    assert answer(core.handle(AdminRoster(newer, T0))).status == "unchanged"
    assert answer(core.handle(AdminRoster(nm.roster_to_json(ROSTER), T0))).status == "refused"
    assert answer(core.handle(AdminRoster({"version": 1}, T0))).status == "refused"


def test_saved_state_restores() -> None:
    core = joined_member()
    core.handle(Received("sn1.org", a_slice(), T0 + 1))
    saved = json.loads(json.dumps(core.saved_state()))
    again = MemberCore("m.org", "10.0.0.9", 7000, CFG, saved=saved)
    assert again.saved_state() == core.saved_state()
    assert again.joined and again.server == "1"


# -- a member and three real supernodes over an in-memory link -------------------------------
def run_link(member_core: MemberCore, sns: Dict[str, SupernodeCore], first: Event,
             full: Optional[str] = None) -> None:
    """Deliver every effect until quiet; probes of members answer with their digest."""
    queue = [("m.org", e) for e in member_core.handle(first)]
    while queue:
        src, e = queue.pop(0)
        if isinstance(e, Probe):
            target_digest = sns[e.target].digest if e.target in sns else member_core.digest
            done = ProbeDone(e.target, e.round, 5.0 if e.target != full else 9.0,
                             digest=target_digest, now=T0)
            core = member_core if src == "m.org" else sns[src]
            queue += [(src, x) for x in core.handle(done)]
        elif isinstance(e, Send):
            m = msg.parse_message(json.loads(json.dumps(msg.message_to_json(e.message))))
            if e.to == "m.org":
                queue += [("m.org", x) for x in member_core.handle(Received(src, m, T0))]
            elif not isinstance(m, msg.Push):
                queue += [(e.to, x) for x in sns[e.to].handle(Received(src, m, T0))]


def test_member_joins_through_real_supernodes() -> None:
    m = ro.generate([ro.SupernodeSpec(h) for h in HOSTS], capacity=1)
    m = replace(m, epoch=nm.Epoch(1, T0 - 100))
    m = m.with_entry(nm.Entry("1", 1, 2, (nm.Member("1.1", "other.org", "P"),)))
    sns = {h: SupernodeCore(h, CFG, m, synced=True) for h in HOSTS}
    core = MemberCore("m.org", "m.org", 7000, CFG, roster=m.roster)
    # sn1 answers probes fastest but is full: it redirects to the least loaded (sn2).
    run_link(core, sns, AdminJoin("CMIP6", True, T0), full="sn3.org")
    assert core.joined and (core.home, core.server) == ("2", "2")
    assert [(a.hostname, a.answer) for a in core.join.attempts][:2] == \
        [("sn1.org", "deny"), ("sn2.org", "accept")]
    assert core.roster == m.roster and core.epoch.value == T0 - 100
    (held,) = sns["sn2.org"].map.entry("2").members
    assert (held.hostname, held.standby, held.port) == ("m.org", True, 7000)
