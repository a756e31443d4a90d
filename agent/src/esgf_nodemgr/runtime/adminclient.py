"""Client of the agent's local admin API (HTTP over the Unix socket), for the CLI."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Dict, Optional

DEFAULT_TIMEOUT_S = 15.0


class AdminUnavailable(Exception):
    """The agent's admin socket cannot be reached (agent not running, wrong path, no rights)."""


class AdminError(Exception):
    """The agent answered with an error status."""

    def __init__(self, status: int, message: str, body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """``get``/``post`` JSON documents on the admin socket at ``path``."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, target: str, doc: Optional[Any] = None) -> Dict[str, Any]:
        conn = _UnixConnection(self.path, self.timeout)
        body = None if doc is None else json.dumps(doc).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise AdminUnavailable(f"cannot reach the agent at {self.path}: {exc}") from exc
        finally:
            conn.close()
        try:
            value = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError as exc:
            raise AdminError(resp.status, f"the agent answered non-JSON ({resp.status})") from exc
        if not isinstance(value, dict):
            raise AdminError(resp.status, "the agent answered a non-object")
        if resp.status >= 400:
            message = value.get("error") or value.get("detail") or f"HTTP {resp.status}"
            raise AdminError(resp.status, str(message), value)
        return value

    def get(self, target: str) -> Dict[str, Any]:
        return self.request("GET", target)

    def post(self, target: str, doc: Optional[Any] = None) -> Dict[str, Any]:
        return self.request("POST", target, doc if doc is not None else {})
