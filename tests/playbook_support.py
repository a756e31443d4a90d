"""Run the collection's playbooks for real against a copy of ``inventories/local``.

A :class:`LocalFederation` is a temp directory holding a copy of the embedded local inventory
(which tests may edit: add a member, add a supernode), the root directory of the agents
(``ESGF_NM_LOCAL_ROOT``) and a free range of ports (``ESGF_NM_LOCAL_PORT_BASE``). Playbooks run
through the venv's ``ansible-playbook`` in a subprocess, from the repository root so that
``ansible.cfg`` resolves ``esgf.nodemgr`` to this checkout. :meth:`LocalFederation.stop_all`
stops every agent the playbooks started: ``stop.yml`` first, then, for anything still alive,
SIGTERM/SIGKILL by the pidfiles the agents' service fallback wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from esgf_nodemgr.runtime.adminclient import AdminClient, AdminError, AdminUnavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = REPO_ROOT / ".venv" / "bin"
COLLECTION_LINK = REPO_ROOT / "collection" / "ansible_collections" / "esgf" / "nodemgr"
PLAYBOOKS = REPO_ROOT / "playbooks"
#: Ports a federation may use: 6 nodes of the local inventory plus those tests add.
PORT_SPAN = 12

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def missing_prerequisites() -> str | None:
    """Why playbooks cannot run from this checkout (None when they can)."""
    if not (VENV_BIN / "ansible-playbook").exists():
        return f"{VENV_BIN}/ansible-playbook missing: run `make setup`"
    if not COLLECTION_LINK.exists():
        return f"{COLLECTION_LINK} missing: run `make setup` (it links the collection)"
    return None


def free_port_base(span: int = PORT_SPAN) -> int:
    """A base port such that ``span`` consecutive ports are free on 127.0.0.1."""
    rng = random.Random()
    for _attempt in range(200):
        base = rng.randrange(20000, 60000 - span)
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {span} consecutive free ports found on 127.0.0.1")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ``ansible-playbook`` run: host -> {ok, changed, unreachable, failed}."""
    tail = output[output.rfind("PLAY RECAP"):]
    return {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in _RECAP.finditer(tail)}


