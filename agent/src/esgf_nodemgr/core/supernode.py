"""The supernode's protocol state machine.

``SupernodeCore.handle(event)`` returns the effects to execute, in order. Each round:

1. at its start, probe every other supernode and every member this node serves;
2. when all probes have answered or timed out, update the link hysteresis and send the
   observations to the round's leader;
3. the leader decides once it has everyone's observations (or at its deadline): health,
   links, placement of the members of down supernodes; a changed decision is persisted and
   pushed to every live supernode;
4. any probe answer whose map digest differs from ours starts an anti-entropy exchange with
   that peer, so whatever a push missed arrives within a round.

Members get only their slice of the map, and only when it changes for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from esgf_nodemgr.core import health as hl
from esgf_nodemgr.core import membership as ms
from esgf_nodemgr.core import merge as mg
from esgf_nodemgr.core import messages as msg
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import view as vw
from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.errors import MapFormatError, ProtocolError
from esgf_nodemgr.core.events import (
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
from esgf_nodemgr.core.redistribute import place
from esgf_nodemgr.core.schedule import Schedule, leader

#: How many past rounds of observations a leader keeps.
KEEP_ROUNDS = 4
#: Messages on the critical path of a failure — observations that vote a peer down, and a
#: new decision — are sent this many times (merging makes the copies harmless): one lost
#: packet must not delay a detection to the leader's deadline, or a decision to the next
#: anti-entropy exchange. They are rare (a failure), so the copies cost little.
REDUNDANT_COPIES = 2
#: Latency changes smaller than this (ms) are not republished: on a LAN or loopback the
#: jitter alone would otherwise change the report, and so the map digest, every round.
RTT_FLOOR_MS = 5.0


def slice_digest(s: msg.Slice) -> str:
    """Fingerprint of a member's slice (a member answers probes with it)."""
    return hashlib.sha256(nm.canonical_json(msg.message_to_json(s)).encode()).hexdigest()[:32]


