# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""Running the agent's command line (``esgf-nm ... --json``) from a module.

The agent's CLI is the modules' API (docs/ansible-design.md): the federation logic lives once,
in the agent, and the modules stay thin. This file holds what every module shares: the common
options (``esgf_nm``, ``socket``, ``timeout``), one place where the CLI's exit codes become
clear failures, and JSON parsing with a useful error.

Exit codes of ``esgf-nm`` (the contract):

* 0: ok, stdout holds the JSON answer
* 1: the answer is "no" (invalid, refused, join failed, not seeded)
* 2: bad usage or unreadable input (a bug in the module, or bad parameters)
* 3: the agent cannot be reached
"""

from __future__ import annotations

import json
import os

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
# Exit codes of coreutils ``timeout`` (124: timed out; 137: killed after --kill-after).
EXIT_TIMED_OUT = (124, 137)

DEFAULT_ESGF_NM = "/opt/esgf-nm/venv/bin/esgf-nm"
DEFAULT_SOCKET = "/run/esgf-nm/admin.sock"
DEFAULT_TIMEOUT = 30.0
#: Seconds ``timeout`` waits after SIGTERM before SIGKILL.
KILL_AFTER_S = 5

#: The options every module that talks to the agent takes (doc fragment ``esgf.nodemgr.esgf_nm``).
ESGF_NM_ARGSPEC = dict(
    esgf_nm=dict(type="path", default=DEFAULT_ESGF_NM),
    socket=dict(type="path", default=DEFAULT_SOCKET),
    timeout=dict(type="float", default=DEFAULT_TIMEOUT),
)

#: Longest piece of CLI output quoted in a failure message.
MAX_QUOTED = 2000


def esgf_nm_argument_spec(**extra):
    """The common options plus ``extra`` (a new dict each call: AnsibleModule mutates it)."""
    spec = dict((k, dict(v)) for k, v in ESGF_NM_ARGSPEC.items())
    spec.update(extra)
    return spec


def _clip(text):
    text = (text or "").strip()
    if len(text) > MAX_QUOTED:
        return text[:MAX_QUOTED] + " [...]"
    return text


def cli_message(stderr, stdout=""):
    """The CLI's own message: its stderr without the ``esgf-nm:`` prefix, else its stdout."""
    lines = []
    for line in (stderr or "").splitlines():
        line = line.strip()
        if line.startswith("esgf-nm: "):
            line = line[len("esgf-nm: "):]
        if line:
            lines.append(line)
    return _clip("\n".join(lines) or stdout)


def exit_code_message(rc, command, stderr, stdout="", socket=None, timeout=None):
    """The failure message for ``esgf-nm COMMAND`` ending with exit code ``rc`` (not 0).

    ``command`` is what was run, without paths or secrets (e.g. ``"epoch seed"``).
    """
    detail = cli_message(stderr, stdout)
    suffix = (": " + detail) if detail else ""
    if rc == EXIT_FAILURE:
        return "esgf-nm {}: {}".format(command, detail or "the agent said no (exit code 1)")
    if rc == EXIT_USAGE:
        return (f"esgf-nm {command}: bad usage or unreadable input (exit code 2; a bad parameter or a bug "
                f"in the module){suffix}")
    if rc == EXIT_UNAVAILABLE:
        where = socket or "its admin socket"
        return f"esgf-nm {command}: agent not running at {where}{suffix}"
    if rc in EXIT_TIMED_OUT and timeout:
        return f"esgf-nm {command}: no answer within {_fmt_seconds(timeout)} s (timeout)"
    if rc < 0 or rc > 128:
        return f"esgf-nm {command}: killed by a signal (exit code {rc}){suffix}"
    return f"esgf-nm {command}: unexpected exit code {rc}{suffix}"


def _fmt_seconds(value):
    return (f"{value:g}") if value is not None else "?"