#: What a predicate of :func:`wait_for` may raise while the thing waited for is not there yet.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (AssertionError, OSError, ValueError, KeyError,
                                                     subprocess.TimeoutExpired)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2,
             transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS):
    """Poll ``predicate`` until it returns something truthy, and return that; AssertionError
    naming ``what`` (and the last transient error) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except transient as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


@dataclass
class Run:
    """One ``ansible-playbook`` run."""

    args: list[str]
    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def changed_hosts(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}

    def failed_hosts(self) -> dict[str, int]:
        return {h: r["failed"] + r["unreachable"] for h, r in self.recap.items()
                if r["failed"] or r["unreachable"]}

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


class LocalFederation:
    """A copy of inventories/local in ``workdir`` and the agents it describes."""

    def __init__(self, workdir: Path, port_base: int | None = None) -> None:
        self.workdir = workdir
        self.inventory = workdir / "inventory"
        self.root = workdir / "root"
        self.port_base = port_base if port_base is not None else free_port_base()
        shutil.copytree(REPO_ROOT / "inventories" / "local", self.inventory)
        # A snapshot of the agent's source: an edit of agent/ while the tests run would
        # otherwise count as an upgrade (and rightly restart every agent).
        self.agent_source = workdir / "agent-source"
        shutil.copytree(REPO_ROOT / "agent" / "src", self.agent_source / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        shutil.copy2(REPO_ROOT / "agent" / "pyproject.toml", self.agent_source / "pyproject.toml")
        with open(self.inventory / "group_vars" / "all.yml", "a", encoding="utf-8") as fh:
            fh.write(f"\n# Added by tests/playbook_support.py\nesgf_nm_agent_source: {self.agent_source}\n")

    # -- inventory ------------------------------------------------------------------------------
    @property
    def hosts_file(self) -> Path:
        return self.inventory / "hosts.yml"

    def _load(self) -> dict:
        return yaml.safe_load(self.hosts_file.read_text())

    def _save(self, doc: dict) -> None:
        self.hosts_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def add_host(self, group: str, name: str, offset: int, **hostvars: object) -> None:
        """Add ``name`` to ``group`` (at the end: the bootstrap order) on port base + ``offset``."""
        doc = self._load()
        hosts = doc["all"]["children"][group].setdefault("hosts", {})
        hosts[name] = {"esgf_nm_port": f"{{{{ esgf_nm_local_port_base | int + {offset} }}}}",
                       **hostvars}
        self._save(doc)

    def groups(self) -> dict[str, list[str]]:
        doc = self._load()
        return {g: list((v.get("hosts") or {}).keys()) for g, v in doc["all"]["children"].items()}

    def nodes(self) -> list[str]:
        g = self.groups()
        return g.get("supernodes", []) + g.get("members", [])

    # -- running playbooks ----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            "ESGF_NM_LOCAL_ROOT": str(self.root),
            "ESGF_NM_LOCAL_PORT_BASE": str(self.port_base),
            "ANSIBLE_FORKS": "10",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        return env

    def playbook(self, name: str, *extra: str, timeout: float = 600) -> Run:
        """Run ``playbooks/<name>`` on this inventory; never raises on a failed play."""
        args = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory),
                str(PLAYBOOKS / name), *extra]
        started = time.monotonic()
        proc = subprocess.run(args, cwd=REPO_ROOT, env=self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        seconds = time.monotonic() - started
        return Run(args, proc.returncode, proc.stdout, seconds, parse_recap(proc.stdout))

    # -- looking at the agents ------------------------------------------------------------------
    def node_dir(self, node: str) -> Path:
        return self.root / node

    def socket(self, node: str) -> Path:
        return self.node_dir(node) / "run" / "admin.sock"

    def pidfile(self, node: str) -> Path:
        return self.node_dir(node) / "run" / "agent.pid"

    def pid(self, node: str) -> int | None:
        """Pid of ``node``'s agent when it runs."""
        try:
            pid = int(self.pidfile(node).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_agent(pid) else None

    def esgf_nm(self, node: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        exe = self.root / "venv" / "bin" / "esgf-nm"
        return subprocess.run([str(exe), *args, "--socket", str(self.socket(node))],
                              capture_output=True, text=True,
                              timeout=timeout, check=False)

    def status(self, node: str) -> dict:
        """``esgf-nm status --json`` of ``node``'s agent (AssertionError when it does not answer)."""
        proc = self.esgf_nm(node, "status", "--json")
        if not proc.stdout.strip():
            raise AssertionError(f"{node}: esgf-nm status failed ({proc.returncode}): {proc.stderr}")
        return json.loads(proc.stdout)

    def admin_status(self, node: str, timeout: float = 2.0) -> dict | None:
        """``GET /v1/status`` on ``node``'s admin socket, in this process (no CLI start): None
        when the agent does not answer. Cheap enough to poll every node several times a second."""
        try:
            return AdminClient(str(self.socket(node)), timeout).get("/v1/status")
        except (AdminUnavailable, AdminError):
            return None

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        wait_for(predicate, timeout, what, interval=0.5)

    def agent_pids(self) -> dict[str, int]:
        """Pids of every running agent under the root, by node directory name."""
        out: dict[str, int] = {}
        if not self.root.exists():
            return out
        for pidfile in sorted(self.root.glob("*/run/agent.pid")):
            node = pidfile.parent.parent.name
            pid = self.pid(node)
            if pid is not None:
                out[node] = pid
        return out

    def stop_all(self) -> None:
        """Stop every agent: stop.yml, then signals by pidfile for any survivor."""
        if self.agent_pids():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.playbook("stop.yml", timeout=300)
        kill_pids(self.agent_pids().values())

    def files(self) -> list[str]:
        """Every path under the root (for "check mode wrote nothing")."""
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*"))


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (from /proc; None if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    # Field 22 (starttime, in clock ticks since boot) counted after the ")" closing the name.
    ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One look at one node's agent: when, which pid, and what its status said."""

    t: float
    node: str
    pid: int | None
    status: dict | None


class StatusRecorder:
    """Polls every node's pid and admin status in a thread while a playbook runs: the evidence
    of what happened when (which agent restarted, when it was back in the rounds)."""

    def __init__(self, fed: LocalFederation, nodes: Sequence[str], interval: float = 0.3) -> None:
        self.fed = fed
        self.nodes = list(nodes)
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                pid = self.fed.pid(node)
                self.samples.append(Sample(time.time(), node, pid,
                                           self.fed.admin_status(node) if pid else None))
            self._stop.wait(self.interval)

    def __enter__(self) -> StatusRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def of(self, node: str) -> list[Sample]:
        return [s for s in self.samples if s.node == node]


def _is_agent(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"esgf-nm") for part in cmdline) and b"agent" in cmdline


def kill_pids(pids: Sequence[int], grace: float = 10.0) -> None:
    """SIGTERM these agent pids, then SIGKILL those still alive after ``grace`` seconds."""
    pids = [p for p in pids if _is_agent(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_is_agent(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if _is_agent(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def port_listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
