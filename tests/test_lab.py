"""Self-tests of the multi-host lab (tests/lab): real namespaces, sshd, nftables, Ansible.

Only lab addresses (and loopback) are ever contacted. Needs root; skips with the reason otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.lab import Lab, LabError, LabUnavailable, leftovers, missing_requirements, system
from tests.lab import lab as lab_module
from tests.lab.fixtures import LabFactory, lab_skip_reason

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SKIP = lab_skip_reason()
needs_lab = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
PIDFILE = "/run/esgf-nm/agent.pid"


# --------------------------------------------------------------------------- no root needed


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert any("needs root" in p for p in missing_requirements())
    with pytest.raises(LabUnavailable, match="needs root"):
        Lab.create(2, name="nr")


def test_names_missing_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "REQUIRED_BINARIES", {"/nonexistent/sshd-xyz": "openssh-server", "nft-xyz-missing": "nftables"})
    problems = " ".join(missing_requirements())
    assert "/nonexistent/sshd-xyz (openssh-server)" in problems
    assert "nft-xyz-missing (nftables)" in problems


@pytest.mark.parametrize("subnet", ["8.8.8.0/24", "192.0.2.0/24", "10.0.0.0/8", "10.213.0.0/29x", "fd00::/64"])
def test_subnet_must_be_private_and_sane(subnet: str) -> None:
    with pytest.raises(LabError):
        system.check_subnet(subnet)


def test_subnet_must_not_overlap_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = ipaddress.IPv4Network("10.213.0.0/16")
    monkeypatch.setattr(system, "machine_networks", lambda: [("route 10.213.0.0/16 dev eth9", taken)])
    with pytest.raises(LabUnavailable, match="overlaps"):
        system.check_subnet("10.213.7.0/24")
    assert str(system.check_subnet("10.214.7.0/24")) == "10.214.7.0/24"


def test_invalid_names_are_refused() -> None:
    for bad in ("Lab", "toolong7", "1ab", ""):
        with pytest.raises(LabError, match="invalid lab name"):
            lab_module._validate_names(bad, ["node1"])
    with pytest.raises(LabError, match="duplicate"):
        lab_module._validate_names("ok", ["a1", "a1"])
    with pytest.raises(LabError, match="invalid host name"):
        lab_module._validate_names("ok", ["Node_1"])


# --------------------------------------------------------------------------- the lab itself


@pytest.fixture(scope="module")
def lab3(lab_factory: LabFactory) -> Lab:
    return lab_factory(3, groups={"supernodes": ["node1"], "members": ["node2", "node3"]})


@pytest.fixture
def healed(lab3: Lab) -> Iterator[Lab]:
    yield lab3
    lab3.heal_all()


def _ansible_env(lab: Lab) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(lab.ansible_cfg), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}


@pytest.mark.lab
@needs_lab
def test_each_host_has_its_own_hostname(lab3: Lab) -> None:
    assert [lab3.ssh(h, "hostname").stdout.strip() for h in lab3.host_names] == ["node1", "node2", "node3"]
    assert lab3.exec("node2", ["cat", "/etc/hostname"]).stdout.strip() == "node2"


@pytest.mark.lab
@needs_lab
def test_each_host_has_its_own_files(lab3: Lab) -> None:
    lab3.ssh("node1", "echo only-on-node1 > /etc/esgf-nm/marker && mkdir -p /esg/config && touch /esg/config/x")
    assert lab3.ssh("node1", "cat /etc/esgf-nm/marker").stdout.strip() == "only-on-node1"
    for other in ("node2", "node3"):
        assert lab3.ssh(other, "test -e /etc/esgf-nm/marker || test -e /esg/config/x", check=False).returncode == 1
    assert not Path("/etc/esgf-nm/marker").exists()  # the machine's own /etc is untouched
    assert lab3.host_path("node1", "/etc/esgf-nm/marker").read_text().strip() == "only-on-node1"


@pytest.mark.lab
@needs_lab
def test_hosts_reach_each_other_and_nothing_else(lab3: Lab) -> None:
    for a in lab3.host_names:
        for b in lab3.host_names:
            if a != b:
                assert lab3.reachable(a, b), f"{a} cannot ping {b}"
        routes = lab3.exec(a, ["ip", "-4", "route", "show"]).stdout.splitlines()
        assert routes and not any(r.startswith("default") for r in routes), routes
        for r in routes:  # only the lab subnet is routable: nothing can leave the lab
            assert ipaddress.IPv4Network(r.split()[0]).subnet_of(ipaddress.IPv4Network(lab3.state.subnet))
    assert lab3.reachable("node1", "node3", port=22)
    # The machine's own services are not reachable from lab hosts (root-namespace guard table),
    # and lab interfaces carry no IPv6 at all (no link-local chatter).
    assert not lab3.reachable("node1", "controller")
    assert lab3.exec("node1", ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout.strip() == ""
    rules = lab3.exec("node1", ["nft", "list", "table", "inet", "esgf_lab"]).stdout
    assert f"ip daddr != {lab3.state.subnet} drop" in rules
    assert lab3.exec("node2", ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip() == "(3, 11)"


@pytest.mark.lab
@needs_lab
def test_ansible_reaches_every_host_over_ssh(lab3: Lab) -> None:
    ansible = VENV_BIN / "ansible"
    if not ansible.exists():
        pytest.skip(f"{ansible} not installed (make setup)")
    proc = subprocess.run(
        [str(ansible), "-i", str(lab3.inventory), "all", "-m", "ansible.builtin.ping"],
        capture_output=True, text=True, env=_ansible_env(lab3), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 3, proc.stdout
    inventory = yaml.safe_load(lab3.inventory.read_text())["all"]
    assert inventory["children"]["supernodes"]["hosts"] == {"node1": None}
    assert set(inventory["children"]["members"]["hosts"]) == {"node2", "node3"}
    for hostvars in inventory["hosts"].values():
        assert hostvars["ansible_user"] == "root" and hostvars["ansible_python_interpreter"] == "/usr/bin/python3"


@pytest.mark.lab
@needs_lab
def test_cut_and_heal(healed: Lab) -> None:
    lab = healed
    lab.cut("node1", "node2")
    assert not lab.reachable("node1", "node2")
    assert not lab.reachable("node2", "node1")
    assert not lab.reachable("node2", "node1", port=22)
    assert lab.reachable("node1", "node3") and lab.reachable("node2", "node3") and lab.reachable("node3", "node1")
    assert lab.ssh("node1", "hostname").returncode == 0  # the controller still reaches both
    lab.heal("node2", "node1")
    assert lab.reachable("node1", "node2") and lab.reachable("node2", "node1")
    # another process sees the same state (the CLI, a teardown) and can act on it
    assert Lab.open(root=lab.root).state.cuts == []


@pytest.mark.lab
@needs_lab
def test_isolate_keeps_ssh_from_the_controller(healed: Lab) -> None:
    lab = healed
    lab.isolate("node3")
    for other in ("node1", "node2"):
        assert not lab.reachable("node3", other) and not lab.reachable(other, "node3")
    assert lab.reachable("node1", "node2")
    assert lab.ssh("node3", "hostname").stdout.strip() == "node3"
    assert not lab.reachable("node3", "controller")
    lab.rejoin("node3")
    assert lab.reachable("node3", "node1") and lab.reachable("node2", "node3")


@pytest.mark.lab
@needs_lab
def test_partition_and_heal_all(healed: Lab) -> None:
    lab = healed
    lab.partition(["node1"], ["node2", "node3"])
    assert not lab.reachable("node1", "node2") and not lab.reachable("node3", "node1")
    assert lab.reachable("node2", "node3")
    lab.heal_all()
    assert all(lab.reachable(a, b) for a in lab.host_names for b in lab.host_names if a != b)


def _cmdline(pid: int) -> list[bytes]:
    """The command line of `pid` once it has exec'd `sleep` (past bash/nohup/sh/env wrappers)."""
    deadline = time.monotonic() + 5
    while True:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv[0] == b"sleep" or time.monotonic() > deadline:
            return argv
        time.sleep(0.01)


