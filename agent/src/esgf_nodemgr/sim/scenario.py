"""Scenario runner: build a federation, break it, heal it, check it, measure it.

One seed drives a run. Phases, in virtual time:

1. **setup** — N supernodes from one roster, the epoch seeded on the first, M members joining
   one after the other (each near one supernode, so that they spread evenly; one in ten is a
   standby); the phase ends when the federation has converged (bounded).
2. **measure** — bytes per membership change: a quiet window, then a window in which one new
   member joins, then one in which it leaves, each ``W`` long. Loss is switched off during this
   phase only, so that the difference between a change window and the quiet window is what the
   change cost and not the noise of lost-and-retried packets (see ``docs``/``bench/README``).
3. **safety** — ``duration_s`` of faults from ``faults.plan`` (crashes and restarts, partitions,
   cut links, member churn) with ``loss`` on every message and probe; invariants are checked on
   every event (``checker.Monitor``).
4. **liveness** — everything healed (crashed nodes restarted, network whole, members whose join
   failed re-join, as an administrator would), loss kept; the federation must converge within
   ``liveness_s`` or the run fails.

The same plan drives the prototype profile (``prototype.py``): same hostnames, links, RTTs,
skews, loss and faults.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from esgf_nodemgr.core import roster as ro
from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.events import AdminJoin, AdminLeave, AdminSeedEpoch
from esgf_nodemgr.core.member import FAILED, MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.sim import faults as fl
from esgf_nodemgr.sim.checker import Monitor
from esgf_nodemgr.sim.engine import Network, SimNode, Simulator

PROFILES = ("ours", "prototype")
#: Lowest and highest RTT of a link (ms); a member's link to its nearby supernode stays in the
#: lowest part of that range, so that it joins there.
RTT_MS = (20.0, 250.0)
NEAR_MS = (20.0, 40.0)
PORT = 7443


@dataclass(frozen=True)
class Spec:
    """Everything a run depends on (with the seed, it reproduces the run exactly)."""

    supernodes: int = 5
    members: int = 10
    seed: int = 1
    scenario: str = "crash"
    loss: float = 0.01
    skew_s: float = 0.5
    duration_s: float = 300.0
    round_s: float = 2.0
    profile: str = "ours"
    capacity: int = 20
    #: Join+leave samples for ``bytes_per_membership_change`` (0: skip the measure phase).
    samples: int = 1
    #: Bound of the liveness phase; None: derived from the round length.
    liveness_s: Optional[float] = None

    def __post_init__(self) -> None:
        problems = []
        if self.supernodes < 1:
            problems.append("supernodes must be at least 1")
        if self.members < 0:
            problems.append("members must not be negative")
        if not 0.0 <= self.loss < 1.0:
            problems.append("loss must be in [0, 1)")
        if self.skew_s < 0:
            problems.append("skew must not be negative")
        if self.duration_s <= 0:
            problems.append("duration must be positive")
        if self.round_s <= 0:
            problems.append("round length must be positive")
        if self.scenario not in fl.SCENARIOS:
            problems.append(f"scenario must be one of {', '.join(fl.SCENARIOS)}")
        if self.profile not in PROFILES:
            problems.append(f"profile must be one of {', '.join(PROFILES)}")
        if self.samples < 0:
            problems.append("samples must not be negative")
        if problems:
            raise ValueError("; ".join(problems))

    def core_config(self) -> CoreConfig:
        return CoreConfig(round_s=self.round_s, probe_timeout_s=min(1.0, self.round_s / 2))

    def bound_s(self) -> float:
        """How long the liveness phase may take: a member that lost its server re-joins after
        ``orphan_rounds`` rounds, plus room for a few lost answers."""
        if self.liveness_s is not None:
            return self.liveness_s
        cfg = self.core_config()
        return max(60.0, (cfg.orphan_rounds + 2 * cfg.down_after + 10) * self.round_s
                   + 3 * cfg.reply_timeout_s)

    def command(self) -> str:
        """The CLI command that reproduces this run."""
        return (f"esgf-nm sim --supernodes {self.supernodes} --members {self.members} "
                f"--seed {self.seed} --scenario {self.scenario} --loss {self.loss} "
                f"--skew {self.skew_s} --duration {self.duration_s:g} --round-s {self.round_s:g} "
                f"--profile {self.profile} --json")


# --------------------------------------------------------------------------------------------
# The federation's layout, shared by both profiles
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Hostnames, skews, link RTTs and the fault plan: everything but the protocol."""

    supernodes: Tuple[str, ...]
    members: Tuple[str, ...]
    standby: Tuple[str, ...]
    near: Dict[str, str]
    skew: Dict[str, float]
    rtt_ms: Dict[Tuple[str, str], float]
    plan: Tuple[fl.Fault, ...]
    extra: Tuple[str, ...]


