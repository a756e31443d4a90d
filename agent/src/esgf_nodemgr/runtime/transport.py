"""Node-to-node HTTP client: probes and message delivery over keep-alive mutual TLS.

One ``requests.Session`` shared by the worker threads, keeping a warm connection per peer
between rounds. Every call has a timeout and a bounded number of retries;
nothing here touches the agent's state: results go back to the loop as events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import requests
import requests.adapters

from esgf_nodemgr.core import messages as msgs
from esgf_nodemgr.runtime.tls import ClientSettings

logger = logging.getLogger(__name__)

MESSAGE_PATH = "/esgf-nm/v1/message"
PROBE_PATH = "/esgf-nm/v1/probe"
#: Retries of a message delivery after a connection error (not after an HTTP answer).
SEND_RETRIES = 1
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 1 << 20
#: Peers kept in the connection pool, and connections kept per peer.
POOLS = 256
PER_PEER_CONNECTIONS = 4


class TransportError(Exception):
    """A peer could not be reached or answered with something unusable."""


@dataclass(frozen=True)
class ProbeAnswer:
    rtt_ms: float
    digest: str
    props: str
    props_hash: str
    #: Hash of the properties of every node the peer serves (see ``Agent.props_bundle``).
    bundle: str = ""


class Transport:
    """HTTPS client for one node (its identity is ``sender``)."""

    def __init__(self, sender: str, settings: Optional[ClientSettings], *,
                 scheme: str = "https") -> None:
        self.sender = sender
        self._settings = settings
        self._scheme = scheme
        self._shared: Optional[requests.Session] = None
        #: ``sent_ignored``: delivered, but the receiver already held it (409 "ignored").
        self.counters: Dict[str, int] = {"sent": 0, "sent_ignored": 0, "send_failed": 0,
                                         "probes": 0, "probe_failed": 0, "bytes_sent": 0}
        self._sent_kinds: Dict[str, int] = {}
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        # One session shared by the worker threads: its connection pool (urllib3, thread-safe)
        # keeps one warm connection per peer instead of one per thread, so TLS handshakes
        # happen once per peer rather than whenever an idle per-thread connection expired.
        # Nothing here mutates session state (no cookies, no auth) after creation.
        with self._lock:
            if self._shared is None:
                session = requests.Session()
                adapter = requests.adapters.HTTPAdapter(pool_connections=POOLS,
                                                        pool_maxsize=PER_PEER_CONNECTIONS)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                if self._settings is not None:
                    self._settings.apply(session)
                else:
                    session.trust_env = False
                self._shared = session
            return self._shared

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def sent_by_kind(self) -> Dict[str, int]:
        """Messages delivered so far, by message kind (for ``/metrics``)."""
        with self._lock:
            return dict(self._sent_kinds)

    def url(self, address: str, port: int, path: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"{self._scheme}://{host}:{port}{path}"

    def send(self, address: str, port: int, message: msgs.Message) -> Dict[str, Any]:
        """Deliver ``message``; return the receiver's answer (``{"status", "detail"}``)."""
        body = json.dumps({"sender": self.sender, "message": msgs.message_to_json(message)},
                          separators=(",", ":")).encode()
        url = self.url(address, port, MESSAGE_PATH)
        last: Optional[Exception] = None
        for _attempt in range(1 + SEND_RETRIES):
            try:
                resp = self._session().post(url, data=body, timeout=(CONNECT_TIMEOUT_S,
                                                                      READ_TIMEOUT_S),
                                            headers={"Content-Type": "application/json"})
            except requests.RequestException as exc:
                last = exc
                continue
            self._count("sent")
            self._count("bytes_sent", len(body))
            with self._lock:
                self._sent_kinds[message.kind] = self._sent_kinds.get(message.kind, 0) + 1
            answer = _json_answer(resp)
            if resp.status_code == 409 and answer.get("status") == "ignored":
                # Delivered; the receiver already held it (or newer): a duplicate copy or a
                # push that crossed a sync. Not a failure.
                self._count("sent_ignored")
                return answer
            if resp.status_code >= 400:
                raise TransportError(f"{url}: HTTP {resp.status_code}: "
                                     f"{answer.get('error') or answer.get('detail')}")
            return answer
        self._count("send_failed")
        raise TransportError(f"{url}: {type(last).__name__}: {last}")

    def probe(self, address: str, port: int, r: int, timeout_s: float) -> ProbeAnswer:
        """Health-check a peer once; raise ``TransportError`` when it does not answer in time."""
        url = self.url(address, port, PROBE_PATH)
        started = time.monotonic()
        self._count("probes")
        try:
            resp = self._session().get(url, params={"from": self.sender, "round": str(r)},
                                       timeout=(timeout_s, timeout_s))
        except requests.RequestException as exc:
            self._count("probe_failed")
            raise TransportError(f"{url}: {type(exc).__name__}") from exc
        rtt_ms = (time.monotonic() - started) * 1000.0
        if resp.status_code != 200:
            self._count("probe_failed")
            raise TransportError(f"{url}: HTTP {resp.status_code}")
        answer = _json_answer(resp)
        return ProbeAnswer(rtt_ms=rtt_ms, digest=str(answer.get("digest", "")),
                           props=str(answer.get("props", "GOOD")),
                           props_hash=str(answer.get("props_hash", "")),
                           bundle=str(answer.get("bundle", "")))

    def get_json(self, address: str, port: int, path: str, timeout_s: float = READ_TIMEOUT_S
                 ) -> Dict[str, Any]:
        url = self.url(address, port, path)
        try:
            resp = self._session().get(url, timeout=(CONNECT_TIMEOUT_S, timeout_s))
        except requests.RequestException as exc:
            raise TransportError(f"{url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise TransportError(f"{url}: HTTP {resp.status_code}")
        return _json_answer(resp)

    def get_bytes(self, address: str, port: int, path: str, limit: int = 8 << 20) -> bytes:
        url = self.url(address, port, path)
        try:
            resp = self._session().get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except requests.RequestException as exc:
            raise TransportError(f"{url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise TransportError(f"{url}: HTTP {resp.status_code}")
        if len(resp.content) > limit:
            raise TransportError(f"{url}: answer larger than {limit} bytes")
        return resp.content


def _json_answer(resp: requests.Response) -> Dict[str, Any]:
    if len(resp.content) > MAX_ANSWER_BYTES:
        raise TransportError(f"{resp.url}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        value = resp.json()
    except ValueError as exc:
        raise TransportError(f"{resp.url}: answer is not JSON") from exc
    if not isinstance(value, dict):
        raise TransportError(f"{resp.url}: answer is not a JSON object")
    return value
