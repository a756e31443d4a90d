"""A small HTTP/1.1 server for the agent: node-to-node HTTPS with mutual TLS, and the local
admin API on a Unix socket.

Design points (after Patroni's REST API, with its weak spots fixed):

- One accept thread that only accepts; the TLS handshake happens in the per-connection worker
  thread, so a client that connects and never speaks cannot stall anyone else.
- At most ``max_connections`` workers; a connection beyond that is refused at once (plain HTTP
  gets a 503, TLS is closed because a plain-text answer would be garbage to a TLS client).
- Routes are exact ``(method, path)`` pairs with an ``auth`` level:
  ``public`` (anyone), ``node`` (a verified client certificate, or the local admin socket) and
  ``admin`` (the local admin socket only).
- Bodies need a ``Content-Length`` and are bounded; over the bound the server answers 413
  without reading the body. Chunked request bodies are refused (411), which also closes the
  door on request-smuggling ambiguities.
- Errors are JSON ``{"error": message}``; an unexpected exception becomes a generic 500 and is
  logged with its traceback, never sent to the client.

Handlers must not mutate agent state themselves: they hand an event to the agent's loop and
wait for its answer (see DESIGN.md §3).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import select
import socket
import ssl
import stat
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from esgf_nodemgr.runtime.logonce import FailureLog
from esgf_nodemgr.runtime.tls import peer_identity

logger = logging.getLogger(__name__)

#: The identity given to every caller on the local admin Unix socket.
LOCAL_ADMIN = "local-admin"

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_MAX_BODY = 1024 * 1024
#: Idle/read/write timeout of a connection (also bounds how long keep-alive stays open).
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_HANDSHAKE_TIMEOUT_S = 5.0
#: Limits on the request target and query, on top of the stdlib's header limits.
MAX_TARGET_CHARS = 4096
MAX_QUERY_FIELDS = 64
LISTEN_BACKLOG = 128
#: How long ``stop()`` waits for busy workers before giving up on them (they are daemons).
STOP_GRACE_S = 1.0

AUTH_LEVELS = ("public", "node", "admin")
_BODYLESS_STATUSES = (204, 304)


class ServerError(Exception):
    """The server could not be set up (bad route table, address in use, socket path taken)."""


class HTTPError(Exception):
    """Raised by a route handler to answer with ``status`` and JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        """``status`` must be a 4xx or 5xx code; ``message`` is shown to the client."""
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status}")
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """One parsed request, as handed to a route handler.

    ``headers`` has lower-cased names (repeated headers are joined with ", "); ``query`` has
    unique keys (a repeated key is refused with 400 before the handler runs); ``peer`` is the
    verified identity of the caller (certificate name, ``LOCAL_ADMIN``) or None.
    """

    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    peer: Optional[str]
    client_address: str

    def json(self) -> Any:
        """Parse the body as strict JSON or raise ``HTTPError(400/415)`` naming the problem.

        Strict means: Content-Type application/json, UTF-8, no duplicate object keys, no
        NaN/Infinity.
        """
        ctype = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise HTTPError(415, f"expected Content-Type application/json, got {ctype or 'none'}")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, f"malformed JSON body: not UTF-8 at byte {exc.start}") from exc
        try:
            return json.loads(
                text, object_pairs_hook=_unique_object, parse_constant=_reject_constant
            )
        except json.JSONDecodeError as exc:
            raise HTTPError(
                400, f"malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
        except _StrictJSONError as exc:
            raise HTTPError(400, f"malformed JSON body: {exc}") from exc


class _StrictJSONError(ValueError):
    pass


def _unique_object(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _StrictJSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _StrictJSONError(f"{name} is not valid JSON")


@dataclass(frozen=True)
class Response:
    """What a handler returns. Use :meth:`Response.json` for JSON bodies."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Tuple[Tuple[str, str], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        """A JSON response; the payload must be JSON-serialisable."""
        body = json.dumps(payload, sort_keys=True, allow_nan=False).encode("utf-8")
        return cls(status=status, body=body)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """Bind ``method path`` (exact match) to ``handler`` with an ``auth`` level.

    ``max_body`` overrides the server's body limit for this route.
    """

    method: str
    path: str
    handler: Handler
    auth: str = "node"
    max_body: Optional[int] = None

    def __post_init__(self) -> None:
        if self.auth not in AUTH_LEVELS:
            raise ServerError(f"route {self.method} {self.path}: auth must be one of {AUTH_LEVELS}")
        if not self.path.startswith("/"):
            raise ServerError(f"route path must start with '/': {self.path!r}")
        if self.method != self.method.upper() or not self.method.isalpha():
            raise ServerError(f"route method must be an upper-case token: {self.method!r}")


def require_sender(request: Request, claimed: str) -> str:
    """Check that the sender a request claims is the identity its certificate proves.

    Returns the identity. Raises ``HTTPError(401)`` without a verified identity and
    ``HTTPError(403)`` on a mismatch, which is logged at WARNING as a spoofing attempt.
    """
    if request.peer is None:
        raise HTTPError(401, "a client certificate from the federation CA is required")
    if not isinstance(claimed, str) or claimed.lower() != request.peer:
        logger.warning(
            "refused spoofed sender %r on %s %s: certificate identity is %r (from %s)",
            claimed,
            request.method,
            request.path,
            request.peer,
            request.client_address,
        )
        raise HTTPError(403, f"sender {claimed} does not match certificate identity {request.peer}")
    return request.peer


@dataclass
class ServerStats:
    """Counters for monitoring and tests (read them through ``HTTPServer.stats()``)."""

    accepted: int = 0
    refused: int = 0
    handshake_failures: int = 0
    requests: int = 0
    active: int = 0


@dataclass
class _Connection:
    sock: socket.socket
    client: str
    peer: Optional[str] = None
    owner: Optional[HTTPServer] = field(default=None, repr=False)


class HTTPServer:
    """An HTTP/1.1 server on a TCP address (HTTPS when ``tls`` is given) or a Unix socket.

    ``routes`` is the route table; ``tls`` a server context from ``tls.server_context``.
    Pass ``unix_path`` instead of ``host``/``port`` for the local admin API: the socket file is
    created with mode 0600 and every caller gets the identity ``LOCAL_ADMIN``.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unix_path: Optional[str] = None,
        tls: Optional[ssl.SSLContext] = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = DEFAULT_TIMEOUT_S,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
        name: str = "esgf-nm-http",
    ) -> None:
        """Configure the server; nothing is bound until :meth:`start`."""
        if unix_path is not None and tls is not None:
            raise ServerError("TLS is not used on the Unix admin socket")
        if max_connections < 1 or max_body < 0 or timeout <= 0 or handshake_timeout <= 0:
            raise ServerError("max_connections, max_body and timeouts must be positive")
        self._routes: Dict[Tuple[str, str], Route] = {}
        self._paths: Dict[str, List[str]] = {}
        for route in routes:
            key = (route.method, route.path)
            if key in self._routes:
                raise ServerError(f"duplicate route {route.method} {route.path}")
            self._routes[key] = route
            self._paths.setdefault(route.path, []).append(route.method)
        self._host = host
        self._port = port
        self._unix_path = unix_path
        self._tls = tls
        self._max_body = max_body
        self._timeout = timeout
        self._handshake_timeout = handshake_timeout
        self._name = name
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._stats = ServerStats()
        #: A client failing its handshake every round is logged once, not every time.
        self._handshake_log = FailureLog(logger)
        self._active: Dict[int, _Connection] = {}
        self._workers: Dict[int, threading.Thread] = {}
        self._listener: Optional[socket.socket] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._address: Union[Tuple[str, int], str, None] = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> Union[Tuple[str, int], str]:
        """``(host, port)`` actually bound (the real port when 0 was asked), or the socket
        path for a Unix server. Only valid after :meth:`start`."""
        if self._address is None:
            raise ServerError("server not started")
        return self._address

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return self._tls is not None

    def stats(self) -> ServerStats:
        """A snapshot of the server's counters."""
        with self._lock:
            return ServerStats(**vars(self._stats))

    def start(self) -> None:
        """Bind, listen and serve from a background thread."""
        if self._accept_thread is not None:
            raise ServerError("server already started")
        if self._unix_path is not None:
            self._listener = _bind_unix(self._unix_path)
            self._address = self._unix_path
        else:
            self._listener = _bind_tcp(self._host, self._port)
            bound = self._listener.getsockname()
            self._address = (str(bound[0]), int(bound[1]))
        # A socket pair wakes the accept loop on stop() without polling.
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept", daemon=True
        )
        self._accept_thread.start()
        logger.info(
            "%s listening on %s (%s)",
            self._name,
            self._address,
            "https" if self._tls else ("unix" if self._unix_path else "http"),
        )

    def stop(self) -> None:
        """Stop accepting, close every connection and wait (about a second at most)."""
        if self._accept_thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        assert self._wake_w is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._accept_thread.join(STOP_GRACE_S)
        with self._lock:
            conns = list(self._active.values())
            workers = list(self._workers.values())
        for conn in conns:
            # The base-class shutdown bypasses SSLSocket.shutdown, which would tear the TLS
            # object out from under the worker thread that is using it; this just wakes it.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
        for worker in workers:
            worker.join(STOP_GRACE_S / max(1, len(workers)) + 0.05)
            if worker.is_alive():
                logger.warning("%s: worker %s still busy at stop", self._name, worker.name)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._unix_path)
        logger.info("%s stopped", self._name)

    def __enter__(self) -> HTTPServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ accepting

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._listener, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                sock, addr = self._listener.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                # EMFILE and friends: log and keep serving the connections we have.
                logger.error("%s: accept failed: %s", self._name, exc)
                self._stopping.wait(0.1)
                continue
            client = _format_client(addr, self._unix_path is not None)
            if not self._slots.acquire(blocking=False):
                self._refuse(sock, client)
                continue
            conn = _Connection(sock=sock, client=client, owner=self)
            worker = threading.Thread(
                target=self._serve, args=(conn,), name=f"{self._name}-conn", daemon=True
            )
            with self._lock:
                self._stats.accepted += 1
                self._stats.active += 1
                self._active[id(conn)] = conn
                self._workers[id(conn)] = worker
            worker.start()

    def _refuse(self, sock: socket.socket, client: str) -> None:
        with self._lock:
            self._stats.refused += 1
        logger.warning("%s: too many connections, refusing %s", self._name, client)
        try:
            if self._tls is None:
                # A fresh socket's send buffer always has room for this; never block on it.
                sock.setblocking(False)
                body = b'{"error": "server busy"}'
                sock.send(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
        except OSError as exc:
            logger.debug("could not send 503 to %s: %s", client, exc)
        finally:
            sock.close()

    # ------------------------------------------------------------------ one connection

    def _serve(self, conn: _Connection) -> None:
        try:
            if self._tls is not None:
                if not self._handshake(conn):
                    return
            elif self._unix_path is not None:
                conn.peer = LOCAL_ADMIN
            if self._unix_path is None:
                # Small responses on a kept-alive connection would otherwise wait for the
                # peer's delayed ACK (Nagle), adding ~40 ms per request.
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock.settimeout(self._timeout)
            _RequestHandler(conn.sock, conn.client, conn)
        except (OSError, ssl.SSLError) as exc:
            # Resets and timeouts from misbehaving or vanished clients are routine.
            logger.debug("%s: connection from %s ended: %s", self._name, conn.client, exc)
        except Exception:
            logger.exception("%s: unexpected error serving %s", self._name, conn.client)
        finally:
            with contextlib.suppress(OSError):
                conn.sock.close()
            with self._lock:
                self._active.pop(id(conn), None)
                self._workers.pop(id(conn), None)
                self._stats.active -= 1
            self._slots.release()

    def _handshake(self, conn: _Connection) -> bool:
        assert self._tls is not None
        raw = conn.sock
        raw.settimeout(self._handshake_timeout)
        with self._lock:
            # Under the lock, so stop() either sees the wrapped socket (and can wake it) or
            # this worker sees the stop flag; wrapping detaches the raw socket object.
            if self._stopping.is_set():
                return False
            tls_sock = self._tls.wrap_socket(
                raw, server_side=True, do_handshake_on_connect=False
            )
            conn.sock = tls_sock
        try:
            tls_sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self._stats.handshake_failures += 1
            reason = getattr(exc, "reason", None) or exc
            self._handshake_log.failed(_client_host(conn.client),
                                       "%s: TLS handshake with %s failed: %s",
                                       self._name, conn.client, reason)
            return False
        self._handshake_log.succeeded(_client_host(conn.client),
                                      "%s: TLS handshake with %s works again", self._name,
                                      conn.client)
        conn.peer = peer_identity(tls_sock)
        return True

    # ------------------------------------------------------------------ dispatching

    def _lookup(self, method: str, path: str) -> Union[Route, HTTPError]:
        route = self._routes.get((method, path))
        if route is not None:
            return route
        methods = self._paths.get(path)
        if methods:
            return HTTPError(405, f"method {method} not allowed on {path}")
        return HTTPError(404, f"no such endpoint: {path}")

    def _count_request(self) -> None:
        with self._lock:
            self._stats.requests += 1


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """Adapts the stdlib's HTTP/1.1 parser to the route table. One instance per connection."""

    protocol_version = "HTTP/1.1"
    # Do not advertise the Python version.
    server_version = "esgf-nm"
    sys_version = ""
    server: _Connection  # type: ignore[assignment]

    def __init__(self, sock: socket.socket, client: str, conn: _Connection) -> None:
        # The stdlib calls the third argument "server"; ours carries the connection's identity.
        super().__init__(sock, client, conn)  # type: ignore[arg-type]

    @property
    def _owner(self) -> HTTPServer:
        owner = self.server.owner
        assert owner is not None
        return owner

    def log_message(self, format: str, *args: Any) -> None:
        """Access log lines go to the logger at DEBUG, never to stderr."""
        logger.debug("%s %s", self.server.client, format % args)

    def log_error(self, format: str, *args: Any) -> None:
        """Protocol errors (bad request lines, timeouts) are routine: INFO."""
        logger.info("%s %s", self.server.client, format % args)

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        """Errors raised by the stdlib parser also answer in JSON, and close the connection."""
        text = message or self.responses.get(code, ("error", ""))[0]
        self._send(Response.json({"error": text}, status=code), close=True)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it."""
        problem = self._body_problem(None)
        if problem is not None:
            self._send(Response.json({"error": problem.message}, status=problem.status), True)
            return False
        return super().handle_expect_100()

    # Every method goes through one dispatcher; unknown methods get the stdlib's 501.
    def do_GET(self) -> None:
        """Dispatch a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Dispatch a POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Dispatch a PUT."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Dispatch a DELETE."""
        self._dispatch()

    def _content_length(self) -> Optional[int]:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        if len(values) > 1 or not values[0].strip().isdigit():
            raise HTTPError(400, "invalid Content-Length header")
        return int(values[0].strip())

    def _body_problem(self, route: Optional[Route]) -> Optional[HTTPError]:
        """Why the body cannot be accepted (before reading it), or None."""
        if self.headers.get("Transfer-Encoding") is not None:
            return HTTPError(411, "chunked request bodies are not accepted; send Content-Length")
        try:
            length = self._content_length()
        except HTTPError as exc:
            return exc
        if length is None:
            if self.command in ("POST", "PUT"):
                return HTTPError(411, "Content-Length is required")
            return None
        limit = self._owner._max_body
        if route is not None and route.max_body is not None:
            limit = route.max_body
        if length > limit:
            return HTTPError(413, f"request body of {length} bytes exceeds the limit of {limit}")
        return None

    def _dispatch(self) -> None:
        owner = self._owner
        owner._count_request()
        # Until the body is read, any early answer must close: the unread body would otherwise
        # be parsed as the next request.
        body_pending = bool(self.headers.get("Transfer-Encoding")) or (
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
        )
        try:
            if len(self.path) > MAX_TARGET_CHARS:
                raise HTTPError(414, "request target too long")
            split = urllib.parse.urlsplit(self.path)
            if split.scheme or split.netloc or not split.path.startswith("/"):
                raise HTTPError(400, "request target must be an absolute path")
            found = owner._lookup(self.command, split.path)
            if isinstance(found, HTTPError):
                raise found
            route = found
            peer = self.server.peer
            if route.auth == "node" and peer is None:
                raise HTTPError(
                    401, "this endpoint requires a client certificate from the federation CA"
                )
            if route.auth == "admin" and peer != LOCAL_ADMIN:
                raise HTTPError(403, "this endpoint is only available on the local admin socket")
            query = _parse_query(split.query)
            problem = self._body_problem(route)
            if problem is not None:
                raise problem
            length = self._content_length() or 0
            body = self.rfile.read(length) if length else b""
            if len(body) != length:
                # The client went away mid-body: nothing to answer.
                self.close_connection = True
                return
            body_pending = False
            headers: Dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            request = Request(
                method=self.command,
                path=split.path,
                query=query,
                headers=headers,
                body=body,
                peer=peer,
                client_address=self.server.client,
            )
            response = route.handler(request)
            if not isinstance(response, Response):
                raise TypeError(f"handler for {route.path} returned {type(response).__name__}")
        except HTTPError as exc:
            response = Response.json({"error": exc.message}, status=exc.status)
        except Exception:
            logger.exception(
                "handler for %s %s failed (client %s)", self.command, self.path, self.server.client
            )
            response = Response.json({"error": "internal server error"}, status=500)
        self._send(response, close=body_pending)

    def _send(self, response: Response, close: bool) -> None:
        self.send_response(response.status)
        body = b"" if response.status in _BODYLESS_STATUSES else response.body
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


def _parse_query(text: str) -> Dict[str, str]:
    if not text:
        return {}
    try:
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_QUERY_FIELDS,
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"malformed query string: {exc}") from exc
    result: Dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise HTTPError(400, f"duplicate query parameter {key!r}")
        result[key] = value
    return result


