"""``agent_service`` with real detached processes: start, unchanged, stale pidfile, stop."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_process import proc_cmdline
from ansible_collections.esgf.nodemgr.plugins.modules import agent_service

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "esgf-nm-test-sleeper"]
#: Listens on the Unix socket given as argv[1] after half a second, then serves forever.
LISTENER = [sys.executable, "-c", (
    "import socket, sys, time\n"
    "time.sleep(0.5)\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.bind(sys.argv[1])\n"
    "s.listen(1)\n"
    "while True:\n"
    "    s.accept()[0].close()\n")]


def read(path):
    with open(path) as f:
        return f.read().strip()


def alive(pid):
    return pid is not None and proc_cmdline(pid) is not None


@pytest.fixture
def service(tmp_path):
    args = {"name": "sleeper", "command": list(SLEEPER), "pidfile": str(tmp_path / "run" / "sleeper.pid"),
            "logfile": str(tmp_path / "sleeper.log"), "wait": 5}
    os.mkdir(str(tmp_path / "run"))
    started = []
    yield args, started
    # Never leave a process behind, whatever the test did.
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_start_unchanged_stop(run_module, service):
    args, started = service
    preview = run_module(agent_service, args, check_mode=True)
    assert preview["changed"] and preview["pid"] is None and not os.path.exists(args["pidfile"])

    first = run_module(agent_service, args)
    started.append(first["pid"])
    assert first["changed"] and first["state"] == "started" and first["previous_pid"] is None
    assert alive(first["pid"])
    assert read(args["pidfile"]) == str(first["pid"])
    assert os.getsid(first["pid"]) == first["pid"]  # its own session: detached from us
    assert os.getppid() != first["pid"]

    again = run_module(agent_service, args)
    assert not again["changed"] and again["pid"] == first["pid"] == again["previous_pid"]

    stop_preview = run_module(agent_service, dict(args, state="stopped"), check_mode=True)
    assert stop_preview["changed"] and alive(first["pid"])

    stopped = run_module(agent_service, dict(args, state="stopped"))
    assert stopped["changed"] and stopped["pid"] is None and stopped["previous_pid"] == first["pid"]
    assert not stopped["killed"]
    assert not alive(first["pid"]) and not os.path.exists(args["pidfile"])
    assert not run_module(agent_service, dict(args, state="stopped"))["changed"]


def test_restart_gives_a_new_process(run_module, service):
    args, started = service
    first = run_module(agent_service, args)
    started.append(first["pid"])
    restarted = run_module(agent_service, dict(args, state="restarted"))
    started.append(restarted["pid"])
    assert restarted["changed"] and restarted["previous_pid"] == first["pid"]
    assert restarted["pid"] != first["pid"] and alive(restarted["pid"]) and not alive(first["pid"])
    run_module(agent_service, dict(args, state="stopped"))


def test_a_stale_pidfile_never_signals_another_program(run_module, service):
    args, started = service
    with open(args["pidfile"], "w") as f:
        f.write(f"{os.getpid()}\n")  # a live pid, but not our command: this test process
    result = run_module(agent_service, args)
    started.append(result["pid"])
    assert result["changed"] and result["previous_pid"] is None and result["pid"] != os.getpid()
    assert read(args["pidfile"]) == str(result["pid"])

    with open(args["pidfile"], "w") as f:
        f.write(f"{os.getpid()}\n")
    # stopping with a pidfile naming another program: that program is left alone
    # (this process survives), the real one found by its command line is stopped
    stopped = run_module(agent_service, dict(args, state="stopped"))
    assert stopped["changed"] and not alive(result["pid"]) and not os.path.exists(args["pidfile"])


def test_a_running_process_without_pidfile_is_adopted(run_module, service):
    args, started = service
    first = run_module(agent_service, args)
    started.append(first["pid"])
    os.unlink(args["pidfile"])
    adopted = run_module(agent_service, args)
    assert adopted["changed"] and adopted["adopted"] and adopted["pid"] == first["pid"]
    assert read(args["pidfile"]) == str(first["pid"])
    run_module(agent_service, dict(args, state="stopped"))


def test_sigkill_after_wait_when_sigterm_is_ignored(run_module, service):
    args, started = service
    stubborn = [sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "while True: time.sleep(1)"]
    args = dict(args, command=stubborn, wait=1)
    first = run_module(agent_service, args)
    started.append(first["pid"])
    time.sleep(0.3)
    stopped = run_module(agent_service, dict(args, state="stopped"))
    assert stopped["changed"] and stopped["killed"] and not alive(first["pid"])


def test_ready_socket_is_waited_for(run_module, service, tmp_path):
    args, started = service
    sock = str(tmp_path / "ready.sock")
    args = dict(args, command=[*LISTENER, sock], ready_socket=sock, wait=10)
    t0 = time.time()
    result = run_module(agent_service, args)
    started.append(result["pid"])
    assert result["changed"] and time.time() - t0 >= 0.5 and os.path.exists(sock)
    run_module(agent_service, dict(args, state="stopped"))


def test_a_command_that_exits_fails_with_its_log(run_module, service):
    args, _started = service
    args = dict(args, command=[sys.executable, "-c", "import sys; sys.stderr.write('bad config: x\\n'); sys.exit(3)"])
    result = run_module(agent_service, args)
    assert result["failed"]
    assert "started as pid" in result["msg"] and "but exited" in result["msg"]
    assert "bad config: x" in result["msg"]
    assert not os.path.exists(args["pidfile"])


def test_environment_directory_and_missing_program(run_module, service, tmp_path):
    args, started = service
    out = tmp_path / "env.txt"
    writer = [sys.executable, "-c", "import os, time\nopen('env.txt', 'w').write(os.environ['X_TEST'] + ' ' + os.getcwd())\n"
              "time.sleep(60)"]
    result = run_module(agent_service, dict(args, command=writer, env={"X_TEST": "hello"}, chdir=str(tmp_path)))
    started.append(result["pid"])
    assert result["changed"]
    deadline = time.time() + 5
    while not out.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert out.read_text() == f"hello {tmp_path}"
    run_module(agent_service, dict(args, command=writer, state="stopped"))
    missing = run_module(agent_service, dict(args, command=["no-such-program-esgf"]))
    assert missing["failed"] and "no-such-program-esgf not found in PATH" in missing["msg"]


def test_the_real_agent_behind_its_shebang(run_module, tmp_path):
    from conftest import ESGF_NM, agent_support

    support = agent_support()
    fed = support.build_federation(tmp_path / "fed", 1, 0, round_s=1.0)
    node = fed.nodes["sn1.test"]
    args = {"name": "esgf-nm", "command": [ESGF_NM, "agent", "--config", str(node.config)],
            "pidfile": str(tmp_path / "agent.pid"), "logfile": str(tmp_path / "agent.log"),
            "ready_socket": node.socket, "wait": 30}
    first = run_module(agent_service, args)
    try:
        assert first["changed"], first
        # The kernel runs the script through its interpreter: cmdline has one more word.
        assert proc_cmdline(first["pid"])[-4:] == args["command"]
        assert fed.status("sn1.test")["hostname"] == "sn1.test"
        again = run_module(agent_service, args)
        assert not again["changed"] and again["pid"] == first["pid"]
    finally:
        stopped = run_module(agent_service, dict(args, state="stopped"))
    assert stopped["changed"] and not stopped["killed"] and not alive(first["pid"])
