"""Helpers of the failure drills (tests/test_drills.py): a federation on lab hosts over SSH.

A :class:`LabFederation` wraps a running :class:`tests.lab.Lab` whose hosts the real playbooks
manage over SSH, with the lab settings of ``molecule/shared/inventory`` (1 s rounds, offline
wheelhouse, ...). It runs playbooks, and reads each agent's own view:

- over HTTPS from the controller (``/esgf-nm/v1/status``, public, verified with the federation
  CA): the controller may connect to lab hosts (only the reverse is blocked by the lab's guard);
- through ``esgf-nm status --json`` inside the host (``Lab.exec``: nsenter into the host's
  namespaces, no SSH) when HTTPS cannot work: an isolated host accepts only SSH from the
  controller, and an agent that is down answers nothing.

Every wait is bounded (``wait_for`` names what it waited for when it gives up).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.lab import Lab, LabError
from tests.playbook_support import TRANSIENT_ERRORS, Run, parse_recap
from tests.playbook_support import wait_for as _wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = REPO_ROOT / ".venv" / "bin"
PLAYBOOKS = REPO_ROOT / "playbooks"
SHARED_INVENTORY = REPO_ROOT / "molecule" / "shared" / "inventory"
PREPARE = REPO_ROOT / "molecule" / "shared" / "prepare.yml"
ESGF_NM = "/opt/esgf-nm/venv/bin/esgf-nm"
ADMIN_SOCKET = "/run/esgf-nm/admin.sock"
PIDFILE = "/run/esgf-nm/agent.pid"  # the role's default; also the lab's default
AGENT_USER = "esgf-nm"
PORT = 7443
DOWN = frozenset({"bad", "unreachable"})

Status = dict[str, Any]


class AgentAccount:
    """The agent's system account on this machine.

    Lab hosts share the machine's user database (/etc/passwd is not per host), so six hosts
    running the role's user tasks at once would race on one file: the account is created once
    before the playbooks run, and removed afterwards when it did not exist before.
    """

    def __init__(self) -> None:
        self.created = False

    @staticmethod
    def exists() -> bool:
        return subprocess.run(["getent", "passwd", AGENT_USER], capture_output=True, check=False).returncode == 0

    def ensure(self) -> None:
        if self.exists():
            return
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/var/lib/esgf-nm", "--shell", "/usr/sbin/nologin", AGENT_USER],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.created = True

    def remove(self) -> None:
        if self.created:
            subprocess.run(["userdel", AGENT_USER], capture_output=True, check=False, timeout=30)
            subprocess.run(["groupdel", AGENT_USER], capture_output=True, check=False, timeout=30)
            self.created = False


class LabFederation:
    """The federation the inventory of `lab` describes, managed by the real playbooks."""

    def __init__(self, lab: Lab, hostvars: Mapping[str, Mapping[str, Any]]) -> None:
        self.lab = lab
        self.inventory_dir = lab.root / "drills-inventory"
        self.inventory_dir.mkdir(exist_ok=True)
        (self.inventory_dir / "hosts.yml").write_text(
            "# members' variables for the drills (groups: the lab's inventory)\n"
            + yaml.safe_dump({"all": {"hosts": {h: dict(v) for h, v in hostvars.items()}}}, sort_keys=False)
        )
        self.pki_dir = lab.root / "pki"
        self.groups: dict[str, list[str]] = {"supernodes": [], "members": []}
        self._ctx: ssl.SSLContext | None = None

    # -- inventory and playbooks -----------------------------------------------------------------
    def set_groups(self, supernodes: Sequence[str], members: Sequence[str]) -> None:
        """Edit the inventory (as an administrator would): the groups, in bootstrap order."""
        self.groups = {"supernodes": list(supernodes), "members": list(members)}
        self.lab.write_inventory(self.groups)

    @property
    def supernodes(self) -> list[str]:
        return list(self.groups["supernodes"])

    @property
    def members(self) -> list[str]:
        return list(self.groups["members"])

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
                "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),  # collections_path -> this checkout
                "ANSIBLE_FORKS": "10",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ANSIBLE_PIPELINING": "True",  # one SSH round trip per module instead of four
                # Ansible's default without -C: compressing SSH to a host on this machine only costs CPU.
                "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": f"/run/esgf-nm-lab/cp-{self.lab.name}",
                "ESGF_LAB_PKI_DIR": str(self.pki_dir),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env

    def playbook(self, path: Path, *extra: str, timeout: float = 600) -> Run:
        """Run a playbook over SSH on the lab's inventory; never raises on a failed play."""
        args = [
            str(VENV_BIN / "ansible-playbook"),
            "-i", str(self.lab.inventory),
            "-i", str(SHARED_INVENTORY),
            "-i", str(self.inventory_dir),
            str(path), *extra,
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.run(args, cwd=REPO_ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        return Run(args, proc.returncode, proc.stdout, time.monotonic() - started, parse_recap(proc.stdout))

    # -- reading the agents ----------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.pem"))
        return self._ctx

    def https_status(self, host: str, timeout: float = 2.0) -> Status:
        """The agent's public status document, over HTTPS from the controller (CA-verified)."""
        conn = http.client.HTTPSConnection(self.lab.address(host), PORT, timeout=timeout, context=self._ssl())
        try:
            conn.request("GET", "/esgf-nm/v1/status")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise OSError(f"{host}: HTTP {resp.status}")
            return json.loads(body)
        finally:
            conn.close()

    def cli_status(self, host: str, timeout: float = 15.0) -> Status:
        """``esgf-nm status --json`` run inside the host (nsenter; works while it is isolated)."""
        proc = self.lab.exec(host, [ESGF_NM, "status", "--json", "--socket", ADMIN_SOCKET, "--timeout", "5"], check=False, timeout=timeout)
        if proc.returncode != 0:
            raise OSError(f"{host}: esgf-nm status exited {proc.returncode}: {proc.stderr.strip()[:300]}")
        return json.loads(proc.stdout)

    def status(self, host: str) -> Status:
        """HTTPS when possible, else the CLI inside the host."""
        if host in self.lab.state.isolated:
            return self.cli_status(host)
        try:
            return self.https_status(host)
        except (OSError, ValueError):
            return self.cli_status(host)

    def statuses(self, hosts: Iterable[str]) -> dict[str, Status]:
        return {h: self.status(h) for h in hosts}

    def agent_pid(self, host: str) -> int | None:
        return self.lab.agent_pid(host, PIDFILE)

    def pids(self, hosts: Iterable[str]) -> dict[str, int | None]:
        return {h: self.agent_pid(h) for h in hosts}

    def agent_argv(self, host: str) -> list[str]:
        pid = self.agent_pid(host)
        if pid is None:
            raise LabError(f"{host}: no agent running")
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]

    def start_agent(self, host: str, argv: Sequence[str]) -> int:
        """Start the agent again as its own user (as the service fallback does), pidfile and all."""
        runas = ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups"]
        return self.lab.start_agent(host, [*runas, *argv], PIDFILE, log_file="/var/log/esgf-nm/agent.log")


# -- views of one status document -----------------------------------------------------------------
def health_of(st: Status) -> dict[str, str]:
    """Supernode hostname -> health, as the node `st` sees it."""
    return {s["hostname"]: s["health"] for s in st.get("supernodes", [])}


def servers_of(st: Status) -> dict[str, str | None]:
    """Member hostname -> hostname of the supernode serving it, as supernode `st` sees it."""
    return {m["hostname"]: m.get("server_hostname") for m in st.get("members", [])}


def links_down(st: Status) -> set[tuple[str, str]]:
    """Links (hostname pairs, sorted) this supernode's map says are not up."""
    names = {s["id"]: s["hostname"] for s in st.get("roster", {}).get("supernodes", [])}
    out = set()
    for link in st.get("links", []):
        if link.get("status") == "down":
            a, b = sorted((names.get(link["from"], link["from"]), names.get(link["to"], link["to"])))
            out.add((a, b))
    return out


def one_map(views: Mapping[str, Status]) -> bool:
    """Every supernode view holds the same map (digest) and the same newest decision."""
    return len({v["map"]["digest"] for v in views.values()}) == 1 and len({json.dumps(v["map"]["decision"]) for v in views.values()}) == 1


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """:func:`tests.playbook_support.wait_for`, also waiting through the lab's own errors."""
    return _wait_for(predicate, timeout, what, interval, (*TRANSIENT_ERRORS, LabError))


# -- the simulator's prediction -------------------------------------------------------------------
def simulate_crash(round_s: float, skew_s: float, supernodes: int = 3, members: int = 3, seed: int = 1) -> dict[str, Any]:
    """`esgf-nm sim --scenario crash --json` for the lab's settings, or {"error": why}.

    Uses the installed CLI when it knows `sim`; otherwise the sim command module directly (it
    may not be registered in the CLI yet)."""
    args = ["sim", "--supernodes", str(supernodes), "--members", str(members), "--scenario", "crash", "--seed", str(seed),
            "--json", "--round-s", f"{round_s:g}", "--skew", f"{skew_s:g}", "--loss", "0"]  # fmt: skip
    cli = shutil.which("esgf-nm", path=str(VENV_BIN))
    if cli:
        proc = subprocess.run([cli, *args], capture_output=True, text=True, timeout=300, check=False)
        if proc.stdout.strip().startswith("{"):
            return {"command": "esgf-nm " + " ".join(args), **json.loads(proc.stdout)}
    code = (
        "import argparse, sys\n"
        "from esgf_nodemgr.cli import sim_cmd\n"
        "p = argparse.ArgumentParser(prog='esgf-nm'); s = p.add_subparsers(dest='command'); sim_cmd.register(s)\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "the simulator did not finish within 300 s"}
    if proc.stdout.strip().startswith("{"):
        return {"command": "esgf-nm " + " ".join(args) + "  (sim module called directly: not in the CLI yet)", **json.loads(proc.stdout)}
    return {"error": f"simulator unavailable (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