def parse_json(command, stdout):
    """The JSON document ``esgf-nm COMMAND`` printed; ``ValueError`` with a clear message."""
    text = (stdout or "").strip()
    if not text:
        raise ValueError(f"esgf-nm {command} printed nothing where JSON was expected")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"esgf-nm {command} printed something that is not JSON ({exc}): {_clip(text)[:200]}") from None


class CliResult:
    """What one run of ``esgf-nm`` gave: exit code, parsed JSON (or None), raw streams."""

    def __init__(self, rc, doc, stdout, stderr):
        self.rc = rc
        self.doc = doc
        self.stdout = stdout
        self.stderr = stderr


class EsgfNm:
    """Runs ``esgf-nm`` for ``module`` (which has the common options) with ``run_command``."""

    def __init__(self, module):
        self.module = module
        self.path = module.params["esgf_nm"]
        self.socket = module.params.get("socket")
        self.timeout = module.params.get("timeout")

    def _check_installed(self):
        if not os.path.exists(self.path):
            self.module.fail_json(msg=f"esgf-nm not found at {self.path} (is the agent installed on this node? "
                                      "set the esgf_nm option)")
        if not os.access(self.path, os.X_OK):
            self.module.fail_json(msg=f"esgf-nm at {self.path} is not executable")

    def argv(self, args, with_socket=True, extra_time=0.0):
        """The command line for ``args``, bounded by ``timeout`` (+ ``extra_time``) seconds."""
        argv = [self.path, *list(args)]
        if with_socket and self.socket:
            argv += ["--socket", self.socket]
        if self.timeout and self.timeout > 0:
            timeout_bin = self.module.get_bin_path("timeout")
            if timeout_bin:
                limit = self.timeout + max(0.0, extra_time)
                argv = [timeout_bin, f"--kill-after={KILL_AFTER_S}", f"{limit:g}", *argv]
        return argv

    def run(self, command, args, ok=(EXIT_OK,), json_output=True, with_socket=True, extra_time=0.0):
        """Run ``esgf-nm ARGS``; fail the module unless the exit code is in ``ok``.

        ``command`` names the call in messages (``"epoch seed"``). Returns a CliResult whose
        ``doc`` is the parsed stdout when ``json_output`` (parsed for every ``ok`` code).
        """
        self._check_installed()
        argv = self.argv(args, with_socket=with_socket, extra_time=extra_time)
        # LANG=C: messages we quote are the CLI's own (English) text.
        rc, stdout, stderr = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc not in ok:
            self.module.fail_json(
                msg=exit_code_message(rc, command, stderr, stdout, socket=self.socket,
                                      timeout=(self.timeout + max(0.0, extra_time)) if self.timeout else None),
                rc=rc, stderr=_clip(stderr))
        doc = None
        if json_output and rc != EXIT_OK and not (stdout or "").strip():
            # An accepted "no" without a JSON document (for example the agent refused the
            # request outright): the message is on stderr.
            self.module.fail_json(msg=exit_code_message(rc, command, stderr, stdout, socket=self.socket),
                                  rc=rc, stderr=_clip(stderr))
        if json_output:
            try:
                doc = parse_json(command, stdout)
            except ValueError as exc:
                self.module.fail_json(msg=str(exc), rc=rc, stderr=_clip(stderr))
        return CliResult(rc, doc, stdout, stderr)

    def status(self, allow_unreachable=False):
        """The agent's status (``esgf-nm status --json``); None if unreachable and that is allowed."""
        ok = (EXIT_OK, EXIT_UNAVAILABLE) if allow_unreachable else (EXIT_OK,)
        res = self.run("status", ["status", "--json"], ok=ok, json_output=False)
        if res.rc != EXIT_OK:
            return None
        try:
            doc = parse_json("status", res.stdout)
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
        if not isinstance(doc, dict):
            self.module.fail_json(msg="esgf-nm status printed JSON that is not an object")
        return doc
