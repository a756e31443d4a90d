"""A deterministic discrete-event simulator that drives real protocol cores.

One seed drives everything (latencies, losses, skews, fault times); time is virtual. Every
node runs the same ``SupernodeCore``/``MemberCore`` the agent runs; the simulator plays the
runtime's part: it delivers messages over a simulated network (per-link latency, loss, cuts,
partitions), performs probes, and keeps each node's persisted sections so that a crash loses
exactly what the node had not persisted.
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple, Union

from esgf_nodemgr.core import merge as mg
from esgf_nodemgr.core import messages as msgs
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.events import (
    Effect,
    Event,
    Persist,
    Probe,
    Probed,
    ProbeDone,
    Received,
    Send,
    Tick,
)
from esgf_nodemgr.core.member import MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore

Core = Union[SupernodeCore, MemberCore]


@dataclass
class Network:
    """Who can reach whom, how fast, and how often a packet is lost."""

    rng: random.Random
    loss: float = 0.0
    rtt_ms: Dict[FrozenSet[str], float] = field(default_factory=dict)
    default_rtt_ms: Tuple[float, float] = (20.0, 250.0)
    cut: Set[FrozenSet[str]] = field(default_factory=set)
    groups: Optional[List[Set[str]]] = None
    #: Stats: messages and bytes sent per node, and bytes per message kind.
    sent_messages: Dict[str, int] = field(default_factory=dict)
    sent_bytes: Dict[str, int] = field(default_factory=dict)
    bytes_by_kind: Dict[str, int] = field(default_factory=dict)

    def rtt(self, a: str, b: str) -> float:
        key = frozenset((a, b))
        if key not in self.rtt_ms:
            lo, hi = self.default_rtt_ms
            # Derive each link's RTT from the seed and the pair, not from draw order, so
            # that adding a node does not change every other link.
            link_rng = random.Random(f"{self.rng_seed}:{min(a, b)}:{max(a, b)}")
            self.rtt_ms[key] = link_rng.uniform(lo, hi)
        return self.rtt_ms[key]

    rng_seed: int = 0

    def reachable(self, a: str, b: str) -> bool:
        if frozenset((a, b)) in self.cut:
            return False
        if self.groups is not None:
            ga = next((i for i, g in enumerate(self.groups) if a in g), None)
            gb = next((i for i, g in enumerate(self.groups) if b in g), None)
            if ga is not None and gb is not None and ga != gb:
                return False
        return True

    def one_way(self, a: str, b: str) -> Optional[float]:
        """Delivery delay in seconds from ``a`` to ``b``, or None when the packet is lost."""
        if not self.reachable(a, b):
            return None
        if self.loss and self.rng.random() < self.loss:
            return None
        return self.rtt(a, b) / 2000.0

    def count(self, sender: str, size: int, kind: str = "probe") -> None:
        self.sent_messages[sender] = self.sent_messages.get(sender, 0) + 1
        self.sent_bytes[sender] = self.sent_bytes.get(sender, 0) + size
        self.bytes_by_kind[kind] = self.bytes_by_kind.get(kind, 0) + size

    def total_bytes(self) -> int:
        return sum(self.sent_bytes.values())

    # -- faults (the scenario runner drives these) --------------------------------------------
    def partition(self, groups: List[Set[str]]) -> None:
        """Split the network: nodes in different groups cannot reach each other."""
        self.groups = [set(g) for g in groups]

    def cut_link(self, a: str, b: str) -> None:
        self.cut.add(frozenset((a, b)))

    def restore_link(self, a: str, b: str) -> None:
        self.cut.discard(frozenset((a, b)))

    def heal(self) -> None:
        """Remove every partition and cut link (loss stays)."""
        self.groups = None
        self.cut = set()


@dataclass
class SimNode:
    hostname: str
    kind: str  # "supernode" | "member"
    core: Core
    skew_s: float = 0.0
    alive: bool = True
    #: What the node persisted: sections (supernodes) and meta (members).
    sections: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    incarnation: int = 0


class Simulator:
    """The event loop: a heap of (time, seq, action)."""

    def __init__(self, seed: int, config: CoreConfig, *, loss: float = 0.0,
                 tick_s: float = 0.25, member_tick_s: float = 1.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config
        self.net = Network(rng=random.Random(self.rng.getrandbits(64)), loss=loss)
        self.net.rng_seed = self.rng.getrandbits(32)
        self.now = 0.0
        self.nodes: Dict[str, SimNode] = {}
        self._queue: List[Tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.tick_s = tick_s
        self.member_tick_s = member_tick_s
        self.observers: List[Callable[[Simulator, str, List[Effect]], None]] = []
        self.events = 0
        self._encoded: Dict[int, Tuple[msgs.Message, str]] = {}
        self._decoded: Dict[int, Tuple[str, msgs.Message]] = {}

    # -- scheduling --------------------------------------------------------------------------
    def at(self, t: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, action))

    def run_until(self, t_end: float) -> None:
        while self._queue and self._queue[0][0] <= t_end:
            t, _, action = heapq.heappop(self._queue)
            self.now = t
            self.events += 1
            action()
        self.now = max(self.now, t_end)

    # -- nodes -------------------------------------------------------------------------------
    def add_node(self, node: SimNode) -> None:
        """Add a node; a supernode's initial map counts as persisted (the runtime stores it
        before starting the core)."""
        if isinstance(node.core, SupernodeCore) and not node.sections:
            node.sections = json.loads(json.dumps(nm.sections(node.core.map)))
        self.nodes[node.hostname] = node
        self._schedule_tick(node.hostname, node.incarnation,
                            self.rng.uniform(0, self.tick_s))

    def clock(self, node: SimNode) -> float:
        return self.now + node.skew_s

    def _schedule_tick(self, hostname: str, incarnation: int, delay: float) -> None:
        def tick() -> None:
            node = self.nodes[hostname]
            if not node.alive or node.incarnation != incarnation:
                return
            self.deliver(node, Tick(self.clock(node)))
            period = self.tick_s if node.kind == "supernode" else self.member_tick_s
            self._schedule_tick(hostname, incarnation, period)

        self.at(self.now + delay, tick)

    def deliver(self, node: SimNode, event: Event) -> None:
        effects = node.core.handle(event)
        for obs in self.observers:
            obs(self, node.hostname, effects)
        self.execute(node, effects)

    def execute(self, node: SimNode, effects: List[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Persist):
                # The core encodes each persisted section afresh and never touches it again,
                # so the value can be kept as it is (no copy).
                node.sections.update(eff.sections)
                node.meta.update(eff.meta)
            elif isinstance(eff, Send):
                self._send(node, eff)
            elif isinstance(eff, Probe):
                self._probe(node, eff)

    def _encode(self, message: msgs.Message) -> str:
        """The message's wire text, encoded once per message object (a push to every peer is
        one object sent N-1 times); the cache holds the object, so its id is not reused."""
        cached = self._encoded.get(id(message))
        if cached is not None and cached[0] is message:
            return cached[1]
        if len(self._encoded) > 4096:
            self._encoded.clear()
        payload = json.dumps(msgs.message_to_json(message), separators=(",", ":"))
        self._encoded[id(message)] = (message, payload)
        return payload

    def _decode(self, payload: str) -> msgs.Message:
        """Parse a wire text as the receiver does; equal texts parse to equal immutable
        messages, so one parse serves every receiver of the same text."""
        cached = self._decoded.get(id(payload))
        if cached is not None and cached[0] is payload:
            return cached[1]
        if len(self._decoded) > 4096:
            self._decoded.clear()
        message = msgs.parse_message(json.loads(payload))
        self._decoded[id(payload)] = (payload, message)
        return message

    def _send(self, node: SimNode, eff: Send) -> None:
        payload = self._encode(eff.message)
        self.net.count(node.hostname, len(payload), eff.message.kind)
        delay = self.net.one_way(node.hostname, eff.to)
        if delay is None or eff.to not in self.nodes:
            return
        sender, target, incarnation = node.hostname, eff.to, self.nodes[eff.to].incarnation

        def arrive() -> None:
            dest = self.nodes[target]
            if not dest.alive or dest.incarnation != incarnation:
                return
            message = self._decode(payload)
            self.deliver(dest, Received(sender=sender, message=message, now=self.clock(dest)))

        self.at(self.now + delay, arrive)

    #: Size of a probe request and of its answer on the wire (headers + small JSON body).
    PROBE_BYTES = 180

    def _probe(self, node: SimNode, eff: Probe) -> None:
        prober, target, incarnation = node.hostname, eff.target, node.incarnation
        self.net.count(prober, self.PROBE_BYTES)
        sent_at = self.now
        there = self.net.one_way(prober, target)
        answered: List[bool] = []

        def timeout() -> None:
            if answered:
                return
            answered.append(False)
            me = self.nodes[prober]
            if me.alive and me.incarnation == incarnation:
                self.deliver(me, ProbeDone(target=target, round=eff.round, rtt_ms=None,
                                           now=self.clock(me)))

        self.at(self.now + eff.timeout_s, timeout)
        if there is None or target not in self.nodes:
            return

        def at_target() -> None:
            dest = self.nodes[target]
            if not dest.alive:
                return
            self.net.count(target, self.PROBE_BYTES)
            self.deliver(dest, Probed(sender=prober, now=self.clock(dest)))
            digest = dest.core.digest
            back = self.net.one_way(target, prober)
            if back is None:
                return

            def at_prober() -> None:
                if answered:
                    return
                answered.append(True)
                me = self.nodes[prober]
                if me.alive and me.incarnation == incarnation:
                    rtt = (self.now - sent_at) * 1000.0
                    self.deliver(me, ProbeDone(target=target, round=eff.round, rtt_ms=rtt,
                                               props="GOOD", digest=digest, now=self.clock(me)))

            self.at(self.now + back, at_prober)

        self.at(self.now + there, at_target)

    # -- faults ------------------------------------------------------------------------------
    def crash(self, hostname: str) -> None:
        """SIGKILL: the node stops at once; what it persisted stays, the rest is lost."""
        self.nodes[hostname].alive = False

    def tamper(self, hostname: str, new_map: nm.NodeMap) -> None:
        """Test hook: make a supernode hold (and persist) ``new_map`` as if its core had
        written it, so that tests can check that the invariant checker notices bad state."""
        node = self.nodes[hostname]
        core = node.core
        if not isinstance(core, SupernodeCore):
            raise TypeError(f"{hostname} is not a supernode")
        changed = mg.changed_sections(core.map, new_map)
        core.map = new_map
        core._digest = None
        effects: List[Effect] = [Persist(sections=changed, journal=("tampered by a test",))]
        for obs in self.observers:
            obs(self, hostname, effects)
        self.execute(node, effects)

    def restart(self, hostname: str) -> None:
        """Restart from what the node persisted (volatile state is lost)."""
        node = self.nodes[hostname]
        node.incarnation += 1
        node.alive = True
        if isinstance(node.core, SupernodeCore):
            restored = nm.from_sections(node.sections) if node.sections else nm.NodeMap()
            node.core = SupernodeCore(hostname, self.config, restored)
        else:
            old = node.core
            saved = node.meta.get("member")
            node.core = MemberCore(hostname, old.address, old.port, self.config,
                                   roster=old.roster if saved is None else None,
                                   saved=saved if isinstance(saved, dict) else None)
        self._schedule_tick(hostname, node.incarnation, self.rng.uniform(0, self.tick_s))

    # -- views -------------------------------------------------------------------------------
    def supernode_cores(self) -> List[Tuple[SimNode, SupernodeCore]]:
        return [(n, n.core) for n in self.nodes.values() if isinstance(n.core, SupernodeCore)]

    def persisted_map(self, hostname: str) -> nm.NodeMap:
        node = self.nodes[hostname]
        return nm.from_sections(node.sections) if node.sections else nm.NodeMap()

    def agreed(self) -> bool:
        """Every live supernode holds the same decision, roster, epoch and entries."""
        views = {nm.canonical_json(nm.sections(mg.without_decision_noise(core.map)))
                 for node, core in self.supernode_cores() if node.alive}
        return len(views) <= 1