def layout(spec: Spec) -> Layout:
    rng = random.Random(f"layout:{spec.seed}")
    sns = tuple(f"sn{i}" for i in range(1, spec.supernodes + 1))
    members = tuple(f"m{i}" for i in range(1, spec.members + 1))
    plan = tuple(fl.plan(spec.scenario, sns, members, spec.duration_s, spec.seed))
    joiners = tuple(sorted({f.nodes[0] for f in plan if f.action == fl.JOIN}))
    extra = tuple(f"x{i}" for i in range(1, spec.samples + 1))
    near: Dict[str, str] = {}
    for i, h in enumerate(members + joiners + extra):
        near[h] = sns[i % len(sns)]
    standby = tuple(h for i, h in enumerate(members) if i % 10 == 9)
    skew = {h: rng.uniform(-spec.skew_s, spec.skew_s) for h in sns + members + joiners + extra}
    rtt: Dict[Tuple[str, str], float] = {}
    for i, a in enumerate(sns):
        for b in sns[i + 1:]:
            rtt[(a, b)] = rng.uniform(*RTT_MS)
    for h in members + joiners + extra:
        for s in sns:
            rtt[(h, s)] = rng.uniform(*NEAR_MS) if near[h] == s else rng.uniform(
                NEAR_MS[1], RTT_MS[1])
    return Layout(supernodes=sns, members=members, standby=standby, near=near, skew=skew,
                  rtt_ms=rtt, plan=plan, extra=extra)


def apply_layout(sim: Simulator, lay: Layout) -> None:
    for (a, b), v in lay.rtt_ms.items():
        sim.net.rtt_ms[frozenset((a, b))] = v


def measure_window(round_s: float) -> float:
    """Length of a measurement window: whole rounds, at least five and at least 10 s."""
    return round_s * max(5, math.ceil(10.0 / round_s))


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (nearest rank) of ``values``, None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def median(values: Sequence[float]) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


# --------------------------------------------------------------------------------------------
# Our protocol
# --------------------------------------------------------------------------------------------
Hook = Callable[[str, Simulator], None]