def _client_host(client: str) -> str:
    """'10.0.0.1:51234' -> '10.0.0.1' (one key per client host, whatever its source port)."""
    host, sep, port = client.rpartition(":")
    return host if sep and port.isdigit() else client


def _format_client(addr: Any, unix: bool) -> str:
    if unix:
        return "unix"
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Restart without waiting for TIME_WAIT sockets of the previous run to expire.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _bind_unix(path: str) -> socket.socket:
    """Bind a Unix socket at ``path`` that is never reachable with a looser mode than 0600.

    The socket is bound inside a fresh 0700 directory next to ``path``, chmod-ed, then renamed
    into place, so there is no window where the umask's permissions apply.
    """
    _clear_stale_socket(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        private = tempfile.mkdtemp(prefix=".esgf-nm-sock.", dir=parent)
    except OSError as exc:
        raise ServerError(f"cannot create the admin socket in {parent}: {exc.strerror}") from exc
    tmp_path = os.path.join(private, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp_path)
        os.chmod(tmp_path, 0o600)
        os.rename(tmp_path, path)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on Unix socket {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        os.rmdir(private)
    return sock


def _clear_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ServerError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        # Nobody listens: a leftover from a crashed agent.
        os.unlink(path)
        return
    finally:
        probe.close()
    raise ServerError(f"another process is already serving on {path}")


__all__ = [
    "LOCAL_ADMIN",
    "HTTPError",
    "HTTPServer",
    "Request",
    "Response",
    "Route",
    "ServerError",
    "ServerStats",
    "require_sender",
]
