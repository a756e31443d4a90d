"""Prometheus metrics of the agent: ``GET /metrics`` in the text exposition format 0.0.4.

Written by hand (no client library: the agent has no runtime dependency for this). Two parts:

- :class:`Telemetry` — counters and histograms that only the runtime can observe (probe round
  trips per peer, messages received by kind, rounds started, dropped events). Thread-safe:
  workers and HTTP handlers update it, the scrape reads a copy.
- :func:`render` — one scrape: gauges derived from the published status snapshot (health,
  links, members, map version) plus the counters above, the transport's and the HTTP
  server's. It never touches the loop's state, only immutable snapshots and locked copies.

Format rules kept (https://prometheus.io/docs/instrumenting/exposition_formats/): one
``# HELP`` and one ``# TYPE`` line per family before its samples, samples of a family
together, label values escaped (``\\``, ``"``, newline), HELP text escaped (``\\``,
newline), ``+Inf``/``-Inf``/``NaN`` spelled so, histogram buckets cumulative with a final
``le="+Inf"`` equal to ``_count``, counters named ``*_total``, times in seconds, sizes in bytes.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from esgf_nodemgr.core.member import MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore

if TYPE_CHECKING:
    from esgf_nodemgr.runtime.agent import Agent
    from esgf_nodemgr.runtime.httpserver import ServerStats

#: Content-Type of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Probe round-trip buckets (seconds): loopback and LAN at the low end, WAN up to the
#: probe timeouts operators are likely to configure.
PROBE_BUCKETS: Tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1.0, 2.5, 5.0)
#: Bound on distinct peers with their own probe series (a roster is tens of supernodes plus
#: the members one serves); probes of further peers are counted under ``peer="other"``.
MAX_PEERS = 2000
#: Bound on distinct message kinds and error kinds kept (kinds come from our own code, but a
#: limit costs nothing).
MAX_KINDS = 64

SUPERNODE_HEALTH = ("new", "good", "unhealthy", "bad", "unreachable")
DOWN_HEALTH = frozenset({"bad", "unreachable"})
MEMBER_HEALTH = ("new", "good", "unreachable")
LINK_STATUS = ("unverified", "init", "up", "down")

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KINDS = ("counter", "gauge", "histogram", "untyped")

Labels = Tuple[Tuple[str, str], ...]


# -- values that only the runtime sees ------------------------------------------------------
class Histogram:
    """Fixed-bucket histogram (not thread-safe by itself: :class:`Telemetry` locks)."""

    def __init__(self, buckets: Sequence[float] = PROBE_BUCKETS) -> None:
        if list(buckets) != sorted(buckets) or len(set(buckets)) != len(buckets):
            raise ValueError("histogram buckets must be strictly increasing")
        self.bounds: Tuple[float, ...] = tuple(float(b) for b in buckets)
        self.counts: List[int] = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += value

    def copy(self) -> Histogram:
        h = Histogram(self.bounds)
        h.counts = list(self.counts)
        h.count = self.count
        h.sum = self.sum
        return h

    def cumulative(self) -> List[Tuple[float, int]]:
        """``(upper bound, observations <= bound)`` including ``(+Inf, count)``."""
        out: List[Tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append((bound, running))
        out.append((math.inf, self.count))
        return out


@dataclass
class TelemetrySnapshot:
    rounds: int = 0
    probes: Dict[str, Histogram] = field(default_factory=dict)
    probe_failures: Dict[str, int] = field(default_factory=dict)
    received: Dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    errors: Dict[str, int] = field(default_factory=dict)


class Telemetry:
    """Counters the runtime feeds from its threads; :meth:`snapshot` copies them under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = TelemetrySnapshot()
        self._last_round: Optional[int] = None

    def note_round(self, r: Optional[int]) -> None:
        """Count a round when the agent's current round moves forward."""
        if r is None or r < 0:
            return
        with self._lock:
            if self._last_round is None or r > self._last_round:
                self._data.rounds += 1
                self._last_round = r

    def note_tick(self, core: Any, now: float) -> None:
        """After a tick: count the round the core is in (members follow the schedule)."""
        if isinstance(core, SupernodeCore):
            self.note_round(core.round)
        elif isinstance(core, MemberCore):
            sch = core.schedule()
            self.note_round(sch.round_at(now) if sch else None)

    def probe_ok(self, peer: str, seconds: float) -> None:
        with self._lock:
            probes = self._data.probes
            key = peer if peer in probes or len(probes) < MAX_PEERS else "other"
            probes.setdefault(key, Histogram()).observe(seconds)

    def probe_failed(self, peer: str) -> None:
        with self._lock:
            failures = self._data.probe_failures
            key = peer if peer in failures or len(failures) < MAX_PEERS else "other"
            failures[key] = failures.get(key, 0) + 1

    def message_received(self, kind: str) -> None:
        with self._lock:
            _bump(self._data.received, kind)

    def bytes_received(self, n: int) -> None:
        with self._lock:
            self._data.bytes_received += n

    def error(self, kind: str) -> None:
        with self._lock:
            _bump(self._data.errors, kind)

    def snapshot(self) -> TelemetrySnapshot:
        with self._lock:
            d = self._data
            return TelemetrySnapshot(
                rounds=d.rounds, probes={p: h.copy() for p, h in d.probes.items()},
                probe_failures=dict(d.probe_failures), received=dict(d.received),
                bytes_received=d.bytes_received, errors=dict(d.errors))