class SupernodeCore:
    """Protocol state of one supernode (identified by its hostname)."""

    def __init__(self, hostname: str, config: CoreConfig, nodemap: nm.NodeMap, *,
                 synced: bool = False) -> None:
        self.hostname = hostname
        self.config = config
        self.map = nodemap
        #: False after starting from an empty store, until one anti-entropy exchange finished:
        #: joins are answered "delayed" so that an entry we lost is not overwritten.
        self.synced = synced or bool(nodemap.entry(self.my_id or "").version)
        self._digest: Optional[str] = None
        #: Per-section encodings reused across map versions (digest, anti-entropy versions).
        self._sections = mg.SectionCache()
        #: The derived view of ``self.map`` (claims, member views by hostname, members this
        #: node serves), computed once per map value: it is read on every probe answer.
        self._view_cache: Optional[Tuple[nm.NodeMap, Dict[str, Tuple[str, nm.Member]],
                                         Dict[str, vw.MemberView], List[nm.Member]]] = None
        self._view_key: Optional[Tuple[object, object, Tuple[object, ...]]] = None
        #: Bumped whenever the view is recomputed (slices only change with it or the epoch).
        self._view_gen = 0
        self._slices_gen: Optional[Tuple[int, object]] = None
        self._slice_cache: Dict[str, Tuple[Tuple[int, object, object], msg.Slice, str]] = {}
        self.round = -1
        self.reported_round = -1
        self._pending: Dict[str, Optional[Tuple[Optional[float], Optional[str]]]] = {}
        self._member_pending: Dict[str, Optional[float]] = {}
        self.trackers: Dict[str, hl.LinkState] = {}
        self.member_trackers: Dict[str, hl.LinkState] = {}
        #: Peer id -> the map digest its last answered probe carried: whether this node and
        #: that peer held the same map when they last spoke (status, ``map.peers_in_sync``).
        self.peer_digests: Dict[str, str] = {}
        self._observations: Dict[int, Dict[str, hl.Observation]] = {}
        self._decided: Set[int] = set()
        self._sync_sent: Dict[str, float] = {}
        self._sync_round = -1
        #: Set when this node's own report changed during the event being handled: it is
        #: pushed to the other supernodes once, at the end.
        self._report_dirty = False
        self._slices_sent: Dict[str, str] = {}
        #: The server named in the last slice sent to each member (moved: sent twice).
        self._slice_server: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
        self._rtt_published = -(1 << 30)
        self._out: List[Effect] = []
        self._persist: Dict[str, Any] = {}
        self._journal: List[str] = []
        self.stats: Dict[str, int] = {"decisions": 0, "syncs": 0, "joins": 0, "leaves": 0}

    # -- queries -----------------------------------------------------------------------------
    @property
    def my_id(self) -> Optional[str]:
        sn = self.map.roster.by_hostname(self.hostname)
        return sn.id if sn else None

    def _view(self) -> Tuple[nm.NodeMap, Dict[str, Tuple[str, nm.Member]],
                             Dict[str, vw.MemberView], List[nm.Member]]:
        cache = self._view_cache
        m = self.map
        if cache is None or cache[0] is not m:
            # The view depends on the roster, the entries and the decision only (not on
            # reports or the timeline, which change far more often): reuse it while those
            # section objects are the same ones.
            key = (m.roster, m.decision, tuple(m.entries.values()))
            old_key = self._view_key
            if (cache is not None and old_key is not None and old_key[0] is key[0]
                    and old_key[1] is key[1] and len(old_key[2]) == len(key[2])
                    and all(a is b for a, b in zip(old_key[2], key[2]))):
                cache = self._view_cache = (m, cache[1], cache[2], cache[3])
            else:
                claims = vw.member_claims(m)
                views = {v.hostname: v for v in vw.members(m, with_health=False)}
                me = self.my_id
                served = [claims[h][1] for h, v in views.items() if v.server == me]
                cache = self._view_cache = (m, claims, views, served)
                self._view_key = key
                self._view_gen += 1
        return cache

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = self._sections.digest(self.map)
        return self._digest

    def schedule(self) -> Optional[Schedule]:
        if self.map.epoch.value is None:
            return None
        return Schedule(epoch=self.map.epoch.value, round_s=self.config.round_s,
                        probe_timeout_s=self.config.probe_timeout_s, skew_s=self.config.skew_s)

    def alive(self) -> Set[str]:
        d = self.map.decision
        return {i for i in self.map.roster.ids if d is None or not d.is_down(i)}

    def leader_of(self, r: int) -> Optional[str]:
        """The leader of round ``r`` by the current decision."""
        return leader(self.map.roster.ids, self.alive(), r)

    def suspected(self) -> Set[str]:
        """Peers this node's own probes already call down (not yet decided by anyone)."""
        return {p for p, t in self.trackers.items() if t.status == "down"}

    def leaders_of(self, r: int) -> Set[str]:
        """Who may lead round ``r``: the scheduled leader, and — when this node already sees
        that one as down — the leader among the supernodes it does not suspect. Observers
        that see the same failure pick the same stand-in, so a leader that died unnoticed
        does not cost a round."""
        leaders = set()
        first = self.leader_of(r)
        if first is not None:
            leaders.add(first)
            if first in self.suspected():
                stand_in = leader(self.map.roster.ids, self.alive() - self.suspected(), r)
                if stand_in is not None:
                    leaders.add(stand_in)
        return leaders

    # -- entry point -------------------------------------------------------------------------
    def handle(self, event: Event) -> List[Effect]:
        """Process one event; return the effects to execute in order."""
        if isinstance(event, Tick):
            self._on_tick(event.now)
        elif isinstance(event, ProbeDone):
            self._on_probe_done(event)
        elif isinstance(event, Received):
            self._on_received(event)
        elif isinstance(event, Probed):
            pass  # supernodes learn liveness from their own probes
        elif isinstance(event, AdminRoster):
            self._on_admin_roster(event)
        elif isinstance(event, AdminSeedEpoch):
            self._on_seed_epoch(event)
        else:
            self._out.append(Answer("refused", f"{type(event).__name__} is for members"))
        if self._report_dirty:
            self._report_dirty = False
            me = self.my_id
            if me is not None and me in self.map.reports:
                self._push_to_supernodes({f"report/{me}": nm.report_to_json(
                    self.map.reports[me])})
        return self._flush()

    def _flush(self) -> List[Effect]:
        out: List[Effect] = []
        if self._persist or self._journal:
            out.append(Persist(sections=dict(self._persist), journal=tuple(self._journal)))
        out.extend(self._out)
        self._persist, self._journal, self._out = {}, [], []
        return out

    # -- state changes -----------------------------------------------------------------------
    def _set_map(self, new: nm.NodeMap, why: Optional[str] = None) -> bool:
        if new == self.map:
            return False
        old = self.map
        self._persist.update(mg.changed_sections(old, new))
        self.map = new
        self._digest = None
        if why:
            self._journal.append(why)
        self._after_change(old)
        return True

    def _absorb(self, incoming: nm.NodeMap, why: str) -> bool:
        merged = mg.merge(self.map, incoming)
        d = merged.decision
        if d is not None and d.summary and (self.map.decision is None or
                                            d.version != self.map.decision.version):
            merged = replace(merged, timeline=mg.merge_timeline(
                merged.timeline, (nm.TimelineItem(d.round, d.leader, d.summary),)))
        return self._set_map(merged, why)

    def _after_change(self, old: nm.NodeMap) -> None:
        me = self.my_id
        if me is None:
            return
        # A member that joined elsewhere after we accepted it (our answer was lost): drop our
        # stale copy so that it is held once.
        claims = self._view()[1]
        own = self.map.entry(me)
        stale = [m for m in own.members if claims.get(m.hostname, (me,))[0] != me]
        if stale:
            entry = replace(own, version=own.version + 1,
                            members=tuple(m for m in own.members if m not in stale))
            self._persist.update(mg.changed_sections(self.map, self.map.with_entry(entry)))
            self.map = self.map.with_entry(entry)
            self._digest = None
            self._journal.append(f"dropped stale copies of {', '.join(m.hostname for m in stale)}")
            self._push_to_supernodes({f"entry/{me}": nm.entry_to_json(entry)})
        if old.decision is not self.map.decision:
            # Members the new decision moves get their slice again even if this node sent the
            # same one before: meanwhile another server (acting on the older decision) may have
            # claimed them. Seen in the simulator: a restarted home node's early slice, then the
            # adopter's, then the decision returning them home -- and nothing resent.
            before = old.decision.placement if old.decision is not None else {}
            after = self.map.decision.placement if self.map.decision is not None else {}
            for hostname in set(before) | set(after):
                if before.get(hostname) != after.get(hostname):
                    self._slices_sent.pop(hostname, None)
                    self._slice_server.pop(hostname, None)  # a move: sent twice
        self._view()
        gen = (self._view_gen, self.map.epoch)
        if self._slices_gen is not None and self._slices_gen[0] == gen[0] and \
                self._slices_gen[1] is gen[1]:
            return  # who serves whom, and every slice, depend only on the view and the epoch
        self._slices_gen = gen
        self._update_report_membership()
        self._send_slices()

    # -- rounds ------------------------------------------------------------------------------
    def _on_tick(self, now: float) -> None:
        sch = self.schedule()
        if sch is None or self.my_id is None:
            return
        r = sch.round_at(now)
        if r > self.round:
            if self.round >= 0 and self.reported_round < self.round:
                self._finish_round(self.round, now)
            self._start_round(r)
        if self.round >= 0 and self.reported_round < self.round and now >= sch.report_at(
                self.round):
            self._finish_round(self.round, now)
        self._maybe_decide(now, sch)

    def _start_round(self, r: int) -> None:
        me = self.my_id
        self.round = r
        self._pending = {}
        for s in self.map.roster.supernodes:
            if s.id == me:
                continue
            self._pending[s.id] = None
            self._out.append(Probe(s.hostname, s.address, s.port, r, self.config.probe_timeout_s))
        # Member probes of the previous round still unanswered now count as misses.
        for hostname, rtt in self._member_pending.items():
            if rtt is None:
                self._observe_member(hostname, None)
        self._member_pending = {}
        for target in self._served_nodes():
            self._member_pending[target.hostname] = None
            self._out.append(Probe(target.hostname, target.address, target.port, r,
                                   self.config.probe_timeout_s))

    def _served_nodes(self) -> List[nm.Member]:
        return list(self._view()[3])

    def _on_probe_done(self, ev: ProbeDone) -> None:
        peer = self.map.roster.by_hostname(ev.target)
        if peer is not None:
            if ev.round == self.round and self._pending.get(peer.id, 0) is None:
                self._pending[peer.id] = (ev.rtt_ms, ev.props)
            if ev.rtt_ms is not None and ev.digest:
                self.peer_digests[peer.id] = ev.digest
                if ev.digest != self.digest:
                    self._start_sync(peer, ev.now)
                elif not self.synced:
                    # A live peer holds exactly this map: nothing to catch up with. Without
                    # this, a supernode whose map already equals its peers' never runs a sync,
                    # so it would answer every join "delayed" for ever.
                    self.synced = True
            if (ev.round == self.round and self.reported_round < self.round
                    and all(v is not None for v in self._pending.values())):
                self._finish_round(self.round, ev.now)
                sch = self.schedule()
                if sch is not None:
                    self._maybe_decide(ev.now, sch)
            return
        if ev.round == self.round and self._member_pending.get(ev.target, 0) is None:
            self._member_pending[ev.target] = ev.rtt_ms
            if ev.rtt_ms is not None:
                self._observe_member(ev.target, ev.rtt_ms)
            if ev.rtt_ms is not None and ev.digest is not None:
                self._check_slice(ev.target, ev.digest)

    def _finish_round(self, r: int, now: float) -> None:
        me = self.my_id
        if me is None:
            return
        self.reported_round = r
        cfg = self.config
        for peer_id, result in self._pending.items():
            rtt, props = result if result is not None else (None, None)
            self.trackers[peer_id] = hl.observe(self.trackers.get(peer_id, hl.LinkState()), rtt,
                                                props, down_after=cfg.down_after,
                                                up_after=cfg.up_after)
        for gone in set(self.trackers) - set(self.map.roster.ids):
            del self.trackers[gone]
        for gone in set(self.peer_digests) - set(self.map.roster.ids):
            del self.peer_digests[gone]
        alive = self.alive()
        observation = hl.Observation(
            observer=me, round=r, voting=hl.is_voting(self.trackers, alive),
            links={p: hl.reported(t) for p, t in self.trackers.items()},
            props={p: t.props for p, t in self.trackers.items() if t.props is not None},
            suspect=frozenset(p for p, t in self.trackers.items()
                              if t.status == "up" and t.misses > 0))
        self._update_report_rtt()
        for lead in sorted(self.leaders_of(r)):
            if lead == me:
                self._observations.setdefault(r, {})[me] = observation
                continue
            target = self.map.roster.by_id(lead)
            if target is not None and lead not in self.suspected():
                message = msg.Observations(round=r, voting=observation.voting,
                                           links=dict(observation.links),
                                           props=dict(observation.props),
                                           suspect=tuple(sorted(observation.suspect)))
                copies = REDUNDANT_COPIES if "down" in observation.links.values() else 1
                for _ in range(copies):
                    self._out.append(Send(target.hostname, target.address, target.port,
                                          message))

    def _maybe_decide(self, now: float, sch: Schedule) -> None:
        me = self.my_id
        for r in sorted(self._observations):
            if r < self.round - KEEP_ROUNDS:
                del self._observations[r]
                self._decided.discard(r)
                continue
            if r in self._decided or me not in self.leaders_of(r):
                continue
            obs = self._observations[r]
            if me not in obs:
                continue
            if now >= sch.decide_by(r) or self._complete(obs):
                self._decided.add(r)
                self._decide(r, obs)

    def _complete(self, obs: Mapping[str, hl.Observation]) -> bool:
        voters = [o for o in obs.values() if o.voting]
        for s in self.alive():
            if s in obs:
                continue
            said = [o.says(s) for o in voters if o.observer != s]
            if not said or not all(x in ("down", "suspect") for x in said):
                return False
        return True

    def _decide(self, r: int, obs: Mapping[str, hl.Observation]) -> None:
        me = self.my_id
        assert me is not None
        prev = self.map.decision
        if prev is not None and prev.version >= (r, me):
            return
        roster_ids = self.map.roster.ids
        health = hl.decide_health(roster_ids, prev.health if prev else {}, obs, me)
        links = hl.decide_links(roster_ids, prev.links if prev else {}, obs, prev is not None)
        # New placements go first to supernodes heard from this round (proof of life).
        p = place(self.map, health, prev, heard=set(obs))
        candidate = nm.Decision(round=r, leader=me, health=health, links=links,
                                placement=p.placement, promoted=p.promoted, unplaced=p.unplaced)
        if candidate.same_state(prev):
            return
        summary = summarize(self.map, prev, candidate)
        decision = replace(candidate, summary=summary)
        self.stats["decisions"] += 1
        self._absorb(replace(self.map, decision=decision), f"decision: {summary}")
        self._out.append(Note(summary))
        self._push_to_supernodes({"decision": nm.decision_to_json(decision)},
                                 copies=REDUNDANT_COPIES)

    # -- members -----------------------------------------------------------------------------
    def _observe_member(self, hostname: str, rtt: Optional[float]) -> None:
        state = hl.observe(self.member_trackers.get(hostname, hl.LinkState()), rtt, None,
                           down_after=self.config.member_down_after, up_after=1)
        self.member_trackers[hostname] = state
        health = {"up": "good", "down": "unreachable"}.get(state.status, "new")
        self._set_member_health({hostname: health})

    def _set_member_health(self, updates: Mapping[str, str]) -> None:
        me = self.my_id
        if me is None:
            return
        rep = self.map.report(me)
        served = {m.hostname for m in self._served_nodes()} | self._relayed_hosts()
        health = {h: v for h, v in rep.members.items() if h in served}
        health.update({h: v for h, v in updates.items() if h in served})
        if health != dict(rep.members):
            self._set_own_report(replace(rep, version=rep.version + 1, members=health))

    def _relayed_hosts(self) -> Set[str]:
        """Members served by promoted standbys that this node serves (it relays their health)."""
        me = self.my_id
        d = self.map.decision
        if d is None:
            return set()
        mine = {m.hostname for m in self._served_nodes()}
        return {h for h, target in d.placement.items() if target in mine and target != me}

    def _update_report_membership(self) -> None:
        self._set_member_health({})

    def _update_report_rtt(self) -> None:
        me = self.my_id
        if me is None:
            return
        rep = self.map.report(me)
        rtts: Dict[str, Optional[float]] = dict(rep.rtt_ms)
        changed = False
        latency_due = self.round - self._rtt_published >= self.config.rtt_publish_rounds
        for peer, t in self.trackers.items():
            new = None if t.status == "down" else t.rtt_ms
            old = rtts.get(peer, -1.0) if peer in rtts else -1.0
            if peer not in rtts or (old is None) != (new is None):
                rtts[peer] = None if new is None else round(new, 1)
                changed = True
            elif (latency_due and old is not None and new is not None
                    and abs(new - old) > max(self.config.rtt_change * old, RTT_FLOOR_MS)):
                rtts[peer] = round(new, 1)
                changed = True
        for gone in set(rtts) - set(self.trackers):
            del rtts[gone]
            changed = True
        if changed:
            self._rtt_published = self.round
            self._set_own_report(replace(rep, version=rep.version + 1, rtt_ms=rtts))

    def _set_own_report(self, report: nm.Report) -> None:
        new = self.map.with_report(report)
        self._persist[f"report/{report.supernode}"] = nm.report_to_json(report)
        self.map = new
        self._digest = None
        self._report_dirty = True

    def _slice_for(self, member: nm.Member) -> msg.Slice:
        me = self.my_id
        _, claims, views, _ = self._view()
        v = views.get(member.hostname)
        serve: List[msg.ServedNode] = []
        d = self.map.decision
        if d is not None and member.hostname in d.promoted:
            for h, target in sorted(d.placement.items()):
                if target == member.hostname and h in claims:
                    mm = claims[h][1]
                    serve.append(msg.ServedNode(mm.hostname, mm.address, mm.port))
        server = v.server if v else me
        server_hostname = None
        if server is not None and self.map.roster.by_id(server) is None:
            server_hostname = server
        return msg.Slice(roster=nm.roster_to_json(self.map.roster),
                         epoch=nm.epoch_to_json(self.map.epoch), home=v.home if v else None,
                         server=server, server_hostname=server_hostname,
                         member_id=member.id, serve=tuple(serve))

    def _slice_and_digest(self, member: nm.Member) -> Tuple[msg.Slice, str]:
        """The member's slice and its digest, computed once per view and epoch."""
        self._view()
        key = (self._view_gen, self.map.epoch, member)
        cached = self._slice_cache.get(member.hostname)
        if cached is not None and cached[0][0] == key[0] and cached[0][1] is key[1] \
                and cached[0][2] is key[2]:
            return cached[1], cached[2]
        s = self._slice_for(member)
        fp = slice_digest(s)
        self._slice_cache[member.hostname] = (key, s, fp)
        return s, fp

    def _slice_targets(self) -> List[nm.Member]:
        """Members this node sends slices to: those it serves, and those placed on a promoted
        standby it serves. A standby is a member: it probes the members it takes on but
        sends them no slice, so without this nobody would tell them their new server."""
        targets = self._served_nodes()
        relayed = self._relayed_hosts()
        if relayed:
            claims = self._view()[1]
            targets = targets + [claims[h][1] for h in sorted(relayed) if h in claims]
        return targets

    def _send_slices(self, only: Optional[str] = None) -> None:
        for member in self._slice_targets():
            if only is not None and member.hostname != only:
                continue
            s, fp = self._slice_and_digest(member)
            if self._slices_sent.get(member.hostname) != fp:
                self._slices_sent[member.hostname] = fp
                # A slice that moves the member to a new server (adopted, returned, promoted
                # standby) is on the critical path of a decision: one lost copy would leave
                # the member with its old server until the next member probe. Sent twice,
                # like the decision itself; a second copy changes nothing at the member.
                key = (s.server, s.server_hostname)
                moved = self._slice_server.get(member.hostname) != key
                self._slice_server[member.hostname] = key
                for _ in range(REDUNDANT_COPIES if moved else 1):
                    self._out.append(Send(member.hostname, member.address, member.port, s))

    def _check_slice(self, hostname: str, their_digest: str) -> None:
        claims = self._view()[1]
        if hostname not in claims:
            return
        if self._slice_and_digest(claims[hostname][1])[1] != their_digest:
            self._slices_sent.pop(hostname, None)
            self._send_slices(only=hostname)

    # -- messages ----------------------------------------------------------------------------
    def _on_received(self, ev: Received) -> None:
        m = ev.message
        sender_sn = self.map.roster.by_hostname(ev.sender)
        if isinstance(m, (msg.Join, msg.Leave, msg.MemberHealth)):
            if sender_sn is not None:
                self._refuse(f"{ev.sender} is a supernode; only members send {m.kind}")
                return
            if isinstance(m, msg.Join):
                self._on_join(ev.sender, m, ev.now)
            elif isinstance(m, msg.Leave):
                self._on_leave(ev.sender)
            else:
                self._on_member_health(ev.sender, m)
            return
        if sender_sn is None:
            self._refuse(f"{ev.sender} is not a supernode of this federation; {m.kind} refused")
            return
        if isinstance(m, msg.Observations):
            self._on_observations(sender_sn.id, m, ev.now)
        elif isinstance(m, msg.Push):
            self._on_sections(m.sections, f"push from {ev.sender}")
        elif isinstance(m, msg.Sync):
            self.stats["syncs"] += 1
            self._out.append(Send(sender_sn.hostname, sender_sn.address, sender_sn.port,
                                  msg.SyncReply(sections=mg.newer_sections(self.map, m.versions,
                                                                             self._sections),
                                                want=tuple(mg.wanted_sections(
                                                    self.map, m.versions, self._sections)))))
            self._out.append(Answer("ok", "sync answered"))
        elif isinstance(m, msg.SyncReply):
            self._sync_sent.pop(sender_sn.id, None)
            self._on_sections(m.sections, f"sync with {ev.sender}")
            self.synced = True
            if m.want:
                wanted = {k: v for k, v in self._sections.sections(self.map).items()
                          if k in m.want}
                if wanted:
                    self._out.append(Send(sender_sn.hostname, sender_sn.address, sender_sn.port,
                                          msg.Push(sections=wanted)))
        else:
            self._refuse(f"{m.kind} is not a message for a supernode")

    def _refuse(self, why: str) -> None:
        self._out.append(Note(why, level="warning"))
        self._out.append(Answer("refused", why))

    def _on_sections(self, sections: Mapping[str, Any], why: str) -> None:
        try:
            incoming = mg.parse_sections(sections)
        except MapFormatError as exc:
            raise ProtocolError(f"bad sections: {exc}") from exc
        before = self.map
        changed = self._absorb(incoming, why)
        if changed:
            self._out.append(Answer("ok", "merged", {"changed": sorted(
                mg.changed_sections(before, self.map))}))
        else:
            self._out.append(Answer("ignored", "nothing newer than what this node holds"))

    def _start_sync(self, peer: nm.Supernode, now: float) -> None:
        # At most one exchange per round, with the first peer found to differ: whatever a
        # push missed is repaired by one exchange, and a change still propagating (every
        # probe during those milliseconds sees a difference) costs one exchange per node and
        # round, not one per probe (N² at N=50).
        if self.round >= 0:
            if self._sync_round >= self.round:
                return
            self._sync_round = self.round
        else:  # no schedule yet: at most once per round length per peer
            last = self._sync_sent.get(peer.id)
            if last is not None and now - last < self.config.round_s:
                return
        self._sync_sent[peer.id] = now
        self._out.append(Send(peer.hostname, peer.address, peer.port,
                              msg.Sync(versions=self._sections.versions(self.map))))

    def _on_observations(self, sender_id: str, m: msg.Observations, now: float) -> None:
        if m.round < self.round - KEEP_ROUNDS or m.round > self.round + 2:
            self._out.append(Answer("ignored", f"observations for round {m.round} are out of "
                                    f"the window around round {self.round}"))
            return
        if self.my_id not in self.leaders_of(m.round):
            self._out.append(Answer("ignored", f"not the leader of round {m.round}"))
            return
        self._observations.setdefault(m.round, {})[sender_id] = hl.Observation(
            observer=sender_id, round=m.round, voting=m.voting, links=dict(m.links),
            props=dict(m.props), suspect=frozenset(m.suspect))
        self._out.append(Answer("ok", "observations recorded"))
        sch = self.schedule()
        if sch is not None:
            self._maybe_decide(now, sch)

    def _push_to_supernodes(self, sections: Mapping[str, Any], copies: int = 1) -> None:
        me = self.my_id
        alive = self.alive()
        push = msg.Push(sections=dict(sections))  # immutable: one message for every peer
        for s in self.map.roster.supernodes:
            if s.id != me and s.id in alive:
                for _ in range(copies):
                    self._out.append(Send(s.hostname, s.address, s.port, push))

    def _on_join(self, sender: str, m: msg.Join, now: float) -> None:
        me = self.my_id
        sch = self.schedule()
        round_now = sch.round_at(now) if sch else 0
        if me is None:
            answer: ms.Answer = ms.Answer(ms.DENY, "not a supernode (any more)")
            entry = None
        else:
            answer, entry = ms.decide_join(self.map, me, sender, m.project, m.standby,
                                           address=m.address, port=m.port,
                                           round_now=round_now, synced=self.synced)
        if entry is not None:
            self.stats["joins"] += 1
            # The answer already names this node as the server: the first slice moves nothing.
            self._slice_server[sender] = (me, None)
            self._set_map(self.map.with_entry(entry), f"join {sender}: {answer.reason}")
            self._push_to_supernodes({f"entry/{entry.supernode}": nm.entry_to_json(entry)})
        self._reply(sender, m.address, m.port, "join", answer)

    def _on_leave(self, sender: str) -> None:
        me = self.my_id
        if me is None:
            answer, entry = ms.Answer(ms.DENY, "not a supernode (any more)"), None
        else:
            answer, entry = ms.decide_leave(self.map, me, sender)
        claims = self._view()[1]
        member = claims.get(sender, (None, None))[1]
        if entry is not None:
            self.stats["leaves"] += 1
            self._slices_sent.pop(sender, None)
            self._set_map(self.map.with_entry(entry), f"leave {sender}")
            self._push_to_supernodes({f"entry/{entry.supernode}": nm.entry_to_json(entry)})
        address = member.address if member else sender
        port = member.port if member else nm.DEFAULT_PORT
        self._reply(sender, address, port, "leave", answer)

    def _reply(self, to: str, address: str, port: int, of: str, a: ms.Answer) -> None:
        reply = msg.Reply(of=of, answer=a.answer, reason=a.reason, home=a.home, server=a.server,
                          member_id=a.member_id, redirect=a.redirect)
        self._out.append(Note(f"{of} {to}: {a.answer} ({a.reason})"))
        self._out.append(Send(to, address, port, reply))
        self._out.append(Answer("ok" if a.answer == ms.ACCEPT else a.answer, a.reason,
                                msg.message_to_json(reply)))

    def _on_member_health(self, sender: str, m: msg.MemberHealth) -> None:
        d = self.map.decision
        if d is None or sender not in d.promoted:
            self._refuse(f"{sender} is not a promoted standby")
            return
        allowed = {h for h, t in d.placement.items() if t == sender}
        self._set_member_health({h: v for h, v in m.health.items() if h in allowed})
        self._out.append(Answer("ok", "member health recorded"))

    # -- admin -------------------------------------------------------------------------------
    def _on_admin_roster(self, ev: AdminRoster) -> None:
        try:
            incoming = mg.parse_sections({"roster": ev.roster}).roster
        except MapFormatError as exc:
            self._out.append(Answer("refused", f"bad roster: {exc}"))
            return
        current = self.map.roster
        if incoming == current:
            self._out.append(Answer("unchanged", f"roster version {current.version} already "
                                    f"installed"))
            return
        if incoming.version <= current.version:
            self._out.append(Answer("refused", f"roster version {incoming.version} is not newer "
                                    f"than the installed version {current.version}"))
            return
        new = replace(self.map, roster=incoming)
        for s in incoming.supernodes:
            if s.id not in new.entries:
                new = new.with_entry(nm.Entry(supernode=s.id))
        self._set_map(new, f"roster version {incoming.version} installed by the administrator")
        if self.my_id is not None and not self.map.entry(self.my_id).version and len(
                incoming.supernodes) == 1:
            self.synced = True  # a federation of one has nobody to catch up with
        self._push_to_supernodes({"roster": nm.roster_to_json(incoming)})
        self._out.append(Answer("ok", f"roster version {incoming.version} installed"))

    def _on_seed_epoch(self, ev: AdminSeedEpoch) -> None:
        current = self.map.epoch
        if current.value is not None and not ev.force:
            self._out.append(Answer("unchanged", "epoch already seeded",
                                    {"epoch": current.value, "version": current.version}))
            return
        epoch = nm.Epoch(version=current.version + 1, value=ev.value)
        self._set_map(replace(self.map, epoch=epoch), f"epoch seeded: {ev.value}")
        self._push_to_supernodes({"epoch": nm.epoch_to_json(epoch)})
        self._out.append(Answer("ok", "epoch seeded", {"epoch": epoch.value,
                                                       "version": epoch.version}))


