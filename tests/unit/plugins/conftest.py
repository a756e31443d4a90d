"""Shared fixtures for the module and module_utils tests.

``run_module`` runs a module's ``main()`` in this process, the way Ansible would hand it its
arguments, and returns the JSON result it printed. ``federation`` starts a real federation of
agent processes (real mTLS, real admin sockets) from the agent's own test support.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
AGENT_TESTS = os.path.join(REPO, "agent", "tests")
#: The agent's CLI in the dev venv (the agent is installed there, editable).
ESGF_NM = os.path.join(os.path.dirname(sys.executable), "esgf-nm")


@pytest.fixture
def run_module(capsys, tmp_path):
    """``run_module(module, args, check_mode=False, diff=False) -> result dict``."""

    def run(module, args, check_mode=False, diff=False):
        full = dict(args)
        full["_ansible_check_mode"] = check_mode
        full["_ansible_diff"] = diff
        full["_ansible_remote_tmp"] = str(tmp_path / "remote_tmp")
        full["_ansible_keep_remote_files"] = False
        capsys.readouterr()
        with patch_module_args(full), pytest.raises(SystemExit) as exit_info:
            module.main()
        out = capsys.readouterr().out
        try:
            result = json.loads(out)
        except ValueError:
            raise AssertionError(f"module printed no JSON result: {out!r}") from None
        assert bool(result.get("failed")) == (exit_info.value.code != 0), result
        return result

    return run


def agent_support():
    """The agent's test support package (``support.federation``), or skip without it."""
    if not os.path.isdir(AGENT_TESTS):
        pytest.skip("agent/tests not found: the federation tests need the agent's test support")
    if AGENT_TESTS not in sys.path:
        sys.path.insert(0, AGENT_TESTS)
    if not os.path.exists(ESGF_NM):
        pytest.skip(f"esgf-nm is not installed next to {sys.executable} (run make setup)")
    from support import federation

    return federation