class OursRun:
    """One run of the ``ours`` profile."""

    def __init__(self, spec: Spec, hook: Optional[Hook] = None) -> None:
        self.spec = spec
        self.hook = hook
        self.lay = layout(spec)
        self.cfg = spec.core_config()
        self.sim = Simulator(spec.seed, self.cfg, loss=spec.loss)
        apply_layout(self.sim, self.lay)
        cfg = self.cfg
        self.monitor = Monitor(self.sim, grace_s=(cfg.down_after + cfg.up_after + 2) * cfg.round_s
                               + 2 * spec.skew_s + cfg.probe_timeout_s)
        self.sim.observers.append(self.monitor)
        self.base = ro.generate([ro.SupernodeSpec(h) for h in self.lay.supernodes],
                                capacity=spec.capacity)
        self.phases: Dict[str, float] = {}
        self.extra_violations: List[str] = []

    # -- helpers -----------------------------------------------------------------------------
    def _phase(self, name: str) -> None:
        self.phases[name] = round(self.sim.now, 3)
        if self.hook is not None:
            self.hook(name, self.sim)

    def _add_member(self, host: str) -> None:
        node = SimNode(host, "member", MemberCore(host, host, PORT, self.cfg,
                                                  roster=self.base.roster),
                       skew_s=self.lay.skew[host])
        self.sim.add_node(node)

    def _join(self, host: str) -> None:
        if host not in self.sim.nodes:
            self._add_member(host)
        node = self.sim.nodes[host]
        self.sim.deliver(node, AdminJoin(project="CMIP6", standby=host in self.lay.standby,
                                         now=self.sim.clock(node)))

    def _leave(self, host: str) -> None:
        node = self.sim.nodes[host]
        if node.alive:
            self.sim.deliver(node, AdminLeave(now=self.sim.clock(node)))

    def _wait(self, limit: float, step: float = 1.0) -> Optional[float]:
        """Run until converged (returns the time it took) or ``limit`` seconds passed."""
        start = self.sim.now
        while True:
            if not self.monitor.unconverged():
                return self.sim.now - start
            if self.sim.now - start >= limit:
                return None
            self.sim.run_until(self.sim.now + step)

    def _bytes_window(self, seconds: float) -> int:
        before = self.sim.net.total_bytes()
        self.sim.run_until(self.sim.now + seconds)
        return self.sim.net.total_bytes() - before

    # -- phases ------------------------------------------------------------------------------
    def setup(self) -> None:
        sim, lay = self.sim, self.lay
        for h in lay.supernodes:
            sim.add_node(SimNode(h, "supernode", SupernodeCore(h, self.cfg, self.base,
                                                              synced=True),
                                 skew_s=lay.skew[h]))
        sim.run_until(0.5)
        first = sim.nodes[lay.supernodes[0]]
        sim.deliver(first, AdminSeedEpoch(value=sim.clock(first) + 1.0, now=sim.clock(first)))
        spread = 10.0 / max(1, len(lay.members))
        for i, h in enumerate(lay.members):
            sim.at(2.0 + i * spread, functools.partial(self._join, h))
        sim.run_until(12.0 + self.spec.round_s)
        took = self._wait(self.spec.bound_s() + 60.0)
        if took is None:
            self.extra_violations.append(
                f"t={sim.now:.2f}s setup did not converge: "
                + "; ".join(self.monitor.unconverged()[:5]))

    def measure(self) -> List[float]:
        """Bytes per membership change (join and leave), by windowed difference.

        Windows of ``W``: the join window is compared with the quiet window that follows it
        (the new member present in both), the leave window with the quiet window after it (the
        member absent in both), so the difference is the change's own traffic, give or take
        one round of probing the member.
        """
        sim = self.sim
        window = measure_window(self.spec.round_s)
        loss = sim.net.loss
        sim.net.loss = 0.0
        costs: List[float] = []
        for host in self.lay.extra:
            self._join(host)
            joined = self._bytes_window(window)
            present = self._bytes_window(window)
            self._leave(host)
            left = self._bytes_window(window)
            absent = self._bytes_window(window)
            costs += [float(joined - present), float(left - absent)]
        sim.net.loss = loss
        return costs

    def safety(self) -> None:
        sim = self.sim
        t0 = sim.now
        for f in self.lay.plan:
            sim.at(t0 + f.at, functools.partial(self._fault, f))
        sim.run_until(t0 + self.spec.duration_s)

    def _fault(self, f: fl.Fault) -> None:
        sim, mon = self.sim, self.monitor
        if f.action == fl.CRASH:
            sim.crash(f.nodes[0])
            mon.on_crash(f.nodes[0])
        elif f.action == fl.RESTART:
            if not sim.nodes[f.nodes[0]].alive:
                sim.restart(f.nodes[0])
                mon.on_restart(f.nodes[0])
        elif f.action == fl.PARTITION:
            sim.net.partition([set(g) for g in f.groups])
            mon.on_topology()
        elif f.action == fl.HEAL:
            sim.net.groups = None
            mon.on_topology()
        elif f.action == fl.CUT:
            sim.net.cut_link(*f.nodes)
            mon.on_topology()
        elif f.action == fl.UNCUT:
            sim.net.restore_link(*f.nodes)
            mon.on_topology()
        elif f.action == fl.JOIN:
            self._join(f.nodes[0])
        elif f.action == fl.LEAVE:
            self._leave(f.nodes[0])

    def liveness(self) -> Optional[float]:
        sim, mon = self.sim, self.monitor
        for h, node in sorted(sim.nodes.items()):
            if not node.alive:
                sim.restart(h)
                mon.on_restart(h)
        sim.net.heal()
        mon.on_topology()
        for h, node in sorted(sim.nodes.items()):
            core = node.core
            if isinstance(core, MemberCore) and core.join.state == FAILED and not core.joined:
                self._join(h)
        took = self._wait(self.spec.bound_s())
        if took is None:
            for why in mon.unconverged()[:20]:
                self.extra_violations.append(
                    f"t={sim.now:.2f}s liveness: not converged {self.spec.bound_s():g}s after "
                    f"healing: {why}")
        return took

    def run(self) -> Dict[str, Any]:
        self._phase("setup")
        self.setup()
        self._phase("measure")
        costs = self.measure() if self.spec.samples else []
        self._phase("safety")
        t_safety = self.sim.now
        sent0 = dict(self.sim.net.sent_messages)
        bytes0 = dict(self.sim.net.sent_bytes)
        self.safety()
        self._phase("liveness")
        took = self.liveness()
        self._phase("end")
        seconds = self.sim.now - t_safety
        mon = self.monitor
        kinds = {h: n.kind for h, n in self.sim.nodes.items()}
        return result(self.spec, kinds, self.sim.net, self.sim, sent0, bytes0, seconds, costs, {
            "detection_s": mon.detection_s,
            "convergence_s": mon.convergence_s,
            "false_down": mon.false_down,
            "violations": self.extra_violations + mon.violations,
            "violation_count": len(self.extra_violations) + mon.violation_count,
            "undetected_crashes": len(mon.undetected),
            "unconverged_decisions": len(mon.pending),
            "decisions": len(mon.decisions),
            "liveness_s": None if took is None else round(took, 3),
            "phases": self.phases,
        })


