"""The agent process: one loop that owns the core and the store, servers and workers around it.

Threads:

- the **loop** (``run``): the only thread that touches the core and writes the store. It takes
  events from a bounded queue, feeds ticks on a fixed schedule (``next_tick += tick_s``, with a
  warning when it overruns), executes effects in order (persist first, then sends), and
  publishes an immutable status snapshot;
- the **HTTPS server** (node-to-node and public endpoints) and the **admin server** (Unix
  socket): handlers parse and check input, then submit an event and wait for its answer;
- a **worker pool** for probes, message delivery and fetches; results come back as events.

Signal handlers only set flags (SIGTERM: stop; SIGHUP: reload what can be reloaded).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Union

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import CoreError, MapFormatError, ProtocolError
from esgf_nodemgr.core.events import (
    AdminRoster,
    Answer,
    Effect,
    Event,
    Note,
    Persist,
    Probe,
    ProbeDone,
    Received,
    Send,
    Tick,
)
from esgf_nodemgr.core.member import MemberCore
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.runtime import esgf_files, registration
from esgf_nodemgr.runtime.config import AgentConfig
from esgf_nodemgr.runtime.logonce import FailureLog
from esgf_nodemgr.runtime.metrics_pg import MetricsCollector, MetricsSnapshot, PgSettings
from esgf_nodemgr.runtime.prom import Telemetry
from esgf_nodemgr.runtime.status import build_status
from esgf_nodemgr.runtime.transport import Transport, TransportError
from esgf_nodemgr.store.db import JournalEntry, Store, StoreError
from esgf_nodemgr.store.files import atomic_write

logger = logging.getLogger(__name__)

#: Bound on queued events; a full queue answers 503 rather than growing without limit.
QUEUE_LIMIT = 10_000
#: How long an HTTP handler waits for the loop to answer its event.
ANSWER_TIMEOUT_S = 10.0
#: Minimum time between two status snapshots while nothing changes.
STATUS_EVERY_S = 0.5


class AgentError(Exception):
    """The agent cannot start or continue (bad initial map, unusable store...)."""


class Busy(Exception):
    """The loop's queue is full: the caller should answer 503."""


@dataclass
class _Item:
    event: Any
    done: Optional[concurrent.futures.Future[List[Effect]]] = None


@dataclass(frozen=True)
class PropsReceived:
    """A worker fetched another node's properties (stored by the loop)."""

    hostname: str
    props: Dict[str, Any]
    props_hash: str
    now: float
    #: The supernode that relayed them (None: fetched from the node itself).
    via: Optional[str] = None


@dataclass(frozen=True)
class BundleSeen:
    """Every node of a peer's properties bundle has been submitted."""

    peer: str
    bundle: str


@dataclass(frozen=True)
class RegistrationFetched:
    """A member fetched registration.xml from its server."""

    data: bytes
    now: float


Internal = Union[PropsReceived, RegistrationFetched, BundleSeen]


def props_hash(doc: Dict[str, Any]) -> str:
    """Fingerprint of a node-props document, blind to *when* it was read or collected.

    Peers refetch properties when this changes, so it must change only with content.
    """
    stable = dict(doc)
    props = stable.get("properties")
    if isinstance(props, dict):
        stable["properties"] = {k: v for k, v in props.items() if k != "read_at"}
    metrics = stable.get("metrics")
    if isinstance(metrics, dict):
        stable["metrics"] = {k: v for k, v in metrics.items() if k != "collected_at"}
    return hashlib.sha256(nm.canonical_json(stable).encode()).hexdigest()[:16]


