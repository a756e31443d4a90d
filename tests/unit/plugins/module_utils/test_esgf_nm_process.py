"""Pidfile and /proc helpers of ``agent_service``."""

from __future__ import annotations

import os
import sys

from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_process import (
    cmdline_matches,
    log_tail,
    proc_cmdline,
    read_pidfile,
)


def test_cmdline_matches_exactly_or_behind_an_interpreter():
    cmd = ["/opt/venv/bin/esgf-nm", "agent", "--config", "/etc/a.yml"]
    assert cmdline_matches(cmd, cmd)
    assert cmdline_matches(["/opt/venv/bin/python3", *cmd], cmd)
    assert cmdline_matches(["/usr/bin/env", "python3", *cmd], cmd)
    assert not cmdline_matches([*cmd[:-1], "/etc/b.yml"], cmd)
    assert not cmdline_matches(["a", "b", "c", *cmd], cmd)
    assert not cmdline_matches(None, cmd)
    assert not cmdline_matches([], cmd)


def test_proc_cmdline_of_this_process_and_of_none():
    mine = proc_cmdline(os.getpid())
    assert mine and os.path.basename(sys.executable).split(".")[0] in os.path.basename(mine[0]) + " ".join(mine)
    assert proc_cmdline(2 ** 22 + 12345) is None


def test_read_pidfile(tmp_path):
    p = tmp_path / "pid"
    assert read_pidfile(str(p)) is None
    p.write_text("123\n")
    assert read_pidfile(str(p)) == 123
    for bad in ("", "abc", "-5", "0"):
        p.write_text(bad)
        assert read_pidfile(str(p)) is None


def test_log_tail(tmp_path):
    p = tmp_path / "log"
    p.write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    assert log_tail(str(p), lines=2) == "line 98\nline 99"
    assert log_tail(str(tmp_path / "missing")) == ""
