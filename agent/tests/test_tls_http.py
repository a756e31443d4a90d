"""The HTTPS server with real certificates, real sockets and real TLS on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import stat
import threading
import time

import pytest
import requests
from support.pki import make_pki

from esgf_nodemgr.runtime import tls
from esgf_nodemgr.runtime.httpserver import (
    LOCAL_ADMIN,
    HTTPError,
    HTTPServer,
    Request,
    Response,
    Route,
    ServerError,
    require_sender,
)

SN1 = "sn1.test"
SN2 = "sn2.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")), [SN1, SN2], ["127.0.0.1"])


class App:
    """A tiny stand-in for the agent: state changes only through accepted reports."""

    def __init__(self) -> None:
        self.reports = {}
        self.lock = threading.Lock()

    def routes(self):
        return [
            Route("GET", "/public", self.public, auth="public"),
            Route("GET", "/whoami", self.whoami, auth="node"),
            Route("POST", "/report", self.report, auth="node", max_body=1024),
            Route("GET", "/admin/status", self.whoami, auth="admin"),
            Route("GET", "/boom", self.boom, auth="public"),
            Route("GET", "/teapot", self.teapot, auth="public"),
        ]

    def public(self, request: Request) -> Response:
        return Response.json({"ok": True, "query": request.query})

    def whoami(self, request: Request) -> Response:
        return Response.json({"peer": request.peer})

    def report(self, request: Request) -> Response:
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("sender"), str):
            raise HTTPError(400, "report needs a sender")
        sender = require_sender(request, payload["sender"])
        with self.lock:
            self.reports[sender] = payload.get("value")
        return Response.json({"stored": True})

    def boom(self, request: Request) -> Response:
        raise RuntimeError("database password is hunter2")

    def teapot(self, request: Request) -> Response:
        raise HTTPError(418, "short and stout")


@pytest.fixture
def app():
    return App()


@pytest.fixture
def server(pki, app):
    node = pki.node(SN1)
    ctx = tls.server_context(node.cert, node.key, node.ca)
    srv = HTTPServer(
        app.routes(), host="127.0.0.1", port=0, tls=ctx, max_body=4096, handshake_timeout=3.0
    )
    srv.start()
    yield srv
    srv.stop()


def url(srv: HTTPServer, path: str) -> str:
    host, port = srv.address
    return f"https://{host}:{port}{path}"


def session_for(pki, host=None, foreign=False) -> requests.Session:
    s = requests.Session()
    # The machine's REQUESTS_CA_BUNDLE would otherwise override s.verify.
    s.trust_env = False
    if foreign:
        f = pki.foreign
        s.verify = pki.ca_cert
        s.cert = (f.cert, f.key)
    elif host is None:
        s.verify = pki.ca_cert
    else:
        n = pki.node(host)
        tls.client_settings(n.cert, n.key, n.ca).apply(s)
    return s


def plain_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxy from the environment for loopback tests
    return s


# ---------------------------------------------------------------------- tls module


def test_tls_config_errors_name_the_file(pki, tmp_path):
    n1, n2 = pki.node(SN1), pki.node(SN2)
    with pytest.raises(tls.TLSConfigError, match=r"missing\.pem"):
        tls.server_context(str(tmp_path / "missing.pem"), n1.key, n1.ca)
    with pytest.raises(tls.TLSConfigError, match=r"sn1\.test\.pem.*sn2\.test\.key"):
        tls.server_context(n1.cert, n2.key, n1.ca)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(tls.TLSConfigError, match=r"junk\.pem"):
        tls.client_settings(n1.cert, n1.key, str(junk))


def test_key_permission_warning(pki, tmp_path, caplog):
    n1 = pki.node(SN1)
    assert tls.check_key_permissions(n1.key) is True
    loose = tmp_path / "loose.key"
    with open(n1.key, "rb") as handle:
        loose.write_bytes(handle.read())
    os.chmod(loose, 0o644)
    with caplog.at_level(logging.WARNING, logger="esgf_nodemgr.runtime.tls"):
        assert tls.check_key_permissions(str(loose)) is False
    assert "0644" in caplog.text


def test_server_context_settings(pki):
    n1 = pki.node(SN1)
    ctx = tls.server_context(n1.cert, n1.key, n1.ca)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


# ---------------------------------------------------------------------- authentication


def test_public_route_needs_no_client_cert(server, pki):
    r = session_for(pki).get(url(server, "/public?a=1&b="), timeout=5)
    assert r.status_code == 200
    assert r.json() == {"ok": True, "query": {"a": "1", "b": ""}}


def test_node_route_without_cert_is_401(server, pki):
    r = session_for(pki).get(url(server, "/whoami"), timeout=5)
    assert r.status_code == 401
    assert "client certificate" in r.json()["error"]


def test_node_route_with_cert_reports_identity(server, pki):
    r = session_for(pki, SN2).get(url(server, "/whoami"), timeout=5)
    assert r.status_code == 200
    assert r.json() == {"peer": SN2}


def test_foreign_ca_cert_fails_the_handshake(server, pki):
    """CERT_OPTIONAL still verifies any certificate a client presents: one from another CA
    makes the server abort the handshake (alert "unknown ca"), so no route, public or not,
    is reached. With TLS 1.3 the client sends its certificate after it considers the handshake
    done, so it sees the alert on its first read: requests reports SSLError or
    ConnectionError depending on timing."""
    before = server.stats().handshake_failures
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        session_for(pki, foreign=True).get(url(server, "/public"), timeout=5)
    deadline = time.monotonic() + 3
    while server.stats().handshake_failures == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats().handshake_failures == before + 1


def test_spoofed_sender_is_403_logged_and_changes_nothing(server, pki, app, caplog):
    s = session_for(pki, SN2)
    with caplog.at_level(logging.WARNING, logger="esgf_nodemgr.runtime.httpserver"):
        r = s.post(url(server, "/report"), json={"sender": SN1, "value": 666}, timeout=5)
    assert r.status_code == 403
    assert r.json() == {"error": f"sender {SN1} does not match certificate identity {SN2}"}
    assert app.reports == {}
    assert any(
        rec.levelno == logging.WARNING and SN2 in rec.getMessage() and SN1 in rec.getMessage()
        for rec in caplog.records
    )
    r = s.post(url(server, "/report"), json={"sender": SN2, "value": 7}, timeout=5)
    assert r.status_code == 200
    assert app.reports == {SN2: 7}


# ---------------------------------------------------------------------- input limits


def test_oversized_body_is_413(server, pki, app):
    s = session_for(pki, SN2)
    r = s.post(
        url(server, "/report"),
        data=b"{" + b" " * 2000 + b"}",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 413
    assert "1024" in r.json()["error"]
    assert app.reports == {}


def _tls_client(pki, host=SN2) -> ssl.SSLContext:
    n = pki.node(host)
    return tls.client_context(n.cert, n.key, n.ca)


def test_413_is_sent_without_reading_the_body(server, pki):
    """Announce a gigabyte and send none of it: the answer comes at once."""
    host, port = server.address
    ctx = _tls_client(pki)
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.sendall(
            b"POST /report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            assert chunk
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in reply


def test_missing_length_and_chunked_are_411(server, pki):
    host, port = server.address
    ctx = _tls_client(pki)
    for extra in (b"", b"Transfer-Encoding: chunked\r\n"):
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as sock,
        ):
            sock.sendall(b"POST /report HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 411")


@pytest.mark.parametrize(
    "body, ctype, status, fragment",
    [
        (b'{"sender": ', "application/json", 400, "malformed JSON body"),
        (b'{"sender": "a", "sender": "b"}', "application/json", 400, "duplicate key 'sender'"),
        (b'{"sender": "x", "value": NaN}', "application/json", 400, "NaN"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        (b'{"sender": "x"}', "text/plain", 415, "application/json"),
    ],
)
def test_malformed_json(server, pki, app, body, ctype, status, fragment):
    r = session_for(pki, SN2).post(
        url(server, "/report"), data=body, headers={"Content-Type": ctype}, timeout=5
    )
    assert r.status_code == status
    assert fragment in r.json()["error"]
    assert app.reports == {}


def test_duplicate_query_key_is_400(server, pki):
    r = session_for(pki).get(url(server, "/public?a=1&a=2"), timeout=5)
    assert r.status_code == 400
    assert "duplicate query parameter 'a'" in r.json()["error"]


def test_unknown_path_wrong_method_and_handler_errors(server, pki):
    s = session_for(pki, SN2)
    r = s.get(url(server, "/nope"), timeout=5)
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
    r = s.delete(url(server, "/public"), timeout=5)
    assert r.status_code == 405
    r = s.get(url(server, "/teapot"), timeout=5)
    assert r.status_code == 418 and r.json() == {"error": "short and stout"}
    r = s.get(url(server, "/admin/status"), timeout=5)
    assert r.status_code == 403


def test_unexpected_exception_is_generic_500(server, pki, caplog):
    with caplog.at_level(logging.ERROR, logger="esgf_nodemgr.runtime.httpserver"):
        r = session_for(pki).get(url(server, "/boom"), timeout=5)
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert "Python" not in r.headers.get("Server", "")
    assert any(rec.exc_info for rec in caplog.records)


# ---------------------------------------------------------------------- connections


def test_keep_alive_reuses_one_connection(server, pki):
    s = session_for(pki, SN2)
    before = server.stats().accepted
    for i in range(6):
        r = s.get(url(server, f"/public?i={i}"), timeout=5)
        assert r.status_code == 200
    # An error answer that read its body keeps the connection too.
    assert s.get(url(server, "/nope"), timeout=5).status_code == 404
    assert s.get(url(server, "/whoami"), timeout=5).status_code == 200
    assert server.stats().accepted - before == 1


def test_silent_client_does_not_block_others(server, pki):
    """Connections that never start a handshake sit in their own workers; others proceed."""
    host, port = server.address
    silent = [socket.create_connection((host, port)) for _ in range(5)]
    try:
        time.sleep(0.1)
        started = time.monotonic()
        r = session_for(pki, SN2).get(url(server, "/whoami"), timeout=5)
        assert r.status_code == 200
        assert time.monotonic() - started < 1.0
        assert server.stats().active >= 5
    finally:
        for sock in silent:
            sock.close()


def test_handshake_timeout_frees_the_worker(pki, app):
    n = pki.node(SN1)
    ctx = tls.server_context(n.cert, n.key, n.ca)
    with HTTPServer(app.routes(), tls=ctx, handshake_timeout=0.3) as srv:
        sock = socket.create_connection(srv.address)
        try:
            deadline = time.monotonic() + 3
            while srv.stats().handshake_failures == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert srv.stats().handshake_failures == 1
            assert srv.stats().active == 0
        finally:
            sock.close()


def test_connection_limit_refuses_with_503(app):
    with HTTPServer(app.routes(), max_connections=2) as srv:
        held = [socket.create_connection(srv.address) for _ in range(2)]
        try:
            deadline = time.monotonic() + 3
            while srv.stats().active < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            extra = socket.create_connection(srv.address, timeout=5)
            with extra:
                assert extra.recv(4096).startswith(b"HTTP/1.1 503")
            assert srv.stats().refused == 1
        finally:
            for sock in held:
                sock.close()
        # Slots come back once the held connections close.
        deadline = time.monotonic() + 3
        while srv.stats().active and time.monotonic() < deadline:
            time.sleep(0.01)
        host, port = srv.address
        assert plain_session().get(f"http://{host}:{port}/public", timeout=5).status_code == 200


def test_stop_is_quick_with_idle_keep_alive_connections(pki, app):
    n = pki.node(SN1)
    srv = HTTPServer(app.routes(), tls=tls.server_context(n.cert, n.key, n.ca), timeout=30)
    srv.start()
    s = session_for(pki, SN2)
    assert s.get(url(srv, "/whoami"), timeout=5).status_code == 200
    idle = socket.create_connection(srv.address)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.5
    assert srv.stats().active == 0
    idle.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(url(srv, "/whoami"), timeout=2)


def test_plain_http_has_no_peer(app):
    with HTTPServer(app.routes()) as srv:
        host, port = srv.address
        assert plain_session().get(f"http://{host}:{port}/public", timeout=5).status_code == 200
        assert plain_session().get(f"http://{host}:{port}/whoami", timeout=5).status_code == 401


# ---------------------------------------------------------------------- unix admin socket


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self._path)


def test_unix_admin_socket(tmp_path, app):
    path = str(tmp_path / "admin.sock")
    old = os.umask(0)  # even a permissive umask must not widen the socket's mode
    try:
        srv = HTTPServer(app.routes(), unix_path=path)
        srv.start()
    finally:
        os.umask(old)
    try:
        assert srv.address == path
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert [n for n in os.listdir(tmp_path) if n.startswith(".esgf-nm-sock")] == []
        conn = UnixHTTPConnection(path)
        for route in ("/admin/status", "/whoami"):
            conn.request("GET", route)
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read()) == {"peer": LOCAL_ADMIN}
        conn.request(
            "POST",
            "/report",
            body=json.dumps({"sender": "local-admin", "value": 1}),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
        conn.close()
        # A second server on the same path is refused while the first runs.
        with pytest.raises(ServerError, match="already serving"):
            HTTPServer(app.routes(), unix_path=path).start()
    finally:
        srv.stop()
    assert not os.path.exists(path)


def test_unix_socket_stale_file_is_replaced(tmp_path, app):
    path = str(tmp_path / "admin.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # bound but nobody listens: what a killed agent leaves behind
    with HTTPServer(app.routes(), unix_path=path):
        conn = UnixHTTPConnection(path)
        conn.request("GET", "/public")
        assert conn.getresponse().status == 200
        conn.close()
    regular = tmp_path / "not-a-socket"
    regular.write_text("x")
    with pytest.raises(ServerError, match="not a socket"):
        HTTPServer(app.routes(), unix_path=str(regular)).start()


def test_route_table_validation(app):
    with pytest.raises(ServerError):
        Route("GET", "/x", app.public, auth="anyone")
    with pytest.raises(ServerError, match="duplicate route"):
        HTTPServer([Route("GET", "/x", app.public), Route("GET", "/x", app.public)])
