"""Invariants and metrics, checked from outside the nodes.

``Monitor`` is a simulator observer: it sees every node's effects right after the node handled
an event and before the simulator executes them (so ``node.sections`` still holds what the node
had persisted before). Checking is event-driven and exact: every invariant about persisted state
is checked on the very ``Persist`` that could break it, which is cheaper than polling every
node's whole map every 100 ms at 550 nodes and misses nothing in between. Agreement (every live
supernode holds the same map, every member knows its server) is a liveness property: the
scenario runner polls ``unconverged()`` after the faults are healed.

Invariants (each violation is a string naming the time, the node and what broke):

(a) after convergence no member is listed in two entries or served by two nodes;
(b) no member lost: a member whose join was acknowledged (and not followed by a leave it asked
    for) is in the persisted entries of at least one supernode at every moment, crashed ones
    included, and in every live supernode's map after convergence;
(c) an id, once seen for a hostname in any node's persisted map, never names another hostname;
(d) no section's version ever goes down in a node's persisted state;
(e) every decision respects capacity: no node serves more than the roster's capacity, members
    of down supernodes are placed on live nodes or listed as unplaced, never both;
(f) no false "down": a decision never newly marks down a supernode that is alive, has been for a
    grace period, and is connected to the deciding leader (directly or through other live
    supernodes) with no topology change during that grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import view as vw
from esgf_nodemgr.core.events import Effect, Persist
from esgf_nodemgr.core.member import LEAVING, MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.sim.engine import SimNode, Simulator

Version = Tuple[int, str]
#: Violations kept in full; beyond that only counted (a broken run can produce thousands).
MAX_VIOLATIONS = 200


@dataclass
class PendingDecision:
    """A decision whose convergence is still being waited for."""

    version: Version
    made_at: float
    #: member hostname -> the server it must learn
    members: Dict[str, Optional[str]] = field(default_factory=dict)


def _server(home: str, health: Mapping[str, str], placement: Mapping[str, str],
            hostname: str, roster_ids: Set[str]) -> Optional[str]:
    if home in roster_ids and health.get(home, "new") not in nm.DOWN_HEALTH:
        return home
    return placement.get(hostname)


def _entry_hosts(value: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    if not value:
        return {}
    return {str(m["hostname"]): str(m["id"]) for m in value.get("members", [])}


class Monitor:
    """Checks the invariants and measures detection and convergence for the ``ours`` profile."""

    def __init__(self, sim: Simulator, *, grace_s: float) -> None:
        self.sim = sim
        self.grace_s = grace_s
        self.violations: List[str] = []
        self.violation_count = 0
        #: id -> hostname, for every id ever seen in any persisted map
        self.ids: Dict[str, str] = {}
        #: member hostname -> supernodes whose persisted entries list it
        self.holders: Dict[str, Set[str]] = {}
        #: members with an acknowledged join that are not leaving
        self.acked: Set[str] = set()
        #: members whose leave was acknowledged (and that did not join again)
        self.left: Set[str] = set()
        self._member_state: Dict[str, Tuple[bool, str]] = {}
        #: decision version -> (time made, leader hostname)
        self.decisions: Dict[Version, Tuple[float, str]] = {}
        self.held: Dict[str, Version] = {}
        self.pending: List[PendingDecision] = []
        self.convergence_s: List[float] = []
        self.crashed_at: Dict[str, float] = {}
        self.detection_s: List[float] = []
        self.undetected: List[str] = []
        self.false_down = 0
        self.alive_since: Dict[str, float] = {}
        self.topology_changed_at = -1e9
        self.enabled = True

    # -- reporting ---------------------------------------------------------------------------
    def violation(self, node: str, what: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(f"t={self.sim.now:.2f}s {node}: {what}")

    # -- fault notifications (from the scenario runner) ------------------------------------
    def on_crash(self, hostname: str) -> None:
        self.crashed_at[hostname] = self.sim.now
        self.topology_changed_at = self.sim.now
        self._settle()

    def on_restart(self, hostname: str) -> None:
        if hostname in self.crashed_at:
            self.undetected.append(hostname)
            del self.crashed_at[hostname]
        self.alive_since[hostname] = self.sim.now
        self.topology_changed_at = self.sim.now

    def on_topology(self) -> None:
        self.topology_changed_at = self.sim.now

    # -- the observer ------------------------------------------------------------------------
    def __call__(self, sim: Simulator, hostname: str, effects: List[Effect]) -> None:
        if not self.enabled:
            return
        node = sim.nodes[hostname]
        if isinstance(node.core, MemberCore):
            self._observe_member(node, node.core)
            return
        for eff in effects:
            if isinstance(eff, Persist) and eff.sections:
                self._observe_persist(node, eff.sections)

    def _observe_member(self, node: SimNode, core: MemberCore) -> None:
        state = (core.joined, core.join.state)
        if self._member_state.get(node.hostname) == state:
            self._check_member_slices(node.hostname, core)
            return
        self._member_state[node.hostname] = state
        host = node.hostname
        if core.joined and core.join.state != LEAVING:
            if host not in self.acked:
                self.acked.add(host)
                self.left.discard(host)
                if not self.holders.get(host):
                    self.violation(host, "join acknowledged but no supernode persisted it")
        else:
            if host in self.acked and not core.joined:
                self.left.add(host)
            self.acked.discard(host)
        self._check_member_slices(host, core)

    def _observe_persist(self, node: SimNode, sections: Mapping[str, Any]) -> None:
        host = node.hostname
        before = node.sections
        for name, value in sections.items():
            old = before.get(name)
            if old is not None:
                v_old, v_new = nm.section_version(name, old), nm.section_version(name, value)
                if v_new < v_old:
                    self.violation(host, f"version of {name} went down: {v_old} -> {v_new}")
            if name == "roster":
                for s in value.get("supernodes", []) + value.get("retired", []):
                    self._check_id(host, str(s["id"]), str(s["hostname"]))
            elif name.startswith("entry/"):
                self._on_entry(host, name, old, value)
        if "decision" in sections:
            self._on_decision(node, before.get("decision"), sections["decision"])

    def _check_id(self, where: str, node_id: str, hostname: str) -> None:
        prev = self.ids.setdefault(node_id, hostname)
        if prev != hostname:
            self.violation(where, f"id {node_id} reused: it named {prev}, now names {hostname}")

    def _on_entry(self, host: str, name: str, old: Optional[Mapping[str, Any]],
                  value: Mapping[str, Any]) -> None:
        old_hosts = _entry_hosts(old)
        new_hosts = _entry_hosts(value)
        for member, member_id in new_hosts.items():
            self._check_id(host, member_id, member)
            self.holders.setdefault(member, set()).add(f"{host}:{name}")
        for member in set(old_hosts) - set(new_hosts):
            held = self.holders.get(member, set())
            held.discard(f"{host}:{name}")
            if member in self.acked and not held:
                self.violation(host, f"member {member} lost: {name} dropped it and no other "
                               f"supernode's persisted state holds it")

    # -- decisions ---------------------------------------------------------------------------
    def _on_decision(self, node: SimNode, old: Optional[Mapping[str, Any]],
                     new: Mapping[str, Any]) -> None:
        version: Version = (int(new["round"]), str(new["leader"]))
        self.held[node.hostname] = version
        if version not in self.decisions:
            self.decisions[version] = (self.sim.now, node.hostname)
            core = node.core
            assert isinstance(core, SupernodeCore)
            self._new_decision(node, core, old, version)
        self._settle()

    def _new_decision(self, node: SimNode, core: SupernodeCore,
                      old: Optional[Mapping[str, Any]], version: Version) -> None:
        m = core.map
        d = m.decision
        assert d is not None
        roster_ids = set(m.roster.ids)
        id_to_host = {s.id: s.hostname for s in m.roster.supernodes}
        old_health: Mapping[str, str] = old.get("health", {}) if old else {}
        old_place: Mapping[str, str] = old.get("placement", {}) if old else {}
        # (e) capacity and placement sanity, on the deciding node's map.
        views = vw.members(m)
        load: Dict[str, int] = {}
        for v in views:
            if v.server is not None:
                load[v.server] = load.get(v.server, 0) + 1
        for server, n in sorted(load.items()):
            if n > m.roster.capacity:
                self.violation(node.hostname, f"decision {version}: {server} serves {n} members, "
                               f"above capacity {m.roster.capacity}")
        for member, target in sorted(d.placement.items()):
            if target in roster_ids and d.is_down(target):
                self.violation(node.hostname, f"decision {version}: {member} placed on "
                               f"{target}, which it declares down")
            if member in d.unplaced:
                self.violation(node.hostname, f"decision {version}: {member} both placed and "
                               f"unplaced")
        for v in views:
            if v.server is None and v.hostname not in d.unplaced:
                self.violation(node.hostname, f"decision {version}: member {v.hostname} of down "
                               f"supernode {v.home} neither placed nor listed unplaced")
        # Detection and (f) false downs.
        for sid, health in sorted(d.health.items()):
            if health not in nm.DOWN_HEALTH or old_health.get(sid) in nm.DOWN_HEALTH:
                continue
            found = id_to_host.get(sid)
            if found is None:
                continue
            target = found
            if target in self.crashed_at:
                self.detection_s.append(round(self.sim.now - self.crashed_at.pop(target), 3))
            elif self._false_down(node.hostname, target):
                self.false_down += 1
                self.violation(node.hostname, f"false down: decision {version} marks {target} "
                               f"{health} though it is alive and reachable")
        # Convergence: who must learn what.
        need: Dict[str, Optional[str]] = {}
        for v in views:
            before = _server(v.home, old_health, old_place, v.hostname, roster_ids)
            if before != v.server:
                need[v.hostname] = v.server
        # An older decision's expectation that this one changes is this one's to meet now.
        server_now = {v.hostname: v.server for v in views}
        for p in self.pending:
            for h in [h for h, want in p.members.items()
                      if h in need or server_now.get(h, want) != want]:
                del p.members[h]
        self.pending.append(PendingDecision(version=version, made_at=self.sim.now, members=need))

    def _false_down(self, leader: str, target: str) -> bool:
        now = self.sim.now
        if now - self.topology_changed_at < self.grace_s:
            return False
        if now - self.alive_since.get(target, -1e9) < self.grace_s:
            return False
        return target in self._component(leader)

    def _component(self, start: str) -> Set[str]:
        """Live supernodes reachable from ``start`` over uncut links (ignoring loss)."""
        live = [h for h, n in self.sim.nodes.items() if n.kind == "supernode" and n.alive]
        seen = {start}
        todo = [start]
        while todo:
            a = todo.pop()
            for b in live:
                if b not in seen and self.sim.net.reachable(a, b):
                    seen.add(b)
                    todo.append(b)
        return seen

    # -- convergence -------------------------------------------------------------------------
    def _check_member_slices(self, host: str, core: MemberCore) -> None:
        changed = False
        for p in self.pending:
            if host in p.members and (core.server == p.members[host] or not core.joined):
                del p.members[host]
                changed = True
        if changed:
            self._settle()

    def _settle(self) -> None:
        if not self.pending:
            return
        live = [h for h, n in self.sim.nodes.items() if n.kind == "supernode" and n.alive]
        keep = []
        for p in self.pending:
            for h in list(p.members):
                n = self.sim.nodes.get(h)
                if n is None or not n.alive:
                    del p.members[h]
            if not p.members and all(self.held.get(h, (-1, "")) >= p.version for h in live):
                self.convergence_s.append(round(self.sim.now - p.made_at, 3))
            else:
                keep.append(p)
        self.pending = keep

    def unconverged(self) -> List[str]:
        """Why the federation has not converged yet (empty: it has).

        Converged means: every live supernode holds the same map (modulo reports and
        timeline), that map's decision marks no live supernode down and leaves nobody
        unplaced, every acknowledged member is in it exactly once and no member that left
        is, every member serving or served agrees with it, and nobody is served twice.
        """
        sim = self.sim
        reasons: List[str] = []
        live = [(n, n.core) for n, c in sim.supernode_cores() if n.alive]
        if not live:
            return ["no live supernode"]
        if not sim.agreed():
            digests: Dict[str, List[str]] = {}
            for n, core in live:
                assert isinstance(core, SupernodeCore)
                key = nm.digest(_agreed_part(core.map))[:8]
                digests.setdefault(key, []).append(n.hostname)
            reasons.append("supernodes disagree: " + "; ".join(
                f"{k}: {','.join(sorted(v)[:5])}" for k, v in sorted(digests.items())))
            return reasons
        ref = live[0][1]
        assert isinstance(ref, SupernodeCore)
        m = ref.map
        d = m.decision
        live_ids = {s.id for s in m.roster.supernodes
                    if s.hostname in sim.nodes and sim.nodes[s.hostname].alive}
        if d is None:
            return ["no decision yet"]
        down = sorted(i for i in live_ids if d.is_down(i))
        if down:
            reasons.append(f"live supernodes still marked down: {', '.join(down)}")
        if d.unplaced:
            reasons.append(f"unplaced members: {', '.join(d.unplaced[:5])}")
        reasons += self._check_map(m, "agreed map")
        views = {v.hostname: v for v in vw.members(m)}
        for host in sorted(self.acked):
            if host not in views:
                reasons.append(f"acknowledged member {host} missing from the agreed map")
        for host in sorted(self.left):
            if host in views:
                reasons.append(f"member {host} left but is still listed")
        served: Dict[str, List[str]] = {}
        for n, core in live:
            assert isinstance(core, SupernodeCore)
            for mem in core._served_nodes():
                served.setdefault(mem.hostname, []).append(n.hostname)
        for n in sim.nodes.values():
            if n.alive and isinstance(n.core, MemberCore):
                for s in n.core.serve:
                    served.setdefault(s.hostname, []).append(n.hostname)
        for host, by in sorted(served.items()):
            if len(by) > 1:
                reasons.append(f"member {host} served by {', '.join(by)}")
        for host, v in sorted(views.items()):
            node = sim.nodes.get(host)
            if node is None or not node.alive or not isinstance(node.core, MemberCore):
                continue
            core = node.core
            if not core.joined:
                reasons.append(f"member {host} is listed but does not know it joined")
            elif (core.server, core.home) != (v.server, v.home):
                reasons.append(f"member {host} follows server {core.server} (home {core.home}), "
                               f"the map says {v.server} (home {v.home})")
        return reasons

    @staticmethod
    def _check_map(m: nm.NodeMap, where: str) -> List[str]:
        """(a) and (c) on one map: nobody in two entries, no id naming two hostnames."""
        out: List[str] = []
        seen: Dict[str, str] = {}
        ids: Dict[str, str] = {}
        for sid, member in m.all_members():
            if member.hostname in seen:
                out.append(f"{where}: member {member.hostname} listed in entries "
                           f"{seen[member.hostname]} and {sid}")
            seen[member.hostname] = sid
            if ids.setdefault(member.id, member.hostname) != member.hostname:
                out.append(f"{where}: id {member.id} names {ids[member.id]} and "
                           f"{member.hostname}")
        return out


def _agreed_part(m: nm.NodeMap) -> nm.NodeMap:
    from esgf_nodemgr.core import merge as mg

    return mg.without_decision_noise(m)