@pytest.mark.lab
@needs_lab
def test_agent_kill_restart_stop(lab3: Lab) -> None:
    lab = lab3
    out = lab.ssh("node2", f"mkdir -p /run/esgf-nm && (nohup sleep 1000 >/dev/null 2>&1 & echo $! > {PIDFILE})")
    assert out.returncode == 0
    pid = lab.agent_pid("node2")
    assert pid is not None and lab.agent_pid("node1") is None
    assert _cmdline(pid)[:2] == [b"sleep", b"1000"]
    lab.kill_agent("node2")
    assert lab.agent_pid("node2") is None and system.proc_start_time(pid) is None

    first = lab.start_agent("node2", ["sleep", "1001"])
    lab.pause_agent("node2")
    second = lab.restart_agent("node2", timeout=3)  # a paused agent is still stopped promptly
    assert second != first and system.proc_start_time(first) is None
    assert _cmdline(second)[:2] == [b"sleep", b"1001"]
    assert lab.ssh("node2", f"cat {PIDFILE}").stdout.strip() == str(second)
    lab.stop_agent("node2")
    assert lab.agent_pid("node2") is None
    with pytest.raises(LabError, match="no running agent"):
        lab.kill_agent("node2")

    # Another pidfile path; and a pidfile naming a process outside the host is refused.
    other = lab.start_agent("node3", ["sleep", "1002"], pidfile="/var/lib/esgf-nm/a.pid")
    assert lab.agent_pid("node3", pidfile="/var/lib/esgf-nm/a.pid") == other
    lab.kill_agent("node3", pidfile="/var/lib/esgf-nm/a.pid")
    lab.host_path("node3", PIDFILE).parent.mkdir(parents=True, exist_ok=True)
    lab.host_path("node3", PIDFILE).write_text(f"{os.getpid()}\n")
    with pytest.raises(LabError, match="not a process of this host"):
        lab.kill_agent("node3")
    lab.host_path("node3", PIDFILE).unlink()


