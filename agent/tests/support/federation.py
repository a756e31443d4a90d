"""A federation of real agent processes on loopback, with real certificates.

Each node is an ``esgf-nm agent`` child process with its own config, state directory, admin
socket and TLS certificate (from ``support.pki``); they talk HTTPS with mutual TLS on
127.0.0.1 and distinct ports. Used by the agent tests; never mocks anything.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core import roster as ro
from esgf_nodemgr.runtime.adminclient import AdminClient, AdminError, AdminUnavailable
from support.pki import make_pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    hostname: str
    role: str
    port: int
    dir: Path
    config: Path
    socket: str
    proc: Optional[subprocess.Popen[bytes]] = None
    log: Optional[Path] = None

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.socket, timeout=10)

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@dataclass
class Federation:
    root: Path
    nodes: Dict[str, Node] = field(default_factory=dict)
    pki: Any = None
    round_s: float = 1.0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, hostname: str) -> None:
        node = self.nodes[hostname]
        node.log = node.dir / "agent.log"
        logf = open(node.log, "ab")  # noqa: SIM115 - closed when the process is reaped
        env = dict(os.environ)
        env.pop("REQUESTS_CA_BUNDLE", None)
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "esgf_nodemgr", "agent", "--config", str(node.config)],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        logf.close()
        wait_for(lambda: self._answers(node), 20, f"agent {hostname} to answer")

    def _answers(self, node: Node) -> bool:
        if node.proc is not None and node.proc.poll() is not None:
            raise RuntimeError(f"agent {node.hostname} exited with {node.proc.returncode}:\n"
                               f"{self.log_tail(node.hostname)}")
        try:
            node.admin.get("/v1/status")
        except (AdminUnavailable, AdminError):
            return False
        return True

    def kill(self, hostname: str, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[hostname]
        assert node.proc is not None
        node.proc.send_signal(sig)
        node.proc.wait(timeout=15)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=5)

    def log_tail(self, hostname: str, lines: int = 40) -> str:
        log = self.nodes[hostname].log
        if log is None or not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    # -- queries -------------------------------------------------------------------------------
    def status(self, hostname: str) -> Dict[str, Any]:
        return self.nodes[hostname].admin.get("/v1/status")

    def supernodes(self) -> List[str]:
        return [h for h, n in self.nodes.items() if n.role == "supernode"]

    def members(self) -> List[str]:
        return [h for h, n in self.nodes.items() if n.role == "member"]

    def running(self, hostnames: List[str]) -> List[str]:
        return [h for h in hostnames if self.nodes[h].pid is not None]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def build_federation(root: Path, supernodes: int, members: int, *, round_s: float = 1.0,
                     capacity: int = 20, extra: Optional[Dict[str, Any]] = None
                     ) -> Federation:
    """Write certificates, configs and the initial map for a federation (nothing started)."""
    sn_names = [f"sn{i}.test" for i in range(1, supernodes + 1)]
    m_names = [f"m{i}.test" for i in range(1, members + 1)]
    pki = make_pki(str(root / "pki"), sn_names + m_names, ips=("127.0.0.1",))
    fed = Federation(root=root, pki=pki, round_s=round_s)
    ports = {h: free_port() for h in sn_names + m_names}
    specs = [ro.SupernodeSpec(h, "127.0.0.1", ports[h]) for h in sn_names]
    initial = ro.generate(specs, capacity=capacity)
    map_path = root / "map.json"
    map_path.write_text(nm.dump_map_text(initial))
    for h in sn_names + m_names:
        role = "supernode" if h in sn_names else "member"
        d = root / h
        d.mkdir(parents=True, exist_ok=True)
        files = pki.node(h)
        cfg: Dict[str, Any] = {
            "node": {"hostname": h, "role": role, "listen": "127.0.0.1", "port": ports[h],
                     "advertise": "127.0.0.1"},
            "federation": {"map": str(map_path), "round_s": round_s,
                           "probe_timeout_s": round(round_s * 0.45, 3), "skew_s": 0.2,
                           "reply_timeout_s": 3.0, "retry_s": 0.5, "tick_s": 0.05},
            "tls": {"cert": files.cert, "key": files.key, "ca": files.ca},
            "paths": {"state_dir": str(d / "state"), "admin_socket": str(d / "admin.sock"),
                      "registration_xml": str(d / "registration.xml"),
                      "legacy_map": str(d / "esgf_nodemgr_map.json"),
                      "esgf_properties": str(d / "esgf.properties"),
                      "config_type": str(d / "config_type")},
            "properties": {"refresh_s": 2.0, "max_age_s": 60.0},
            "logging": {"level": "INFO"},
        }
        for section, values in (extra or {}).items():
            cfg.setdefault(section, {}).update(values)
        (d / "esgf.properties").write_text(
            f"esgf.host={h}\nnode.short.name={h.split('.')[0]}\n"
            f"esg.org.name=Test Org\nnode.namespace=test\n")
        (d / "config_type").write_text("28\n" if role == "supernode" else "4\n")
        config = d / "agent.yml"
        config.write_text(yaml.safe_dump(cfg))
        fed.nodes[h] = Node(hostname=h, role=role, port=ports[h], dir=d, config=config,
                            socket=str(d / "admin.sock"))
    return fed


def bootstrap(fed: Federation, join_members: bool = True) -> float:
    """Start supernodes 2..N, then #1; seed the epoch on #1; start and join the members.

    Returns the epoch.
    """
    sns = fed.supernodes()
    for h in sns[1:] + sns[:1]:
        fed.start(h)
    answer = fed.nodes[sns[0]].admin.post("/v1/epoch/seed", {})
    epoch = float(answer["data"]["epoch"])
    wait_for(lambda: all(fed.status(h).get("epoch") == epoch for h in sns), 20,
             "every supernode to hold the epoch")
    for h in fed.members():
        fed.start(h)
        if join_members:
            fed.nodes[h].admin.post("/v1/join", {"project": "CMIP6", "standby": False})
    if join_members:
        wait_for(lambda: all(fed.status(h).get("joined") for h in fed.members()), 30,
                 "every member to join")
    return epoch


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=1, sort_keys=True)