class Agent:
    """One node's agent. ``start()`` binds the servers; ``run()`` runs the loop."""

    def __init__(self, cfg: AgentConfig, *, clock: Callable[[], float] = time.time,
                 tls_settings: Any = None, server_tls: Any = None) -> None:
        self.cfg = cfg
        self.clock = clock
        Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
        self.store = Store.open(cfg.db_path)
        self.core: Union[SupernodeCore, MemberCore] = self._load_core()
        self.transport = Transport(cfg.hostname, tls_settings,
                                   scheme="https" if tls_settings is not None else "http")
        self._server_tls = server_tls
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_LIMIT)
        #: Failures to reach a peer are logged once per outage, not once per attempt.
        self._failures = FailureLog(logger)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=cfg.workers,
                                                           thread_name_prefix="esgf-nm-io")
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._status: Dict[str, Any] = {}
        self._status_at = 0.0
        self._status_digest = ""
        self._props: Optional[esgf_files.NodeProperties] = None
        self._props_doc: Dict[str, Any] = {}
        self._props_hash = ""
        self._props_at = -1e18
        self._known_props: Dict[str, str] = {
            h: str(doc.get("_hash", "")) for h, (doc, _t) in self.store.properties().items()}
        self._peer_bundles: Dict[str, str] = {}
        self._bundle_hash = ""
        self._registration: bytes = b""
        self._registration_dirty = True
        self._registration_fetch_at = 0.0
        self._legacy_digest = ""
        self._metrics: Optional[MetricsSnapshot] = None
        self._metrics_at = -1e18
        self._metrics_busy = False
        self._collector: Optional[MetricsCollector] = None
        self.counters: Dict[str, int] = {"events": 0, "rounds_overrun": 0, "errors": 0,
                                         "refused": 0}
        #: Counters and probe histograms for ``/metrics`` (updated by workers and handlers).
        self.telemetry = Telemetry()
        self.started_at = clock()
        self.servers: List[Any] = []
        self._refresh_properties(self.clock())
        self._publish(self.clock(), force=True)

    # -- state -------------------------------------------------------------------------------
    def _load_core(self) -> Union[SupernodeCore, MemberCore]:
        cfg = self.cfg
        if cfg.role == "member":
            saved = self.store.get_meta("member")
            roster = None
            if saved is None and cfg.initial_map:
                roster = self._read_initial_map().roster
            return MemberCore(cfg.hostname, cfg.advertise, cfg.port, cfg.core, roster=roster,
                              saved=saved if isinstance(saved, dict) else None)
        sections = self.store.load_sections()
        if sections:
            try:
                nodemap = nm.from_sections(sections)
            except MapFormatError as exc:
                raise AgentError(f"the stored map in {cfg.db_path} is invalid: {exc}") from exc
            return SupernodeCore(cfg.hostname, cfg.core, nodemap,
                                 synced=bool(self.store.get_meta("synced", False)))
        nodemap = self._read_initial_map() if cfg.initial_map else nm.NodeMap()
        # The initial map counts as acknowledged state: store it before anything runs.
        self.store.commit(nm.sections(nodemap), journal=[JournalEntry(
            section="roster", version=[nodemap.roster.version], origin=cfg.hostname,
            summary=f"initial map from {cfg.initial_map}", at=self.clock())])
        single = len(nodemap.roster.supernodes) <= 1
        return SupernodeCore(cfg.hostname, cfg.core, nodemap, synced=single)

    def _read_initial_map(self) -> nm.NodeMap:
        path = self.cfg.initial_map or ""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AgentError(f"cannot read the initial map {path}: {exc}") from exc
        try:
            return _load_any_map(doc)
        except MapFormatError as exc:
            raise AgentError(f"the initial map {path} is invalid: {exc}") from exc

    @property
    def role(self) -> str:
        return self.cfg.role

    def status(self) -> Dict[str, Any]:
        """The last published status snapshot (safe to read from any thread)."""
        return self._status

    # -- submitting events ---------------------------------------------------------------------
    def submit(self, event: Any, wait: bool = True, timeout: float = ANSWER_TIMEOUT_S
               ) -> Optional[List[Effect]]:
        """Hand an event to the loop; with ``wait``, return the effects it produced."""
        done: Optional[concurrent.futures.Future[List[Effect]]] = (
            concurrent.futures.Future() if wait else None)
        try:
            self._queue.put_nowait(_Item(event, done))
        except queue.Full as exc:
            raise Busy("the agent is overloaded; try again") from exc
        if done is None:
            return None
        return done.result(timeout=timeout)

    # -- the loop ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def on_term(_sig: int, _frame: Optional[FrameType]) -> None:
            self._stop.set()

        def on_hup(_sig: int, _frame: Optional[FrameType]) -> None:
            self._reload.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    def run(self) -> None:
        """Run the loop until ``request_stop`` (or SIGTERM); then stop everything."""
        tick_s = self.cfg.tick_s
        next_tick = self.clock()
        try:
            while not self._stop.is_set():
                now = self.clock()
                try:
                    item = self._queue.get(timeout=max(0.0, min(next_tick - now, tick_s)))
                except queue.Empty:
                    item = None
                if item is not None:
                    self._process(item)
                now = self.clock()
                if now >= next_tick:
                    self._process(_Item(Tick(now)))
                    self.telemetry.note_tick(self.core, now)
                    self._periodic(now)
                    next_tick += tick_s
                    if next_tick < now - tick_s:
                        self.counters["rounds_overrun"] += 1
                        logger.warning("loop overran by %.2f s; skipping ticks",
                                       now - next_tick)
                        next_tick = now + tick_s
                if self._reload.is_set():
                    self._reload.clear()
                    self._on_reload(now)
        finally:
            self.shutdown()

    def _process(self, item: _Item) -> None:
        self.counters["events"] += 1
        event = item.event
        try:
            if isinstance(event, (PropsReceived, RegistrationFetched, BundleSeen)):
                effects = self._internal(event)
            else:
                effects = self.core.handle(event)
                self._execute(effects)
        except ProtocolError as exc:
            self.counters["refused"] += 1
            effects = [Answer("refused", str(exc))]
        except StoreError:
            # Without a working store nothing can be acknowledged: stop, let the service
            # manager restart us from the last durable state.
            logger.exception("the store failed; stopping the agent")
            self._stop.set()
            effects = [Answer("error", "the agent's store failed; it is stopping")]
        except CoreError as exc:
            self.counters["errors"] += 1
            logger.exception("core error while handling %s", type(event).__name__)
            effects = [Answer("error", f"internal error: {type(exc).__name__}")]
        if item.done is not None and not item.done.done():
            item.done.set_result(effects)
        if not isinstance(event, Tick):
            self._publish(self.clock())

    def _execute(self, effects: List[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Persist):
                self._persist(eff)
            elif isinstance(eff, Send):
                self._pool.submit(self._do_send, eff)
            elif isinstance(eff, Probe):
                self._pool.submit(self._do_probe, eff)
            elif isinstance(eff, Note):
                logger.log(logging.WARNING if eff.level == "warning" else logging.INFO, "%s",
                           eff.text)

    def _persist(self, eff: Persist) -> None:
        now = self.clock()
        meta: Dict[str, Any] = dict(eff.meta)
        if isinstance(self.core, SupernodeCore):
            meta["synced"] = self.core.synced
        journal = [JournalEntry(section="map", version=[self.core.digest[:12]],
                                origin=self.cfg.hostname, summary=line[:1000], at=now)
                   for line in eff.journal]
        self.store.commit(eff.sections, journal=journal, meta=meta)
        self._registration_dirty = True
        self._update_bundle()

    # -- workers -------------------------------------------------------------------------------
    def _do_send(self, eff: Send) -> None:
        try:
            self.transport.send(eff.address, eff.port, eff.message)
        except TransportError as exc:
            self._failures.failed(("send", eff.to), "messages to %s not delivered: %s (%s)",
                                  eff.to, exc, eff.message.kind)
            return
        self._failures.succeeded(("send", eff.to), "messages to %s delivered again", eff.to)

    def _do_probe(self, eff: Probe) -> None:
        try:
            answer = self.transport.probe(eff.address, eff.port, eff.round, eff.timeout_s)
        except TransportError as exc:
            logger.debug("probe of %s failed: %s", eff.target, exc)
            self.telemetry.probe_failed(eff.target)
            self._submit_quiet(ProbeDone(target=eff.target, round=eff.round, rtt_ms=None,
                                         now=self.clock()))
            return
        self.telemetry.probe_ok(eff.target, answer.rtt_ms / 1000.0)
        self._submit_quiet(ProbeDone(target=eff.target, round=eff.round, rtt_ms=answer.rtt_ms,
                                     props=answer.props, digest=answer.digest,
                                     now=self.clock()))
        if not isinstance(self.core, SupernodeCore):
            # A member probes supernodes only to choose where to join: it keeps no one's
            # properties (its registration.xml comes whole from its server).
            return
        if answer.props_hash and self._known_props.get(eff.target) != answer.props_hash:
            self._fetch_props(eff.target, eff.address, eff.port)
        if answer.bundle and self._peer_bundles.get(eff.target) != answer.bundle:
            self._fetch_bundle(eff.target, eff.address, eff.port, answer.bundle)

    def _fetch_bundle(self, peer: str, address: str, port: int, bundle: str) -> None:
        """Properties of every node a peer supernode serves (for registration.xml)."""
        try:
            doc = self.transport.get_json(address, port, "/esgf-nm/v1/properties")
        except TransportError as exc:
            self._failures.failed(("bundle", peer), "properties bundle of %s not fetched: %s",
                                  peer, exc)
            return
        self._failures.succeeded(("bundle", peer), "properties bundle of %s fetched again", peer)
        nodes = doc.get("nodes")
        if not isinstance(nodes, dict):
            logger.warning("properties bundle of %s is malformed", peer)
            return
        now = self.clock()
        for hostname, props in sorted(nodes.items()):
            if isinstance(props, dict) and isinstance(hostname, str):
                self._submit_quiet(PropsReceived(hostname=hostname, props=props,
                                                 props_hash=props_hash(props), now=now,
                                                 via=peer))
        self._submit_quiet(BundleSeen(peer=peer, bundle=bundle))

    def _fetch_props(self, hostname: str, address: str, port: int) -> None:
        try:
            doc = self.transport.get_json(address, port, "/esgf-nm/node-props.json")
        except TransportError as exc:
            self._failures.failed(("props", hostname), "properties of %s not fetched: %s",
                                  hostname, exc)
            return
        self._failures.succeeded(("props", hostname), "properties of %s fetched again", hostname)
        self._submit_quiet(PropsReceived(hostname=hostname, props=doc,
                                         props_hash=props_hash(doc), now=self.clock()))

    def _submit_quiet(self, event: Any) -> None:
        try:
            self.submit(event, wait=False)
        except Busy:
            self.telemetry.error("events_dropped")
            logger.warning("event queue full; dropped %s", type(event).__name__)

    # -- agent-level (non-protocol) state ------------------------------------------------------
    def _internal(self, event: Internal) -> List[Effect]:
        if isinstance(event, BundleSeen):
            self._peer_bundles[event.peer] = event.bundle
            return []
        if isinstance(event, PropsReceived):
            if event.hostname == self.cfg.hostname:
                return []
            if event.via is not None:
                key = ("relay", event.via, event.hostname)
                if not self._relay_allowed(event.via, event.hostname):
                    # Right after a decision moves a member, a peer's bundle may still hold
                    # it: normal, and logged once, not on every bundle.
                    self._failures.failed(key, "%s relayed properties of %s, which it does not "
                                          "serve in this node's map; ignored", event.via,
                                          event.hostname)
                    return []
                self._failures.succeeded(key)
            if self._known_props.get(event.hostname) == event.props_hash:
                return []
            try:
                props = esgf_files.NodeProperties.from_dict(event.props.get("properties",
                                                                            event.props))
            except esgf_files.NodePropertiesFormatError as exc:
                logger.warning("properties of %s rejected: %s", event.hostname, exc)
                return []
            if props.hostname != event.hostname:
                logger.warning("properties fetched from %s name %s; ignored", event.hostname,
                               props.hostname)
                return []
            doc = dict(event.props)
            doc["_hash"] = event.props_hash
            self.store.put_properties(event.hostname, doc, event.now)
            self._known_props[event.hostname] = event.props_hash
            self._registration_dirty = True
            self._update_bundle()
        else:
            self._registration = event.data
            atomic_write(self.cfg.registration_xml, event.data)
        return []

    def _refresh_properties(self, now: float) -> None:
        cfg = self.cfg
        props = esgf_files.read_node_properties(
            cfg.hostname, now, properties_path=Path(cfg.esgf_properties),
            config_type_path=Path(cfg.config_type),
            agent_properties={"esgf.host": cfg.hostname, "node.manager.port": str(cfg.port)})
        self._props = props
        doc = {"properties": props.to_dict(),
               "metrics": self._metrics.to_dict() if self._metrics else None}
        new_hash = props_hash(doc)
        self._props_doc = doc
        if new_hash != self._props_hash:
            self._props_hash = new_hash
            self._registration_dirty = True
            self._update_bundle()
        self._props_at = now

    def _relay_allowed(self, peer: str, hostname: str) -> bool:
        """A peer may relay its own properties and those of the members it serves."""
        core = self.core
        if not isinstance(core, SupernodeCore):
            return False
        if peer == hostname:
            return True
        from esgf_nodemgr.core import view

        sn = core.map.roster.by_hostname(peer)
        return sn is not None and view.serving_node(core.map, hostname) == sn.id

    def served_hostnames(self) -> List[str]:
        core = self.core
        if not isinstance(core, SupernodeCore):
            return []
        from esgf_nodemgr.core import view

        me = core.my_id
        return sorted(v.hostname for v in view.members(core.map) if v.server == me)

    def _update_bundle(self) -> None:
        pairs = [(self.cfg.hostname, self._props_hash)]
        pairs += [(h, self._known_props.get(h, "")) for h in self.served_hostnames()]
        self._bundle_hash = props_hash({"b": pairs})

    def props_bundle(self) -> Dict[str, Any]:
        """``/esgf-nm/v1/properties``: this node's properties and its members' (if known)."""
        nodes: Dict[str, Any] = {self.cfg.hostname: self._props_doc}
        stored = self.store.properties() if self.served_hostnames() else {}
        for h in self.served_hostnames():
            if h in stored:
                doc = {k: v for k, v in stored[h][0].items() if k != "_hash"}
                nodes[h] = doc
        return {"nodes": nodes}

    def props_answer(self) -> Dict[str, Any]:
        """What ``/esgf-nm/node-props.json`` serves (read by other nodes and dashboards)."""
        return self._props_doc

    def props_status(self) -> str:
        return self._props.status.value if self._props else "ISSUE"

    def probe_answer(self) -> Dict[str, Any]:
        return {"hostname": self.cfg.hostname, "digest": self.core.digest,
                "props": self.props_status(), "props_hash": self._props_hash,
                "bundle": self._bundle_hash}

    def registration_xml(self) -> bytes:
        return self._registration

    def metrics_answer(self) -> Dict[str, Any]:
        if self._metrics is None:
            return {"available": False, "reason": "metrics collection is disabled"
                    if not self.cfg.metrics_enabled else "not collected yet"}
        return self._metrics.to_dict()

    def _periodic(self, now: float) -> None:
        cfg = self.cfg
        if now - self._props_at >= cfg.properties_refresh_s:
            self._refresh_properties(now)
        if cfg.metrics_enabled and not self._metrics_busy and (
                now - self._metrics_at >= cfg.metrics_interval_s):
            self._metrics_busy = True
            self._metrics_at = now
            self._pool.submit(self._collect_metrics, now)
        if isinstance(self.core, SupernodeCore):
            if self._registration_dirty:
                self._write_registration(now)
            self._write_legacy_map()
        elif now - self._registration_fetch_at >= cfg.properties_refresh_s:
            self._registration_fetch_at = now
            self._pool.submit(self._fetch_registration)
        if now - self._status_at >= STATUS_EVERY_S:
            self._publish(now)

    def _collect_metrics(self, now: float) -> None:
        try:
            if self._collector is None:
                db = self.cfg.db
                password = Path(db.password_file) if db.password_file else None
                settings = PgSettings(host=db.host, port=db.port, dbname=db.dbname,
                                      user=db.user, password_file=password)
                types = self._props.node_types if self._props else ()
                self._collector = MetricsCollector(settings, list(types))
            self._metrics = self._collector.collect(now)
        finally:
            self._metrics_busy = False

    def _write_registration(self, now: float) -> None:
        core = self.core
        assert isinstance(core, SupernodeCore)
        nodes: List[esgf_files.NodeProperties] = []
        metrics: Dict[str, MetricsSnapshot] = {}
        if self._props is not None:
            nodes.append(self._props)
            if self._metrics is not None:
                metrics[self._props.hostname] = self._metrics
        known = {s.hostname for s in core.map.roster.supernodes}
        known |= {m.hostname for _sid, m in core.map.all_members()}
        for hostname, (doc, _at) in self.store.properties().items():
            if hostname not in known or hostname == self.cfg.hostname:
                continue
            try:
                props = esgf_files.NodeProperties.from_dict(doc.get("properties", doc))
            except esgf_files.NodePropertiesFormatError as exc:
                logger.warning("stored properties of %s unusable: %s", hostname, exc)
                continue
            nodes.append(props.evaluate(now, self.cfg.properties_max_age_s))
            m = doc.get("metrics")
            if isinstance(m, dict):
                try:
                    metrics[hostname] = MetricsSnapshot.from_dict(m)
                except ValueError as exc:
                    logger.info("metrics of %s unusable: %s", hostname, exc)
        try:
            data = registration.build_registration(nodes, now, metrics=metrics)
        except registration.RegistrationError as exc:
            logger.warning("registration.xml not written: %s", exc)
            return
        if data != self._registration:
            atomic_write(self.cfg.registration_xml, data)
            self._registration = data
        self._registration_dirty = False

    def _write_legacy_map(self) -> None:
        path = self.cfg.legacy_map
        core = self.core
        if not path or not isinstance(core, SupernodeCore):
            return
        digest = core.digest
        if digest == self._legacy_digest:
            return
        from esgf_nodemgr.core import legacy

        doc = legacy.to_legacy(core.map)
        atomic_write(path, (json.dumps(doc, indent=4, sort_keys=True) + "\n").encode())
        self._legacy_digest = digest

    def _fetch_registration(self) -> None:
        core = self.core
        if not isinstance(core, MemberCore) or core.server is None:
            return
        target = core.roster.by_id(core.server)
        if target is None:
            return
        try:
            data = self.transport.get_bytes(target.address, target.port,
                                            "/esgf-nm/registration.xml")
        except TransportError as exc:
            self._failures.failed(("registration", target.hostname),
                                  "registration.xml not fetched from %s: %s", target.hostname, exc)
            return
        self._failures.succeeded(("registration", target.hostname),
                                 "registration.xml fetched from %s again", target.hostname)
        self._submit_quiet(RegistrationFetched(data=data, now=self.clock()))

    def _publish(self, now: float, force: bool = False) -> None:
        digest = self.core.digest
        if not force and digest == self._status_digest and now - self._status_at < \
                STATUS_EVERY_S:
            return
        extra = {
            "properties": {"status": self.props_status(),
                           "reason": self._props.reason if self._props else ""},
            "metrics": {"enabled": self.cfg.metrics_enabled,
                        "available": bool(self._metrics and self._metrics.available)},
            "agent": {"pid": os.getpid(), "started_at": self.started_at,
                      "counters": dict(self.counters),
                      "transport": dict(self.transport.counters)},
        }
        self._status = build_status(self.core, now, extra)
        self._status_at = now
        self._status_digest = digest

    def _on_reload(self, now: float) -> None:
        logger.info("SIGHUP: re-reading the node's ESGF files")
        self._refresh_properties(now)
        self._registration_dirty = True

    # -- lifecycle ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        for server in self.servers:
            server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def _load_any_map(doc: Any) -> nm.NodeMap:
    """Our format or the prototype's (the legacy module decides which)."""
    if isinstance(doc, dict) and doc.get("format") == nm.FORMAT:
        return nm.map_from_json(doc)
    from esgf_nodemgr.core import legacy

    return legacy.load_any(doc)


def install_roster_event(doc: Dict[str, Any], now: float) -> Event:
    """The admin event for a roster document (``{"roster": ...}`` or a whole map)."""
    if "roster" in doc and "format" not in doc:
        return AdminRoster(roster=doc["roster"], now=now)
    return AdminRoster(roster=nm.roster_to_json(_load_any_map(doc).roster), now=now)


__all__ = ["Agent", "AgentError", "Busy", "Received", "install_roster_event"]