def result(spec: Spec, kinds: Dict[str, str], net: Network, sim: Simulator,
           sent0: Dict[str, int], bytes0: Dict[str, int], seconds: float, costs: List[float],
           extra: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON result of a run (common to both profiles)."""
    def per_node(kind: str, counts: Dict[str, int], base: Dict[str, int]) -> float:
        hosts = [h for h, k in kinds.items() if k == kind]
        if not hosts or seconds <= 0:
            return 0.0
        total = sum(counts.get(h, 0) - base.get(h, 0) for h in hosts)
        return round(total / len(hosts) / seconds, 3)

    out: Dict[str, Any] = {
        "seed": spec.seed,
        "profile": spec.profile,
        "scenario": spec.scenario,
        "supernodes": spec.supernodes,
        "members": spec.members,
        "loss": spec.loss,
        "skew_s": spec.skew_s,
        "duration_s": spec.duration_s,
        "round_s": spec.round_s,
        "detection_s": extra.pop("detection_s"),
        "convergence_s": extra.pop("convergence_s"),
        "messages_per_supernode_per_s": per_node("supernode", net.sent_messages, sent0),
        "messages_per_member_per_s": per_node("member", net.sent_messages, sent0),
        "bytes_per_supernode_per_s": per_node("supernode", net.sent_bytes, bytes0),
        "bytes_per_member_per_s": per_node("member", net.sent_bytes, bytes0),
        "bytes_per_membership_change": median(costs),
        "membership_change_samples": costs,
        "false_down": extra.pop("false_down"),
        "violations": extra.pop("violations"),
    }
    out.update(extra)
    out["events"] = sim.events
    out["sim_seconds"] = round(sim.now, 3)
    out["reproduce"] = spec.command()
    return out


def run(spec: Spec, hook: Optional[Hook] = None) -> Dict[str, Any]:
    """Run one scenario with ``spec.profile``; return the JSON-able result."""
    if spec.profile == "prototype":
        from esgf_nodemgr.sim.prototype import PrototypeRun

        return PrototypeRun(spec).run()
    return OursRun(spec, hook).run()


def spec_dict(spec: Spec) -> Dict[str, Any]:
    return asdict(spec)
