"""The 2015 prototype's rules, modelled in the same simulator for comparison.

A deliberately simple node implementation (not the core): the rules of ``PROTOTYPE.md``,
"Time and turns", driven by the same network model, seeds, RTTs, skews and fault plan as our
protocol, so that one run can compare both.

- A main loop ticks every 5 s of the node's own clock; a cycle is 12 ticks (60 s); supernode
  ``k`` (1-based roster position) leads cycle ``c`` when ``c mod N == k - 1``, whether it is
  alive or not.
- Tick 2: the leader probes every other supernode with ``forward``; each probed supernode probes
  all supernodes except itself and the leader and reports the results to the leader. Every
  supernode probes its own members (one probe: ``good`` or ``unreachable``) and pushes the map
  when that changed anything.
- Tick 5: the leader's links check: a supernode whose links are all down is ``unreachable``;
  its members are redistributed greedily (at most 3 per supernode, below ``max_count``); the
  members of one that is back are returned; then the whole map goes to every supernode and
  every member.
- Maps carry ``create_timestamp`` (the writer's clock); a receiver keeps the newer one.
- Joins: time a probe to every supernode, ask the fastest (``add_member``); it adds the member
  to its own entry unless full (then to the entry with fewest members) and pushes the map.

Modelling choices, all in the prototype's favour: the epoch reaches every supernode (the real
``sn_init`` could be lost); a push happens only when health or membership changed (not when
only link speeds did); a member whose join got no map back asks again after 30 s (the
prototype never retried); probe bodies count as small as ours; a link between two supernodes
that both failed the leader's probe counts as down (otherwise concurrent crashes go unseen).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Set, Tuple

from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.sim import faults as fl
from esgf_nodemgr.sim.engine import Network, Simulator
from esgf_nodemgr.sim.scenario import Layout, Spec, apply_layout, layout, result

TICK_S = 5.0
TICKS_PER_CYCLE = 12
FORWARD_TICK = 2
LINKS_TICK = 5
MAX_COUNT = 20
MAX_ADOPT = 3
PROBE_TIMEOUT_S = 5.0
JOIN_RETRY_S = 30.0
PROBE_BYTES = 180


@dataclass(frozen=True)
class PMember:
    id: str
    hostname: str
    project: str
    standby: bool
    health: str = "new"
    temp_assign: bool = False
    prev_owner: Optional[str] = None


@dataclass(frozen=True)
class PMap:
    """The prototype's node map (``esgf_nodemgr_map.json``) as an immutable value."""

    supernodes: Tuple[Tuple[str, str], ...]
    health: Dict[str, str]
    entries: Dict[str, Tuple[PMember, ...]]
    links: Dict[Tuple[str, str], Tuple[str, Optional[float]]]
    timestamp: float
    size_cache: List[int] = field(default_factory=list, compare=False)

    def legacy_json(self) -> Dict[str, Any]:
        """The prototype's JSON format (what it pushed on every change)."""
        members = []
        for sid, _host in self.supernodes:
            entry: Dict[str, Any] = {"supernode": sid, "members": [
                {k: v for k, v in (("id", m.id), ("hostname", m.hostname),
                                   ("project", m.project), ("standby", m.standby),
                                   ("health", m.health),
                                   ("temp_assign", True if m.temp_assign else None),
                                   ("prev_owner", m.prev_owner)) if v is not None}
                for m in self.entries.get(sid, ())]}
            if self.health.get(sid) == "unreachable":
                entry["status"] = "unreachable"
            members.append(entry)
        return {
            "supernodes": [{"id": sid, "hostname": h, "health": self.health.get(sid, "new")}
                           for sid, h in self.supernodes],
            "membernodes": members,
            "links": [{"from": a, "to": b, "status": s, "speed": sp}
                      for (a, b), (s, sp) in sorted(self.links.items())],
            "total_supernodes": len(self.supernodes),
            "total_membernodes": sum(1 for e in self.entries.values() for m in e
                                     if not m.temp_assign),
            "create_timestamp": self.timestamp,
        }

    def size(self) -> int:
        if not self.size_cache:
            self.size_cache.append(len(json.dumps(self.legacy_json(), separators=(",", ":"))))
        return self.size_cache[0]

    def find(self, hostname: str) -> Optional[str]:
        """The supernode id whose entry holds ``hostname`` as its own (not a temp copy)."""
        for sid, members in self.entries.items():
            for m in members:
                if m.hostname == hostname and not m.temp_assign:
                    return sid
        return None


