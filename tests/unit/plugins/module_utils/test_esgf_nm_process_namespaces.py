"""``agent_service`` adopts only processes in its own mount and network namespaces.

Hosts that share a machine's PID namespace (lab hosts, containers with a shared PID namespace)
see each other's processes. The service fallback used to adopt any process whose command line
matched when its pidfile was missing or stale, and so took another host's agent for its own.
These tests start a real process with the very command line the module looks for, but inside
a new network (or mount) namespace (``unshare``, root only), and check that it is neither found,
nor adopted, nor taken for alive from a pidfile, nor signalled — while the same command in our
own namespaces still is adopted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_process import (
    alive,
    find_process,
    proc_cmdline,
    same_namespaces,
)
from ansible_collections.esgf.nodemgr.plugins.modules import agent_service

UNSHARE = shutil.which("unshare")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: starts processes in new network and mount namespaces (unshare)"),
    pytest.mark.skipif(UNSHARE is None, reason="unshare (util-linux) is not installed"),
]


def _command(tmp_path):
    """A long-running command, unique to this test, that looks like an agent with its config."""
    config = str(tmp_path / f"agent-{uuid.uuid4().hex[:8]}.yml")
    return [sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "--config", config]


def _start(argv):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc


def _wait_exec(proc, command, timeout=10.0):
    """Wait until ``proc`` runs ``command`` (``unshare`` execs it); skip if unshare cannot run here."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace").strip()
            pytest.skip(f"unshare cannot create namespaces here: {err or proc.returncode}")
        if proc_cmdline(proc.pid) == command:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {proc.pid} never ran {command}")


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


@pytest.mark.parametrize("kind", ["net", "mount"])
def test_a_process_in_other_namespaces_is_never_ours(kind, procs, tmp_path):
    command = _command(tmp_path)
    foreign = _start([UNSHARE, f"--{kind}", "--", *command])
    procs.append(foreign)
    _wait_exec(foreign, command)

    assert same_namespaces(foreign.pid) is False
    assert find_process(command) == [], "a process of another namespace was found as ours"
    assert not alive(foreign.pid, command), "a pidfile naming another namespace's process was believed"

    ours = _start(command)
    procs.append(ours)
    _wait_exec(ours, command)
    assert same_namespaces(ours.pid) is True
    assert find_process(command) == [ours.pid]
    assert alive(ours.pid, command)


def test_the_service_does_not_adopt_or_signal_another_hosts_agent(run_module, procs, tmp_path):
    """Another host's agent with our exact command line: no pidfile -> start our own, do not adopt;
    its pid in our (stale) pidfile -> not alive, not stopped; stopping ours leaves it running."""
    command = _command(tmp_path)
    foreign = _start([UNSHARE, "--net", "--", *command])
    procs.append(foreign)
    _wait_exec(foreign, command)
    args = {"name": "t", "command": command, "pidfile": str(tmp_path / "agent.pid"),
            "logfile": str(tmp_path / "agent.log"), "wait": 0.3}

    started = run_module(agent_service, args)
    assert started["changed"] and not started["adopted"], started
    assert started["pid"] != foreign.pid and started["pid"] is not None
    try:
        assert same_namespaces(started["pid"]) is True
        again = run_module(agent_service, args)
        assert not again["changed"] and again["pid"] == started["pid"]
    finally:
        stopped = run_module(agent_service, dict(args, state="stopped"))
    assert stopped["changed"] and stopped["previous_pid"] == started["pid"]
    assert foreign.poll() is None, "stopping our service killed another namespace's process"

    # A stale pidfile that names the other host's agent (pid reused): neither alive nor stopped.
    with open(args["pidfile"], "w") as f:
        f.write(f"{foreign.pid}\n")
    stale = run_module(agent_service, dict(args, state="stopped"))
    assert stale["previous_pid"] is None and not stale["killed"], stale
    assert not os.path.exists(args["pidfile"])
    assert foreign.poll() is None, "a stale pidfile made the module signal another namespace's process"
