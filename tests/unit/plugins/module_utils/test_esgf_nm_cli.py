"""Exit-code mapping and JSON parsing of the CLI helper (the contract's exit-code table)."""

from __future__ import annotations

import pytest
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import (
    ESGF_NM_ARGSPEC,
    cli_message,
    esgf_nm_argument_spec,
    exit_code_message,
    parse_json,
)


@pytest.mark.parametrize("rc, stderr, expected", [
    (1, "esgf-nm: roster version 1 is not newer than the installed version 2\n",
     "esgf-nm roster: roster version 1 is not newer than the installed version 2"),
    (1, "", "esgf-nm roster: the agent said no (exit code 1)"),
    (2, "esgf-nm: cannot read /x: No such file\n",
     "esgf-nm roster: bad usage or unreadable input (exit code 2; a bad parameter or a bug in the module): cannot read /x: No such file"),
    (3, "esgf-nm: cannot reach the agent at /s: [Errno 2] (is the agent running?)\n",
     "esgf-nm roster: agent not running at /run/a.sock: cannot reach the agent at /s: [Errno 2] (is the agent running?)"),
    (124, "", "esgf-nm roster: no answer within 30 s (timeout)"),
    (-9, "", "esgf-nm roster: killed by a signal (exit code -9)"),
    (5, "boom", "esgf-nm roster: unexpected exit code 5: boom"),
])
def test_exit_codes_become_clear_messages(rc, stderr, expected):
    assert exit_code_message(rc, "roster", stderr, socket="/run/a.sock", timeout=30.0) == expected


def test_cli_message_falls_back_to_stdout_and_is_clipped():
    assert cli_message("", "plain text") == "plain text"
    assert cli_message("x" * 5000).endswith("[...]")


def test_parse_json_errors_say_what_was_printed():
    assert parse_json("status", '{"a": 1}\n') == {"a": 1}
    with pytest.raises(ValueError, match="printed nothing"):
        parse_json("status", "  ")
    with pytest.raises(ValueError, match=r"not JSON.*hello"):
        parse_json("status", "hello")


def test_argument_spec_is_a_fresh_copy_with_extras():
    spec = esgf_nm_argument_spec(src=dict(type="path", required=True))
    assert set(spec) == {"esgf_nm", "socket", "timeout", "src"}
    spec["socket"]["default"] = "changed"
    assert ESGF_NM_ARGSPEC["socket"]["default"] == "/run/esgf-nm/admin.sock"