@dataclass
class PNode:
    hostname: str
    kind: str
    skew_s: float
    alive: bool = True
    incarnation: int = 0
    map: Optional[PMap] = None
    #: supernode position (1-based), members: none
    position: int = 0
    #: leader's link observations for the running cycle
    cycle_links: Dict[Tuple[str, str], Tuple[str, Optional[float]]] = field(default_factory=dict)
    member_results: Dict[str, bool] = field(default_factory=dict)
    joined: bool = False
    join_sent_at: Optional[float] = None
    probe_rtt: Dict[str, Optional[float]] = field(default_factory=dict)
    leaving: bool = False


def _pair(a: str, b: str) -> Tuple[str, str]:
    return (a, b) if int(a) < int(b) else (b, a)


class PrototypeRun:
    """One run of the prototype profile."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.lay: Layout = layout(spec)
        self.sim = Simulator(spec.seed, CoreConfig(), loss=spec.loss)
        apply_layout(self.sim, self.lay)
        self.net: Network = self.sim.net
        self.nodes: Dict[str, PNode] = {}
        self.ids = {h: str(i + 1) for i, h in enumerate(self.lay.supernodes)}
        self.hosts = {v: k for k, v in self.ids.items()}
        self.epoch = 1.0
        # metrics
        self.crashed_at: Dict[str, float] = {}
        self.detection_s: List[float] = []
        self.undetected = 0
        self.false_down = 0
        self.alive_since: Dict[str, float] = {}
        self.topology_changed_at = -1e9
        self.decisions: List[Tuple[float, float, Set[str]]] = []  # (made, ts, members)
        self.convergence_s: List[float] = []
        self.unconverged = 0
        self.phases: Dict[str, float] = {}
        cfg = spec.core_config()
        self.grace_s = 2 * TICKS_PER_CYCLE * TICK_S + cfg.round_s

    # -- nodes and clocks --------------------------------------------------------------------
    def clock(self, node: PNode) -> float:
        return self.sim.now + node.skew_s

    def _schedule_tick(self, node: PNode, k: Optional[int] = None) -> None:
        if k is None:
            k = int((self.clock(node) - self.epoch) // TICK_S) + 1
        at = self.epoch + k * TICK_S - node.skew_s
        inc = node.incarnation
        this = k

        def tick() -> None:
            if node.alive and node.incarnation == inc:
                self._tick(node, this)
                self._schedule_tick(node, this + 1)

        self.sim.at(max(at, self.sim.now), tick)

    def _start(self) -> None:
        sns = self.lay.supernodes
        pm = PMap(supernodes=tuple((self.ids[h], h) for h in sns),
                  health={self.ids[h]: "new" for h in sns},
                  entries={self.ids[h]: () for h in sns},
                  links={_pair(self.ids[a], self.ids[b]): ("unverified", None)
                         for i, a in enumerate(sns) for b in sns[i + 1:]},
                  timestamp=0.0)
        for pos, h in enumerate(sns, start=1):
            node = PNode(h, "supernode", self.lay.skew[h], map=pm, position=pos)
            self.nodes[h] = node
            self._schedule_tick(node)

    # -- network -----------------------------------------------------------------------------
    def _send(self, src: PNode, dst: str, size: int, kind: str,
              action: Any) -> None:
        """Send ``size`` bytes; call ``action(dest_node)`` on arrival if it is up."""
        self.net.count(src.hostname, size, kind)
        delay = self.net.one_way(src.hostname, dst)
        if delay is None or dst not in self.nodes:
            return
        dest = self.nodes[dst]
        inc = dest.incarnation

        def arrive() -> None:
            if dest.alive and dest.incarnation == inc:
                action(dest)

        self.sim.at(self.sim.now + delay, arrive)

    def _probe(self, src: PNode, dst: str, done: Any, timeout: float = PROBE_TIMEOUT_S,
               on_target: Any = None) -> None:
        """Probe ``dst``; ``done(rtt_s or None)`` is called once, at answer or timeout;
        ``on_target(dest_node)`` when the probe reaches a live ``dst`` (``forward=True``)."""
        self.net.count(src.hostname, PROBE_BYTES, "probe")
        inc = src.incarnation
        sent = self.sim.now
        answered: List[bool] = []

        def finish(rtt: Optional[float]) -> None:
            if answered or not src.alive or src.incarnation != inc:
                return
            answered.append(True)
            done(rtt)

        self.sim.at(sent + timeout, lambda: finish(None))
        there = self.net.one_way(src.hostname, dst)
        if there is None or dst not in self.nodes:
            return
        dest = self.nodes[dst]

        def at_target() -> None:
            if not dest.alive:
                return
            self.net.count(dst, PROBE_BYTES, "probe")
            if on_target is not None:
                on_target(dest)
            back = self.net.one_way(dst, src.hostname)
            if back is not None:
                self.sim.at(self.sim.now + back, lambda: finish(self.sim.now - sent))

        self.sim.at(sent + there, at_target)

    def _push(self, src: PNode, pm: PMap) -> None:
        """Whole-map push to every other supernode and every member in the map."""
        targets = [h for h in self.lay.supernodes if h != src.hostname]
        targets += sorted({m.hostname for e in pm.entries.values() for m in e})
        for t in targets:
            self._send(src, t, pm.size(), "map", lambda d, pm=pm: self._receive_map(d, pm))

    def _receive_map(self, node: PNode, pm: PMap) -> None:
        if node.map is None or pm.timestamp > node.map.timestamp:
            node.map = pm
            if node.kind == "member":
                node.joined = pm.find(node.hostname) is not None
            self._settle()

    def _set_map(self, node: PNode, pm: PMap) -> None:
        node.map = pm
        self._push(node, pm)
        self._settle()

    # -- the main loop -----------------------------------------------------------------------
    def _tick(self, node: PNode, k: int) -> None:
        if node.kind == "member":
            self._member_tick(node)
            return
        count, cycle = k % TICKS_PER_CYCLE, k // TICKS_PER_CYCLE
        n = len(self.lay.supernodes)
        leader = cycle % n == node.position - 1
        if count == FORWARD_TICK:
            if leader:
                node.cycle_links = {}
                for h in self.lay.supernodes:
                    if h != node.hostname:
                        self._probe(node, h, lambda rtt, h=h: self._leader_probed(node, h, rtt),
                                    on_target=lambda d: self._forwarded(d, node.hostname))
            self._probe_members(node)
        elif count == LINKS_TICK and leader:
            self._links_check(node)

    def _leader_probed(self, node: PNode, target: str, rtt: Optional[float]) -> None:
        key = _pair(self.ids[node.hostname], self.ids[target])
        node.cycle_links[key] = ("up", rtt) if rtt is not None else ("down", None)

    def _forwarded(self, node: PNode, leader: str) -> None:
        """A probed supernode probes all others (not itself, not the leader), then reports."""
        others = [h for h in self.lay.supernodes if h not in (node.hostname, leader)]
        results: Dict[str, Optional[float]] = {}

        def done(h: str, rtt: Optional[float]) -> None:
            results[h] = rtt
            if len(results) == len(others):
                size = 60 + sum(len(x) + 8 for x in results)
                rep = dict(results)
                self._send(node, leader, size, "report",
                           lambda d: self._report(d, node.hostname, rep))

        for h in others:
            self._probe(node, h, lambda rtt, h=h: done(h, rtt))

    def _report(self, leader: PNode, sender: str, results: Dict[str, Optional[float]]) -> None:
        a = self.ids[sender]
        for h, rtt in results.items():
            leader.cycle_links[_pair(a, self.ids[h])] = ("up", rtt) if rtt is not None else (
                "down", None)

    def _probe_members(self, node: PNode) -> None:
        pm = node.map
        assert pm is not None
        mine = pm.entries.get(self.ids[node.hostname], ())
        if not mine:
            return
        results: Dict[str, bool] = {}
        hosts = [m.hostname for m in mine]

        def done(h: str, rtt: Optional[float]) -> None:
            results[h] = rtt is not None
            if len(results) == len(hosts):
                self._member_health(node, results)

        for h in hosts:
            self._probe(node, h, lambda rtt, h=h: done(h, rtt))

    def _member_health(self, node: PNode, results: Dict[str, bool]) -> None:
        pm = node.map
        assert pm is not None
        sid = self.ids[node.hostname]
        changed = False
        new_members = []
        for m in pm.entries.get(sid, ()):
            if m.hostname in results:
                health = "good" if results[m.hostname] else "unreachable"
                if health != m.health:
                    m = replace(m, health=health)
                    changed = True
            new_members.append(m)
        if changed:
            entries = dict(pm.entries)
            entries[sid] = tuple(new_members)
            self._set_map(node, replace(pm, entries=entries, timestamp=self.clock(node),
                                        size_cache=[]))

    def _links_check(self, node: PNode) -> None:
        pm = node.map
        assert pm is not None
        links = dict(pm.links)
        links.update(node.cycle_links)
        # Charitable reading: a link between two supernodes that both failed the leader's own
        # probe this cycle counts as down (nobody could check it). Read literally, it would
        # keep its old "up" and two concurrent crashes would never be detected.
        me = self.ids[node.hostname]
        silent = [b if a == me else a for (a, b), (st, _sp) in node.cycle_links.items()
                  if me in (a, b) and st == "down"]
        for i, a in enumerate(silent):
            for b in silent[i + 1:]:
                key = _pair(a, b)
                if key not in node.cycle_links:
                    links[key] = ("down", None)
        health = dict(pm.health)
        newly_down, back = [], []
        for sid, _h in pm.supernodes:
            mine = [s for (a, b), (s, _sp) in links.items() if sid in (a, b)]
            status = "unreachable" if mine and all(s == "down" for s in mine) else "good"
            if status != health.get(sid):
                if status == "unreachable":
                    newly_down.append(sid)
                elif health.get(sid) == "unreachable":
                    back.append(sid)
                health[sid] = status
        entries = {k: list(v) for k, v in pm.entries.items()}
        moved: Set[str] = set()
        for sid in back:
            for k in entries:
                keep = []
                for m in entries[k]:
                    if m.temp_assign and m.prev_owner == sid:
                        moved.add(m.hostname)
                    else:
                        keep.append(m)
                entries[k] = keep
        for sid in newly_down:
            adopted = {m.hostname for e in entries.values() for m in e if m.temp_assign}
            taken: Dict[str, int] = {}
            for m in entries.get(sid, []):
                if m.temp_assign or m.hostname in adopted:
                    continue
                for tid, _h in pm.supernodes:
                    if (health.get(tid) == "unreachable" or tid == sid
                            or taken.get(tid, 0) >= MAX_ADOPT
                            or len(entries[tid]) >= MAX_COUNT):
                        continue
                    entries[tid].append(replace(m, temp_assign=True, prev_owner=sid))
                    taken[tid] = taken.get(tid, 0) + 1
                    moved.add(m.hostname)
                    break
        for sid in newly_down:
            self._judge_down(node, self.hosts[sid])
        if health == pm.health and not moved:
            node.map = replace(pm, links=links)
            return
        new = PMap(supernodes=pm.supernodes, health=health,
                   entries={k: tuple(v) for k, v in entries.items()}, links=links,
                   timestamp=self.clock(node))
        self.decisions.append((self.sim.now, new.timestamp, moved))
        self._set_map(node, new)

    def _judge_down(self, leader: PNode, target: str) -> None:
        if target in self.crashed_at:
            self.detection_s.append(round(self.sim.now - self.crashed_at.pop(target), 3))
            return
        now = self.sim.now
        if now - self.topology_changed_at < self.grace_s:
            return
        if now - self.alive_since.get(target, -1e9) < self.grace_s:
            return
        live = [h for h in self.lay.supernodes if self.nodes[h].alive]
        seen, todo = {leader.hostname}, [leader.hostname]
        while todo:
            a = todo.pop()
            for b in live:
                if b not in seen and self.net.reachable(a, b):
                    seen.add(b)
                    todo.append(b)
        if target in seen:
            self.false_down += 1

    # -- members -----------------------------------------------------------------------------
    def _member_tick(self, node: PNode) -> None:
        if node.leaving or node.joined or node.join_sent_at is None:
            return
        if self.sim.now - node.join_sent_at >= JOIN_RETRY_S:
            self._join(node.hostname)

    def _join(self, host: str) -> None:
        node = self.nodes.get(host)
        if node is None:
            node = PNode(host, "member", self.lay.skew[host])
            self.nodes[host] = node
            self._schedule_tick(node)
        node.leaving = False
        node.join_sent_at = self.sim.now
        node.probe_rtt = {}
        sns = self.lay.supernodes

        def done(h: str, rtt: Optional[float]) -> None:
            node.probe_rtt[h] = rtt
            if len(node.probe_rtt) < len(sns):
                return
            ok = sorted((r, h2) for h2, r in node.probe_rtt.items() if r is not None)
            if ok:
                target = ok[0][1]
                standby = host in self.lay.standby
                self._send(node, target, 120, "join",
                           lambda d: self._add_member(d, host, standby))

        for h in sns:
            self._probe(node, h, lambda rtt, h=h: done(h, rtt))

    def _add_member(self, sn: PNode, host: str, standby: bool) -> None:
        pm = sn.map
        assert pm is not None
        if any(m.hostname == host for e in pm.entries.values() for m in e):
            return  # re-adding an existing hostname is a no-op
        sid = self.ids[sn.hostname]
        target = sid
        if len(pm.entries.get(sid, ())) >= MAX_COUNT:
            target = min(pm.entries, key=lambda k: (len(pm.entries[k]), int(k)))
        total = sum(1 for e in pm.entries.values() for m in e if not m.temp_assign)
        member = PMember(id=str(total + len(pm.supernodes) + 1), hostname=host,
                         project="CMIP6", standby=standby)
        entries = dict(pm.entries)
        entries[target] = (*entries.get(target, ()), member)
        self._set_map(sn, replace(pm, entries=entries, timestamp=self.clock(sn), size_cache=[]))

    def _leave(self, host: str) -> None:
        node = self.nodes.get(host)
        if node is None or node.map is None:
            return
        node.leaving = True
        sid = node.map.find(host)
        if sid is None:
            return
        self._send(node, self.hosts[sid], 80, "leave", lambda d: self._remove_member(d, host))
        node.joined = False

    def _remove_member(self, sn: PNode, host: str) -> None:
        pm = sn.map
        assert pm is not None
        entries = {k: tuple(m for m in v if m.hostname != host) for k, v in pm.entries.items()}
        if entries != pm.entries:
            self._set_map(sn, replace(pm, entries=entries, timestamp=self.clock(sn),
                                      size_cache=[]))

    # -- convergence -------------------------------------------------------------------------
    def _settle(self) -> None:
        if not self.decisions:
            return
        keep = []
        live = [self.nodes[h] for h in self.lay.supernodes if self.nodes[h].alive]
        for made, ts, moved in self.decisions:
            ok = all(n.map is not None and n.map.timestamp >= ts for n in live)
            ok = ok and all(self.nodes[h].map is not None
                            and self.nodes[h].map.timestamp >= ts  # type: ignore[union-attr]
                            for h in moved if h in self.nodes and self.nodes[h].alive)
            if ok:
                self.convergence_s.append(round(self.sim.now - made, 3))
            else:
                keep.append((made, ts, moved))
        self.decisions = keep

    def _agreed(self) -> bool:
        live = [self.nodes[h] for h in self.lay.supernodes if self.nodes[h].alive]
        stamps = {n.map.timestamp for n in live if n.map is not None}
        if len(stamps) != 1 or live[0].map is None:
            return False
        pm = live[0].map
        if any(pm.health.get(self.ids[n.hostname]) == "unreachable" for n in live):
            return False
        members = [n for n in self.nodes.values() if n.kind == "member" and not n.leaving]
        return all(n.joined for n in members)

    def _wait(self, limit: float) -> Optional[float]:
        start = self.sim.now
        while not self._agreed():
            if self.sim.now - start >= limit:
                return None
            self.sim.run_until(self.sim.now + 1.0)
        return self.sim.now - start

    def _bytes_window(self, seconds: float) -> int:
        before = self.net.total_bytes()
        self.sim.run_until(self.sim.now + seconds)
        return self.net.total_bytes() - before

    # -- phases ------------------------------------------------------------------------------
    def _fault(self, f: fl.Fault) -> None:
        now = self.sim.now
        if f.action == fl.CRASH:
            self.nodes[f.nodes[0]].alive = False
            self.crashed_at[f.nodes[0]] = now
            self.topology_changed_at = now
            self._settle()
        elif f.action == fl.RESTART:
            node = self.nodes[f.nodes[0]]
            if not node.alive:
                node.alive = True
                node.incarnation += 1
                node.cycle_links = {}
                self._schedule_tick(node)
                if self.crashed_at.pop(f.nodes[0], None) is not None:
                    self.undetected += 1
                self.alive_since[f.nodes[0]] = now
                self.topology_changed_at = now
        elif f.action == fl.PARTITION:
            self.net.partition([set(g) for g in f.groups])
            self.topology_changed_at = now
        elif f.action == fl.HEAL:
            self.net.groups = None
            self.topology_changed_at = now
        elif f.action == fl.CUT:
            self.net.cut_link(*f.nodes)
            self.topology_changed_at = now
        elif f.action == fl.UNCUT:
            self.net.restore_link(*f.nodes)
            self.topology_changed_at = now
        elif f.action == fl.JOIN:
            self._join(f.nodes[0])
        elif f.action == fl.LEAVE:
            self._leave(f.nodes[0])

    def run(self) -> Dict[str, Any]:
        sim, spec = self.sim, self.spec
        self.phases["setup"] = 0.0
        self._start()
        spread = 10.0 / max(1, len(self.lay.members))
        for i, h in enumerate(self.lay.members):
            sim.at(2.0 + i * spread, functools.partial(self._join, h))
        sim.run_until(12.0)
        self._wait(spec.bound_s() + 120.0)
        self.phases["measure"] = round(sim.now, 3)
        costs: List[float] = []
        if spec.samples:
            window = TICKS_PER_CYCLE * TICK_S
            loss, self.net.loss = self.net.loss, 0.0
            for host in self.lay.extra:
                self._join(host)
                joined = self._bytes_window(window)
                present = self._bytes_window(window)
                self._leave(host)
                left = self._bytes_window(window)
                absent = self._bytes_window(window)
                costs += [float(joined - present), float(left - absent)]
            self.net.loss = loss
        self.phases["safety"] = round(sim.now, 3)
        t0 = sim.now
        sent0 = dict(self.net.sent_messages)
        bytes0 = dict(self.net.sent_bytes)
        for f in self.lay.plan:
            sim.at(t0 + f.at, functools.partial(self._fault, f))
        sim.run_until(t0 + spec.duration_s)
        self.phases["liveness"] = round(sim.now, 3)
        for h in self.lay.supernodes:
            if not self.nodes[h].alive:
                self._fault(fl.Fault(0.0, fl.RESTART, (h,)))
        self.net.heal()
        self.topology_changed_at = sim.now
        took = self._wait(spec.bound_s())
        self.phases["end"] = round(sim.now, 3)
        kinds = {h: n.kind for h, n in self.nodes.items()}
        return result(spec, kinds, self.net, sim, sent0, bytes0, sim.now - t0, costs, {
            "detection_s": self.detection_s,
            "convergence_s": self.convergence_s,
            "false_down": self.false_down,
            "violations": [],
            "violation_count": 0,
            "invariants_checked": False,
            "undetected_crashes": self.undetected + len(self.crashed_at),
            "unconverged_decisions": len(self.decisions),
            "liveness_s": None if took is None else round(took, 3),
            "phases": self.phases,
        })
