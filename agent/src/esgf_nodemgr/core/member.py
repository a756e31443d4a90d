"""The member's protocol state machine: join, leave, follow its server, serve when promoted.

Joining: probe every supernode of the roster, then ask them in order of latency (the fastest
first). ``accept`` ends it; ``deny`` moves on (to the supernode it suggests first, if any);
``delayed`` waits ``retry_s`` and asks the same one again (at most ``max_delays`` times); no
answer within ``reply_timeout_s`` moves on. When every supernode has been tried the join fails
and ``join_state`` says why, supernode by supernode.

Afterwards the member follows the slices its server sends (a new server after a failure, the
old one after recovery). If no server has probed it for ``orphan_rounds`` rounds, it re-joins
(a no-op where it is still known, which also tells it who serves it now).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from esgf_nodemgr.core import health as hl
from esgf_nodemgr.core import membership as ms
from esgf_nodemgr.core import messages as msg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.errors import MapFormatError
from esgf_nodemgr.core.events import (
    AdminJoin,
    AdminLeave,
    AdminRoster,
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
from esgf_nodemgr.core.parse import Reader
from esgf_nodemgr.core.schedule import Schedule

IDLE, PROBING, ASKING, JOINED, FAILED, LEAVING, LEFT = (
    "idle", "probing", "asking", "joined", "failed", "leaving", "left")


@dataclass
class Attempt:
    """One supernode tried during a join or leave, and what it answered."""

    hostname: str
    rtt_ms: Optional[float] = None
    answer: Optional[str] = None
    reason: str = ""


@dataclass
class JoinState:
    """Progress of the current join (or leave), shown by ``esgf-nm status`` and Ansible."""

    state: str = IDLE
    project: str = ""
    standby: bool = False
    attempts: List[Attempt] = field(default_factory=list)
    order: List[str] = field(default_factory=list)
    index: int = 0
    asked_at: float = 0.0
    retry_at: Optional[float] = None
    delays: int = 0
    probe_deadline: float = 0.0
    probe_round: int = 0


class MemberCore:
    """Protocol state of one member node."""

    def __init__(self, hostname: str, address: str, port: int, config: CoreConfig, *,
                 roster: Optional[nm.Roster] = None, saved: Optional[Dict[str, object]] = None
                 ) -> None:
        self.hostname = hostname
        self.address = address
        self.port = port
        self.config = config
        self.roster = roster or nm.Roster()
        self.epoch = nm.Epoch()
        self.home: Optional[str] = None
        self.server: Optional[str] = None
        self.server_hostname: Optional[str] = None
        self.member_id: Optional[str] = None
        self.project = ""
        self.standby = False
        self.joined = False
        self.serve: Tuple[msg.ServedNode, ...] = ()
        self.join = JoinState()
        self.last_heard: Optional[float] = None
        self._slice: Optional[msg.Slice] = None
        self._served_trackers: Dict[str, hl.LinkState] = {}
        self._served_round = -1
        self._served_pending: Dict[str, Optional[float]] = {}
        self._out: List[Effect] = []
        self._persist: bool = False
        if saved:
            self._restore(saved)

    # -- persistence (a member keeps little: who it is and who serves it) --------------------
    def saved_state(self) -> Dict[str, object]:
        return {"joined": self.joined, "project": self.project, "standby": self.standby,
                "home": self.home, "server": self.server, "member_id": self.member_id,
                "roster": nm.roster_to_json(self.roster), "epoch": nm.epoch_to_json(self.epoch)}

    def _restore(self, saved: Dict[str, object]) -> None:
        r = Reader()
        self.roster = nm.parse_roster(r, saved.get("roster"), "$.roster")
        self.epoch = nm.parse_epoch(r, saved.get("epoch"), "$.epoch")
        r.raise_if_problems()
        self.joined = saved.get("joined") is True
        self.project = str(saved.get("project") or "")
        self.standby = saved.get("standby") is True
        for key in ("home", "server", "member_id"):
            value = saved.get(key)
            setattr(self, key, value if isinstance(value, str) else None)

    @property
    def digest(self) -> str:
        """Fingerprint of the slice this member holds (its server compares it with its own)."""
        if self._slice is None:
            return ""
        return hashlib.sha256(nm.canonical_json(msg.message_to_json(self._slice)).encode()
                              ).hexdigest()[:32]

    def schedule(self) -> Optional[Schedule]:
        if self.epoch.value is None:
            return None
        return Schedule(epoch=self.epoch.value, round_s=self.config.round_s,
                        probe_timeout_s=self.config.probe_timeout_s, skew_s=self.config.skew_s)

    def status(self) -> Dict[str, object]:
        return {
            "hostname": self.hostname, "joined": self.joined, "project": self.project,
            "standby": self.standby, "home": self.home, "server": self.server,
            "server_hostname": self.server_hostname or self._hostname_of(self.server),
            "member_id": self.member_id, "state": self.join.state,
            "attempts": [{"supernode": a.hostname, "rtt_ms": a.rtt_ms, "answer": a.answer,
                          "reason": a.reason} for a in self.join.attempts],
            "serving": [s.hostname for s in self.serve],
        }

    def _hostname_of(self, sid: Optional[str]) -> Optional[str]:
        if sid is None:
            return None
        s = self.roster.by_id(sid)
        return s.hostname if s else sid

    # -- entry point -------------------------------------------------------------------------
    def handle(self, event: Event) -> List[Effect]:
        if isinstance(event, Tick):
            self._on_tick(event.now)
        elif isinstance(event, AdminJoin):
            self._on_join_command(event)
        elif isinstance(event, AdminLeave):
            self._on_leave_command(event.now)
        elif isinstance(event, AdminRoster):
            self._on_roster(event)
        elif isinstance(event, ProbeDone):
            self._on_probe_done(event)
        elif isinstance(event, Probed):
            if self.server is not None:
                self.last_heard = event.now
        elif isinstance(event, Received):
            self._on_received(event)
        else:
            self._out.append(Answer("refused", f"{type(event).__name__} is for supernodes"))
        out: List[Effect] = []
        if self._persist:
            out.append(Persist(sections={}, meta={"member": self.saved_state()}))
            self._persist = False
        out.extend(self._out)
        self._out = []
        return out

    # -- join --------------------------------------------------------------------------------
    def _on_join_command(self, ev: AdminJoin) -> None:
        if not ev.project:
            self._out.append(Answer("refused", "a project is required to join"))
            return
        if self.joined and ev.project == self.project and ev.standby == self.standby:
            self._out.append(Answer("unchanged", "already joined", self.status()))
            return
        if self.join.state in (PROBING, ASKING):
            self._out.append(Answer("unchanged", "a join is already in progress", self.status()))
            return
        if not self.roster.supernodes:
            self._out.append(Answer("refused", "no roster: this member does not know any "
                                    "supernode yet"))
            return
        self._begin_join(ev.project, ev.standby, ev.now)
        self._out.append(Answer("ok", "join started", self.status()))

    def _begin_join(self, project: str, standby: bool, now: float) -> None:
        self.join = JoinState(state=PROBING, project=project, standby=standby,
                              probe_deadline=now + self.config.reply_timeout_s,
                              probe_round=self.join.probe_round + 1)
        for s in self.roster.supernodes:
            self.join.attempts.append(Attempt(hostname=s.hostname))
            self._out.append(Probe(s.hostname, s.address, s.port, -self.join.probe_round,
                                   self.config.reply_timeout_s))

    def _on_probe_done(self, ev: ProbeDone) -> None:
        if ev.round == -self.join.probe_round and self.join.state == PROBING:
            for a in self.join.attempts:
                if a.hostname == ev.target and a.rtt_ms is None and a.answer is None:
                    a.rtt_ms = ev.rtt_ms
                    if ev.rtt_ms is None:
                        a.answer, a.reason = "no answer", "probe failed"
            if all(a.rtt_ms is not None or a.answer for a in self.join.attempts):
                self._order_and_ask(ev.now)
            return
        if ev.target in self._served_pending and ev.round == self._served_round:
            self._served_pending[ev.target] = ev.rtt_ms

    def _order_and_ask(self, now: float) -> None:
        reachable = [a for a in self.join.attempts if a.rtt_ms is not None]
        reachable.sort(key=lambda a: (a.rtt_ms or 0.0, a.hostname))
        self.join.order = [a.hostname for a in reachable]
        self.join.index = 0
        self.join.state = ASKING
        self._ask(now)

    def _ask(self, now: float) -> None:
        j = self.join
        while j.index < len(j.order):
            target = self.roster.by_hostname(j.order[j.index])
            if target is not None:
                j.asked_at = now
                j.retry_at = None
                message: msg.Message
                if j.state == LEAVING:
                    message = msg.Leave()
                else:
                    message = msg.Join(project=j.project, standby=j.standby,
                                       address=self.address, port=self.port)
                self._out.append(Send(target.hostname, target.address, target.port, message))
                return
            j.index += 1
        failed = "; ".join(f"{a.hostname}: {a.answer or 'not tried'} ({a.reason})"
                           for a in j.attempts)
        j.state = FAILED
        self._out.append(Note(f"no supernode accepted: {failed}", level="warning"))

    def _next(self, now: float, redirect: Optional[str] = None) -> None:
        j = self.join
        j.index += 1
        j.delays = 0
        if redirect and redirect in j.order[j.index:]:
            j.order.remove(redirect)
            j.order.insert(j.index, redirect)
        elif redirect and redirect not in j.order and self.roster.by_hostname(redirect):
            j.order.insert(j.index, redirect)
            self._attempt(redirect)  # its probe may have failed: one attempt per supernode
        self._ask(now)

    def _attempt(self, hostname: str) -> Attempt:
        for a in self.join.attempts:
            if a.hostname == hostname:
                return a
        a = Attempt(hostname=hostname)
        self.join.attempts.append(a)
        return a

    def _on_reply(self, sender: str, r: msg.Reply, now: float) -> None:
        j = self.join
        if j.state not in (ASKING, LEAVING) or j.index >= len(j.order) or \
                j.order[j.index] != sender or r.of != ("leave" if j.state == LEAVING else "join"):
            return  # a late answer to an earlier question: the current one decides
        a = self._attempt(sender)
        a.answer, a.reason = r.answer, r.reason
        if r.answer == ms.ACCEPT:
            if r.of == "join":
                self.joined = True
                self.project, self.standby = j.project, j.standby
                self.home, self.server, self.member_id = r.home, r.server, r.member_id
                j.state = JOINED
                self.last_heard = now
            else:
                self.joined = False
                self.home = self.server = self.member_id = None
                self._slice = None
                self.serve = ()
                j.state = LEFT
            self._persist = True
            self._out.append(Note(f"{r.of} accepted by {sender}: {r.reason}"))
        elif r.answer == ms.DELAYED:
            j.delays += 1
            if j.delays >= self.config.max_delays:
                self._next(now)
            else:
                j.retry_at = now + self.config.retry_s
        else:
            self._next(now, r.redirect)

    # -- leave -------------------------------------------------------------------------------
    def _on_leave_command(self, now: float) -> None:
        if not self.joined:
            self._out.append(Answer("unchanged", "not a member", self.status()))
            return
        order = [h for h in (self._hostname_of(self.home), self._hostname_of(self.server))
                 if h]
        self.join = JoinState(state=LEAVING, order=list(dict.fromkeys(order)),
                              probe_round=self.join.probe_round)
        self.join.attempts = [Attempt(hostname=h) for h in self.join.order]
        self._ask(now)
        self._out.append(Answer("ok", "leave started", self.status()))

    # -- time --------------------------------------------------------------------------------
    def _on_tick(self, now: float) -> None:
        j = self.join
        if j.state == PROBING and now >= j.probe_deadline:
            for a in j.attempts:
                if a.rtt_ms is None and not a.answer:
                    a.answer, a.reason = "no answer", "probe timed out"
            self._order_and_ask(now)
        elif j.state in (ASKING, LEAVING) and j.index < len(j.order):
            if j.retry_at is not None:
                if now >= j.retry_at:
                    self._ask(now)
            elif now - j.asked_at >= self.config.reply_timeout_s:
                a = self._attempt(j.order[j.index])
                a.answer, a.reason = "no answer", "no reply in time"
                self._next(now)
        sch = self.schedule()
        if self.joined and j.state not in (PROBING, ASKING, LEAVING) and sch is not None:
            silent = now - (self.last_heard or now)
            if silent > self.config.orphan_rounds * self.config.round_s:
                self._out.append(Note(f"not heard from server {self.server} for {silent:.0f} s; "
                                      f"re-joining", level="warning"))
                self.last_heard = now
                self._begin_join(self.project, self.standby, now)
        if self.serve and sch is not None:
            self._serve_round(now, sch)

    def _serve_round(self, now: float, sch: Schedule) -> None:
        r = sch.round_at(now)
        if r <= self._served_round:
            return
        if self._served_pending and self._served_round >= 0:
            health: Dict[str, str] = {}
            for hostname, rtt in self._served_pending.items():
                state = hl.observe(self._served_trackers.get(hostname, hl.LinkState()), rtt,
                                   None, down_after=self.config.member_down_after, up_after=1)
                self._served_trackers[hostname] = state
                health[hostname] = {"up": "good", "down": "unreachable"}.get(state.status, "new")
            target = self.roster.by_id(self.server or "")
            if target is not None and health:
                self._out.append(Send(target.hostname, target.address, target.port,
                                      msg.MemberHealth(health=health)))
        self._served_round = r
        self._served_pending = {}
        for s in self.serve:
            self._served_pending[s.hostname] = None
            self._out.append(Probe(s.hostname, s.address, s.port, r,
                                   self.config.probe_timeout_s))

    # -- messages ----------------------------------------------------------------------------
    def _on_received(self, ev: Received) -> None:
        m = ev.message
        sender_sn = self.roster.by_hostname(ev.sender)
        if isinstance(m, msg.Reply):
            if sender_sn is None:
                self._out.append(Answer("refused", f"{ev.sender} is not a supernode"))
                return
            self._on_reply(ev.sender, m, ev.now)
            self._out.append(Answer("ok", "reply noted"))
        elif isinstance(m, msg.Slice):
            self._on_slice(ev.sender, m, ev.now)
        else:
            self._out.append(Answer("refused", f"{m.kind} is not a message for a member"))

    def _on_slice(self, sender: str, s: msg.Slice, now: float) -> None:
        try:
            r = Reader()
            roster = nm.parse_roster(r, s.roster, "$.roster")
            epoch = nm.parse_epoch(r, s.epoch, "$.epoch")
            r.raise_if_problems()
        except MapFormatError as exc:
            self._out.append(Answer("refused", f"bad slice: {exc}"))
            return
        known = self.roster.by_hostname(sender) or roster.by_hostname(sender)
        promoted_server = self.server_hostname is not None and sender == self.server_hostname
        if known is None and not promoted_server:
            self._out.append(Answer("refused", f"{sender} is not a supernode"))
            return
        if roster.version < self.roster.version:
            self._out.append(Answer("ignored", "slice has an older roster"))
            return
        if not self.joined and self.join.state != ASKING:
            self._out.append(Answer("ignored", "not a member"))
            return
        self.roster = roster
        if epoch.version >= self.epoch.version:
            self.epoch = epoch
        self.home, self.server = s.home, s.server
        self.server_hostname = s.server_hostname
        self.member_id = s.member_id or self.member_id
        self.serve = s.serve
        self._slice = s
        if self.join.state == ASKING:
            # The slice can overtake the join's answer: it proves the join was accepted.
            self.project, self.standby = self.join.project, self.join.standby
            self.join.state = JOINED
            # The answer that follows is ignored (no longer asking): record it now, or the
            # status would show the supernode that accepted as never having answered.
            if self.join.index < len(self.join.order):
                a = self._attempt(self.join.order[self.join.index])
                a.answer, a.reason = ms.ACCEPT, "joined (its slice came before the answer)"
        self.joined = True
        self.last_heard = now
        self._persist = True
        self._out.append(Answer("ok", "slice installed"))

    def _on_roster(self, ev: AdminRoster) -> None:
        r = Reader()
        roster = nm.parse_roster(r, ev.roster, "$.roster")
        if r.problems:
            self._out.append(Answer("refused", "bad roster: " + "; ".join(r.problems)))
            return
        if roster.version < self.roster.version:
            self._out.append(Answer("refused", f"roster version {roster.version} is older than "
                                    f"{self.roster.version}"))
            return
        if roster == self.roster:
            self._out.append(Answer("unchanged", "roster already installed"))
            return
        self.roster = roster
        self._persist = True
        self._out.append(Answer("ok", f"roster version {roster.version} installed"))