@pytest.mark.lab
@needs_lab
def test_teardown_leaves_nothing_and_recreate_works(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(["alpha", "beta"])
    name, root = lab.name, lab.root
    lab.ssh("alpha", "nohup sleep 4242 >/dev/null 2>&1 & setsid sleep 4243 >/dev/null 2>&1 < /dev/null &")
    lab.cut("alpha", "beta")
    assert lab_module.lab_processes(name)
    lab.destroy()
    assert leftovers(name) == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"enml-{name}" not in netns and f"enml-{name}" not in links
    assert f"esgf_lab_guard_{name}" not in tables
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    alive = [line for line in ps.splitlines() if not line.startswith("Z") and (str(root) in line or "sleep 424" in line)]
    assert alive == []
    assert not root.exists() and name not in Lab.running()

    again = Lab.create(["alpha", "beta"], name=name, root=root, subnet=lab.state.subnet)
    try:
        assert again.ssh("beta", "hostname").stdout.strip() == "beta"
        assert again.reachable("alpha", "beta")
    finally:
        again.destroy()
    assert leftovers(name) == []


@pytest.mark.lab
@needs_lab
def test_failed_create_cleans_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(self: Lab) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Lab, "_verify", interrupted)
    name = f"f{os.getpid() % 10000:04d}"
    with pytest.raises(KeyboardInterrupt):
        Lab.create(2, name=name, root=tmp_path / "lab", subnet=lab_module.free_subnet(start=7))
    assert leftovers(name) == [] and name not in Lab.running()


@pytest.mark.lab
@needs_lab
def test_sigterm_to_the_owning_process_tears_down(tmp_path: Path) -> None:
    name = f"s{os.getpid() % 10000:04d}"
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from tests.lab import Lab; "
        "Lab.create(2, name=sys.argv[2], root=sys.argv[3], subnet=sys.argv[4]); print('ready', flush=True); time.sleep(300)"
    )
    subnet = lab_module.free_subnet(start=11)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(REPO_ROOT), name, str(tmp_path / "lab"), subnet], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert len(Lab.open(name).hosts) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert leftovers(name) == [] and name not in Lab.running()


@pytest.mark.lab
@needs_lab
def test_cli_round_trip(tmp_path: Path) -> None:
    name = f"c{os.getpid() % 10000:04d}"
    env = {**os.environ, "ESGF_LAB_NAME": name, "ESGF_LAB_SUBNET": lab_module.free_subnet(start=23)}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.lab", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if check:
            assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
        return proc

    try:
        t0 = time.monotonic()
        created = cli("create", "-n", "2", "--root", str(tmp_path / "lab"), "--supernodes", "node1")
        assert created.stdout.strip() == str(tmp_path / "lab" / "inventory.yml")
        assert time.monotonic() - t0 < 30
        assert cli("ssh", "node2", "--", "hostname").stdout.strip() == "node2"
        cli("cut", "node1", "node2")
        assert '"cuts": [\n    [\n      "node1",\n      "node2"' in cli("status").stdout
        cli("heal", "--all")
        assert cli("agent", "start", "node1", "--", "sleep", "1003").stdout.strip().isdigit()
        assert cli("agent", "kill", "node1").returncode == 0
        assert cli("agent", "status", "node1", check=False).returncode == 3
    finally:
        cli("destroy", check=False)
    assert leftovers(name) == []
    assert cli("status", check=False).returncode == 1
