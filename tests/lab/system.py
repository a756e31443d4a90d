"""Low-level helpers of the lab: running commands, preflight checks, subnet safety, /proc.

Nothing here creates lab resources; `tests.lab.lab` does, through these helpers.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger("esgf_lab")

# The only address ranges the lab will ever put on a bridge (RFC 1918).
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# Binaries the lab runs, by absolute path where Debian has a fixed one.
REQUIRED_BINARIES: Mapping[str, str] = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "hostname": "hostname",
    "/usr/sbin/sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "nft": "nftables",
    "ping": "iputils-ping",
    "/usr/bin/python3": "python3 (Debian's; Ansible's interpreter inside lab hosts)",
}

# A fixed, minimal environment for everything the lab runs (no PYTHONPATH, venv, pyenv shims ...).
CLEAN_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}

PR_SET_CHILD_SUBREAPER = 36


class LabError(RuntimeError):
    """A lab operation failed; the message says what and why."""


class LabUnavailable(LabError):
    """The lab cannot run on this machine (not root, binaries missing, subnet taken)."""


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command, log it, and raise LabError with its output when it fails (if check)."""
    cmd = shlex.join(argv)
    (log.debug if quiet else log.info)("$ %s", cmd)
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env if env is not None else CLEAN_ENV),
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]} ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout:.0f}s: {cmd}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)")[-2000:]
        raise LabError(f"command failed (exit {proc.returncode}): {cmd}\n{detail}")
    return proc


def missing_requirements() -> list[str]:
    """Reasons the lab cannot run here; empty when it can."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (network and mount namespaces, bridges, nftables); run as root")
    missing = [f"{b} ({pkg})" for b, pkg in REQUIRED_BINARIES.items() if not _have(b)]
    if missing:
        problems.append(
            "missing binaries: " + ", ".join(missing) + " — install with tests/tools/install-system-packages.sh (as root)"
        )
    if not Path("/proc/self/ns/net").exists() or not Path("/proc/self/ns/mnt").exists():
        problems.append("this kernel has no network/mount namespaces (/proc/self/ns/{net,mnt} missing)")
    return problems


def _have(binary: str) -> bool:
    if binary.startswith("/"):
        return os.access(binary, os.X_OK)
    return shutil.which(binary, path=CLEAN_ENV["PATH"]) is not None


def ensure_available() -> None:
    """Raise LabUnavailable naming every reason the lab cannot run."""
    problems = missing_requirements()
    if problems:
        raise LabUnavailable("esgf-nm lab unavailable: " + "; ".join(problems))


# --------------------------------------------------------------------------- subnet safety


def machine_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    """Every IPv4 address (as its network) and every non-default IPv4 route on this machine."""
    found: list[tuple[str, ipaddress.IPv4Network]] = []
    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"], quiet=True).stdout or "[]")
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                net = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                assert isinstance(net, ipaddress.IPv4Network)
                found.append((f"address {info['local']}/{info['prefixlen']} on {link.get('ifname')}", net))
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"], quiet=True).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "0.0.0.0/0", ""):
            continue  # a default route overlaps everything by definition; it is not a conflict
        net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        assert isinstance(net, ipaddress.IPv4Network)
        found.append((f"route {dst} dev {route.get('dev', '?')} table {route.get('table', 'main')}", net))
    return found


def check_subnet(subnet: str) -> ipaddress.IPv4Network:
    """Validate a lab subnet: private (RFC 1918), /16../28, and unused on this machine."""
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"invalid lab subnet {subnet!r}: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise LabError(f"lab subnet must be IPv4, got {subnet}")
    if not any(net.subnet_of(r) for r in PRIVATE_RANGES):
        raise LabError(f"lab subnet {net} is not inside a private range (10/8, 172.16/12, 192.168/16); refusing")
    if not 16 <= net.prefixlen <= 28:
        raise LabError(f"lab subnet {net} must have a prefix length between /16 and /28")
    clashes = [what for what, other in machine_networks() if net.overlaps(other)]
    if clashes:
        raise LabUnavailable(
            f"lab subnet {net} overlaps what this machine already uses: {'; '.join(clashes)} — "
            "choose another with --subnet / ESGF_LAB_SUBNET"
        )
    return net


# --------------------------------------------------------------------------- /proc helpers


def netns_id(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a namespace file, or None if it is gone / not readable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def pids_in_netns(ns: tuple[int, int]) -> list[int]:
    """Live processes whose network namespace is `ns` (what `ip netns pids` does)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if netns_id(f"/proc/{pid}/ns/net") == ns and proc_start_time(pid) is not None:
            pids.append(pid)
    return pids


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue  # already gone: that is what we want


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of `pids` is alive (zombies count as gone); return the survivors."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [p for p in remaining if proc_start_time(p) is not None]
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return remaining


def terminate(pids: Sequence[int], what: str, grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace`, then SIGKILL what is left; raise if anything survives."""
    if not pids:
        return
    log.info("stopping %s: pids %s (SIGTERM)", what, " ".join(map(str, pids)))
    signal_pids(pids, signal.SIGTERM)
    signal_pids(pids, signal.SIGCONT)  # a stopped (paused) process acts on SIGTERM only once continued
    left = wait_gone(pids, grace)
    if left:
        log.warning("%s: pids %s ignored SIGTERM for %.0fs; SIGKILL", what, " ".join(map(str, left)), grace)
        signal_pids(left, signal.SIGKILL)
        left = wait_gone(left, 5.0)
    if left:
        raise LabError(f"{what}: processes {left} survive SIGKILL")


def become_subreaper() -> None:
    """preexec_fn: make the child a child-subreaper (kept across execve).

    The anchor (sshd) of a lab host gets this, so processes orphaned inside the host (agents
    started with nohup/setsid over SSH) are re-parented to it and reaped by it, instead of
    going to PID 1 — which on some machines (containers, micro-VMs) never reaps them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