def _bump(counts: Dict[str, int], kind: str) -> None:
    key = kind if kind in counts or len(counts) < MAX_KINDS else "other"
    counts[key] = counts.get(key, 0) + 1


# -- the text format --------------------------------------------------------------------------
def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # repr is the shortest text that reads back to the same float; Go's ParseFloat (used
    # by Prometheus) accepts all of its forms ("0.25", "1e-05", "1e+20").
    return repr(float(value))


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: List[Tuple[str, Labels, float]] = field(default_factory=list)


class Exposition:
    """Collects metric families and writes them in the text format."""

    def __init__(self) -> None:
        self._families: Dict[str, _Family] = {}

    def _family(self, name: str, kind: str, help_text: str) -> _Family:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        if kind not in _KINDS:
            raise ValueError(f"invalid metric type {kind!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        fam = self._families.get(name)
        if fam is None:
            fam = self._families[name] = _Family(name, kind, help_text)
        elif fam.kind != kind:
            raise ValueError(f"metric {name} declared as {fam.kind} and {kind}")
        return fam

    def add(self, name: str, kind: str, help_text: str, value: float,
            labels: Optional[Mapping[str, str]] = None) -> None:
        """One sample of a counter or gauge (declares the family on first use)."""
        self._family(name, kind, help_text).samples.append((name, _labels(labels), value))

    def declare(self, name: str, kind: str, help_text: str) -> None:
        """A family that may have no samples (still listed with HELP and TYPE)."""
        self._family(name, kind, help_text)

    def histogram(self, name: str, help_text: str, hist: Histogram,
                  labels: Optional[Mapping[str, str]] = None) -> None:
        fam = self._family(name, "histogram", help_text)
        base = dict(labels or {})
        if "le" in base:
            raise ValueError("'le' is reserved for histogram buckets")
        for bound, n in hist.cumulative():
            fam.samples.append((f"{name}_bucket", _labels({**base, "le": format_value(bound)}),
                                n))
        fam.samples.append((f"{name}_sum", _labels(base), hist.sum))
        fam.samples.append((f"{name}_count", _labels(base), hist.count))

    def text(self) -> str:
        lines: List[str] = []
        for fam in self._families.values():
            lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
            lines.append(f"# TYPE {fam.name} {fam.kind}")
            for sample, labels, value in fam.samples:
                if labels:
                    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
                    lines.append(f"{sample}{{{inner}}} {format_value(value)}")
                else:
                    lines.append(f"{sample} {format_value(value)}")
        return "\n".join(lines) + "\n"


def _labels(labels: Optional[Mapping[str, str]]) -> Labels:
    out = []
    for k, v in (labels or {}).items():
        if not _LABEL.match(k) or k.startswith("__"):
            raise ValueError(f"invalid label name {k!r}")
        out.append((k, str(v)))
    return tuple(out)


# -- one scrape -------------------------------------------------------------------------------
def render(status: Mapping[str, Any], telemetry: TelemetrySnapshot, *,
           transport: Mapping[str, int], sent_by_kind: Mapping[str, int],
           servers: Iterable[ServerStats] = (), process: bool = True,
           started_at: Optional[float] = None) -> str:
    """The ``/metrics`` text for one agent from its status snapshot and counters."""
    ex = Exposition()
    role = str(status.get("role", ""))
    ex.add("esgf_nm_agent_info", "gauge",
           "Constant 1, labelled with this agent's hostname, role and version.", 1,
           {"hostname": str(status.get("hostname", "")), "role": role,
            "version": str(status.get("version", ""))})
    _federation(ex, status, role)
    _counters(ex, status, telemetry, transport, sent_by_kind, servers)
    if process:
        _process(ex, started_at)
    return ex.text()


def _federation(ex: Exposition, st: Mapping[str, Any], role: str) -> None:
    round_s = st.get("round_s")
    if isinstance(round_s, (int, float)):
        ex.add("esgf_nm_round_length_seconds", "gauge", "Configured length of a round.",
               float(round_s))
    r = st.get("round")
    ex.add("esgf_nm_round", "gauge",
           "The round running now by this agent's clock (-1: before the epoch or not seeded).",
           r if isinstance(r, int) else -1)
    epoch = st.get("epoch")
    ex.declare("esgf_nm_epoch_seconds", "gauge",
               "The federation's epoch (Unix time); absent until it is seeded.")
    if isinstance(epoch, (int, float)):
        ex.add("esgf_nm_epoch_seconds", "gauge", "", float(epoch))
    if role == "member":
        _member(ex, st)
        return
    m = st.get("map") or {}
    ex.add("esgf_nm_roster_version", "gauge", "Version of the roster this node holds.",
           int(m.get("roster_version") or 0))
    decision = m.get("decision")
    ex.add("esgf_nm_decision_round", "gauge",
           "Round of the newest decision this node holds (-1: none yet).",
           int(decision[0]) if decision else -1)
    ex.add("esgf_nm_map_info", "gauge",
           "Constant 1, labelled with the digest of this node's map (equal on every "
           "supernode once they agree).", 1, {"digest": str(m.get("digest", ""))[:16]})
    ex.add("esgf_nm_synced", "gauge",
           "1 once this supernode has caught up after a start from an empty store.",
           bool(st.get("synced")))
    leader = st.get("leader")
    ex.add("esgf_nm_leader", "gauge", "1 when this supernode leads the current round.",
           leader is not None and leader == st.get("id"))
    names: Dict[str, str] = {}
    health: Dict[str, int] = dict.fromkeys(SUPERNODE_HEALTH, 0)
    ex.declare("esgf_nm_supernode_up", "gauge",
               "Per supernode: 0 when the current decision has it down (bad or unreachable).")
    ex.declare("esgf_nm_members", "gauge",
               "Members served by each supernode now: kind=own (its own members) or "
               "kind=adopted (members of a down supernode).")
    for sn in st.get("supernodes") or []:
        host = str(sn.get("hostname"))
        names[str(sn.get("id"))] = host
        h = str(sn.get("health", "new"))
        health[h] = health.get(h, 0) + 1
        ex.add("esgf_nm_supernode_up", "gauge", "", h not in DOWN_HEALTH, {"supernode": host})
        ex.add("esgf_nm_members", "gauge", "", int(sn.get("members", 0)),
               {"supernode": host, "kind": "own"})
        ex.add("esgf_nm_members", "gauge", "", int(sn.get("adopted", 0)),
               {"supernode": host, "kind": "adopted"})
    for h, n in health.items():
        ex.add("esgf_nm_supernodes", "gauge", "Supernodes of the roster by health.", n,
               {"health": h})
    links: Dict[str, int] = dict.fromkeys(LINK_STATUS, 0)
    ex.declare("esgf_nm_link_up", "gauge",
               "Per supernode pair (a < b by roster id): 1 when the link is up, else 0.")
    ex.declare("esgf_nm_link_rtt_seconds", "gauge",
               "Last published round trip of each supernode link.")
    for link in st.get("links") or []:
        a = names.get(str(link.get("from")), str(link.get("from")))
        b = names.get(str(link.get("to")), str(link.get("to")))
        status = str(link.get("status", "unverified"))
        links[status] = links.get(status, 0) + 1
        ex.add("esgf_nm_link_up", "gauge", "", status == "up", {"a": a, "b": b})
        rtt = link.get("rtt_ms")
        if isinstance(rtt, (int, float)):
            ex.add("esgf_nm_link_rtt_seconds", "gauge", "", rtt / 1000.0, {"a": a, "b": b})
    for status, n in links.items():
        ex.add("esgf_nm_links", "gauge", "Supernode links by status.", n, {"status": status})
    by_health: Dict[str, int] = dict.fromkeys(MEMBER_HEALTH, 0)
    unserved = 0
    for mem in st.get("members") or []:
        h = str(mem.get("health", "new"))
        by_health[h] = by_health.get(h, 0) + 1
        if mem.get("server") is None:
            unserved += 1
    for h, n in by_health.items():
        ex.add("esgf_nm_members_by_health", "gauge",
               "Members by health, as reported by the node serving each.", n, {"health": h})
    ex.add("esgf_nm_members_unserved", "gauge",
           "Members no live node serves now (their supernode is down and no room was found).",
           unserved)
    stats = st.get("stats") or {}
    ex.add("esgf_nm_decisions_total", "counter",
           "Decisions this supernode took as round leader (each one changed the federation's "
           "state).", int(stats.get("decisions", 0)))
    ex.add("esgf_nm_syncs_total", "counter", "Anti-entropy exchanges this supernode started.",
           int(stats.get("syncs", 0)))
    ex.add("esgf_nm_joins_total", "counter", "Joins this supernode accepted.",
           int(stats.get("joins", 0)))


def _member(ex: Exposition, st: Mapping[str, Any]) -> None:
    ex.add("esgf_nm_roster_version", "gauge", "Version of the roster this node holds.",
           int(st.get("roster_version") or 0))
    ex.add("esgf_nm_member_joined", "gauge", "1 when this member has joined the federation.",
           bool(st.get("joined")))
    server = st.get("server_hostname")
    ex.add("esgf_nm_member_served", "gauge",
           "1 when a node serves this member now (it knows who).",
           bool(st.get("joined")) and server is not None)
    ex.declare("esgf_nm_member_server_info", "gauge",
               "Constant 1, labelled with the node serving this member and its home supernode.")
    if server is not None:
        home = st.get("home")
        roster = {str(s.get("id")): str(s.get("hostname"))
                  for s in (st.get("roster") or {}).get("supernodes", [])}
        ex.add("esgf_nm_member_server_info", "gauge", "", 1,
               {"server": str(server), "home": roster.get(str(home), str(home or ""))})
    ex.add("esgf_nm_decisions_total", "counter",
           "Decisions this node took as round leader (members never lead: 0).", 0)


def _counters(ex: Exposition, st: Mapping[str, Any], tel: TelemetrySnapshot,
              transport: Mapping[str, int], sent_by_kind: Mapping[str, int],
              servers: Iterable[ServerStats]) -> None:
    ex.add("esgf_nm_rounds_total", "counter", "Rounds this agent has started.", tel.rounds)
    ex.declare("esgf_nm_probe_duration_seconds", "histogram",
               "Round trip of successful health probes, per probed node.")
    for peer in sorted(tel.probes):
        ex.histogram("esgf_nm_probe_duration_seconds", "", tel.probes[peer], {"peer": peer})
    ex.declare("esgf_nm_probe_failures_total", "counter",
               "Health probes that got no usable answer in time, per probed node.")
    for peer in sorted(tel.probe_failures):
        ex.add("esgf_nm_probe_failures_total", "counter", "", tel.probe_failures[peer],
               {"peer": peer})
    ex.add("esgf_nm_probes_total", "counter", "Health probes sent (answered or not).",
           int(transport.get("probes", 0)))
    ex.declare("esgf_nm_messages_sent_total", "counter",
               "Protocol messages delivered to other nodes, by kind.")
    for kind in sorted(sent_by_kind):
        ex.add("esgf_nm_messages_sent_total", "counter", "", sent_by_kind[kind], {"kind": kind})
    ex.declare("esgf_nm_messages_received_total", "counter",
               "Well-formed protocol messages received from other nodes, by kind.")
    for kind in sorted(tel.received):
        ex.add("esgf_nm_messages_received_total", "counter", "", tel.received[kind],
               {"kind": kind})
    ex.add("esgf_nm_bytes_sent_total", "counter",
           "Bytes of protocol message bodies this node delivered.",
           int(transport.get("bytes_sent", 0)))
    ex.add("esgf_nm_bytes_received_total", "counter",
           "Bytes of protocol message bodies this node received.", tel.bytes_received)
    agent = (st.get("agent") or {}).get("counters") or {}
    errors: Dict[str, int] = {
        "send_failed": int(transport.get("send_failed", 0)),
        "probe_failed": int(transport.get("probe_failed", 0)),
        "refused": int(agent.get("refused", 0)),
        "internal": int(agent.get("errors", 0)),
        "loop_overrun": int(agent.get("rounds_overrun", 0)),
        "tls_handshake": 0,
        "connections_refused": 0,
    }
    requests = 0
    active = 0
    for s in servers:
        errors["tls_handshake"] += s.handshake_failures
        errors["connections_refused"] += s.refused
        requests += s.requests
        active += s.active
    for kind, n in tel.errors.items():
        errors[kind] = errors.get(kind, 0) + n
    for kind in sorted(errors):
        ex.add("esgf_nm_errors_total", "counter",
               "Errors by kind: undelivered messages, failed probes, refused input, bad "
               "requests, internal errors, loop overruns, TLS handshakes, dropped events.",
               errors[kind], {"kind": kind})
    ex.add("esgf_nm_http_requests_total", "counter",
           "Requests served by this node's HTTPS server.", requests)
    ex.add("esgf_nm_http_connections", "gauge", "Open connections to the HTTPS server.", active)
    metrics = st.get("metrics") or {}
    enabled = bool(metrics.get("enabled"))
    ex.add("esgf_nm_database_metrics_enabled", "gauge",
           "1 when this node collects metrics from its ESGF database.", enabled)
    ex.declare("esgf_nm_database_up", "gauge",
               "1 when the last collection from the node's database succeeded; absent when "
               "collection is disabled.")
    if enabled:
        ex.add("esgf_nm_database_up", "gauge", "", bool(metrics.get("available")))
    props = st.get("properties") or {}
    for status in ("GOOD", "ISSUE", "LAPSED"):
        ex.add("esgf_nm_properties_status", "gauge",
               "1 for the status of this node's ESGF properties (GOOD, ISSUE, LAPSED).",
               props.get("status") == status, {"status": status})


def _process(ex: Exposition, started_at: Optional[float]) -> None:
    t = os.times()
    ex.add("process_cpu_seconds_total", "counter", "Total user and system CPU time spent.",
           t.user + t.system)
    if started_at is not None:
        ex.add("process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.", started_at)
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            fields = f.read().split()
        page = os.sysconf("SC_PAGE_SIZE")
        ex.add("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
               int(fields[0]) * page)
        ex.add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
               int(fields[1]) * page)
    except (OSError, ValueError, IndexError):
        pass  # not Linux: leave the /proc metrics out
    with contextlib.suppress(OSError):
        ex.add("process_open_fds", "gauge", "Number of open file descriptors.",
               len(os.listdir("/proc/self/fd")))


def render_agent(agent: Agent) -> str:
    """``/metrics`` of a running agent."""
    stats = [s.stats() for s in agent.servers if getattr(s, "tls", False)]
    return render(agent.status(), agent.telemetry.snapshot(),
                  transport=dict(agent.transport.counters),
                  sent_by_kind=agent.transport.sent_by_kind(), servers=stats,
                  started_at=agent.started_at)


__all__ = ["CONTENT_TYPE", "Exposition", "Histogram", "Telemetry", "render", "render_agent"]