def summarize(m: nm.NodeMap, prev: Optional[nm.Decision], new: nm.Decision) -> str:
    """One sentence for the timeline: "round 12: sn3 down (unreachable), 4 members moved to …"."""
    def name(i: str) -> str:
        s = m.roster.by_id(i)
        return s.hostname if s else i

    parts: List[str] = []
    old_health = dict(prev.health) if prev else {}
    for i in m.roster.ids:
        before, after = old_health.get(i, "new"), new.health.get(i, "new")
        if before == after:
            continue
        if after in nm.DOWN_HEALTH:
            parts.append(f"{name(i)} down ({after})")
        elif before in nm.DOWN_HEALTH:
            parts.append(f"{name(i)} back ({after})")
        elif before != "new" or after != "good":
            parts.append(f"{name(i)} {after}")
    if prev is None:
        parts.insert(0, f"{sum(1 for v in new.health.values() if v == 'good')} supernodes good")
    old_place = dict(prev.placement) if prev else {}
    moved = [h for h, t in new.placement.items() if old_place.get(h) != t]
    if moved:
        targets = sorted({new.placement[h] for h in moved}, key=nm.id_sort_key)
        parts.append(f"{len(moved)} member{'s' if len(moved) != 1 else ''} moved to "
                     f"{', '.join(name(t) for t in targets)}")
    returned = [h for h in old_place if h not in new.placement]
    if returned:
        parts.append(f"{len(returned)} member{'s' if len(returned) != 1 else ''} returned home")
    for h in new.promoted:
        if prev is None or h not in prev.promoted:
            parts.append(f"standby {h} promoted")
    if new.unplaced:
        parts.append(f"{len(new.unplaced)} member(s) without room")
    old_links = dict(prev.links) if prev else {}
    for key, status in new.links.items():
        if old_links.get(key) != status and status == "down":
            parts.append(f"link {name(key[0])}-{name(key[1])} down")
    for key in old_links:
        if key not in new.links and old_links[key] == "down":
            parts.append(f"link {name(key[0])}-{name(key[1])} up")
    return f"round {new.round}: " + (", ".join(parts) if parts else "state updated")
