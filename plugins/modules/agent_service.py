#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: agent_service
short_description: Run the agent as a detached process with a pidfile (hosts without systemd)
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - The documented fallback where the host does not run systemd (containers, the lab). It starts,
    stops or restarts a long-running command as a detached process (new session, stdin from
    C(/dev/null), stdout and stderr appended to O(logfile)) and keeps its pid in O(pidfile).
  - A process counts as running only when the pid in O(pidfile) is alive and its
    C(/proc/<pid>/cmdline) is O(command) (possibly behind the interpreter of a script's
    shebang line); a stale pidfile whose pid was reused by another program is never signalled.
    When the pidfile is missing or stale but a process running O(command) exists, that process
    is adopted (its pid is written to O(pidfile)) instead of starting a second one.
  - Works for any command; the agent role uses it for C(esgf-nm agent --config ...).
options:
  name:
    description: A name for the service, used in messages.
    type: str
    required: true
  command:
    description:
      - The command to run, as a list (no shell). A relative program name is looked up in C(PATH).
    type: list
    elements: str
  pidfile:
    description: Where the pid is kept (written atomically).
    type: path
    required: true
  logfile:
    description:
      - Where stdout and stderr of the process are appended (required to start).
    type: path
  state:
    description:
      - V(started) starts the process unless it runs; V(stopped) stops it (SIGTERM, then SIGKILL
        after O(wait) seconds) and removes O(pidfile); V(restarted) stops it if it runs and starts it, always a change.
    type: str
    choices: [started, stopped, restarted]
    default: started
  chdir:
    description: Working directory of the process (default C(/)).
    type: path
  env:
    description: Environment variables added to the module's environment for the process.
    type: dict
    default: {}
  user:
    description:
      - Run the process as this user (name or uid), with its primary and supplementary groups.
      - Needs root (C(become)); when the module already runs as that user, nothing changes.
    type: str
  umask:
    description: Umask of the process, as an octal string.
    type: str
    default: "0022"
  wait:
    description:
      - Seconds to wait for the process to be up after a start (it must stay alive for a
        second, or until O(ready_socket) accepts connections), and to go away after SIGTERM on a stop.
    type: float
    default: 15
  ready_socket:
    description:
      - A Unix socket the process listens on once ready (the agent's admin socket); a start waits
        until it accepts a connection.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be started or stopped; touches no process and no file.
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Linux (C(/proc)).
notes:
  - Where systemd runs, use a unit instead (the agent role does).
  - Nothing restarts the process if it dies; rerunning the task with O(state=started) does.
seealso:
  - module: ansible.builtin.systemd_service
'''

EXAMPLES = r'''
- name: Start the agent without systemd
  esgf.nodemgr.agent_service:
    name: esgf-nm
    command: [/opt/esgf-nm/venv/bin/esgf-nm, agent, --config, /etc/esgf-nm/agent.yml]
    pidfile: /run/esgf-nm/agent.pid
    logfile: /var/log/esgf-nm/agent.log
    user: esgf-nm
    ready_socket: /run/esgf-nm/admin.sock
    wait: 30

- name: Restart it (handler)
  esgf.nodemgr.agent_service:
    name: esgf-nm
    command: [/opt/esgf-nm/venv/bin/esgf-nm, agent, --config, /etc/esgf-nm/agent.yml]
    pidfile: /run/esgf-nm/agent.pid
    logfile: /var/log/esgf-nm/agent.log
    state: restarted

- name: Stop it
  esgf.nodemgr.agent_service:
    name: esgf-nm
    command: [/opt/esgf-nm/venv/bin/esgf-nm, agent, --config, /etc/esgf-nm/agent.yml]
    pidfile: /run/esgf-nm/agent.pid
    state: stopped
'''

RETURN = r'''
pid:
  description: Pid of the running process after the run (null when stopped, or in check mode before a start).
  returned: always
  type: int
  sample: 12345
previous_pid:
  description: Pid of the process that ran before the run (null when none ran).
  returned: always
  type: int
  sample: 12001
state:
  description: V(started) or V(stopped) (after the run; in check mode, what it would be).
  returned: always
  type: str
  sample: started
adopted:
  description: Whether a running process was found without a valid pidfile and adopted.
  returned: always
  type: bool
  sample: false
killed:
  description: Whether a stop had to use SIGKILL because SIGTERM was not enough within O(wait).
  returned: always
  type: bool
  sample: false
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_process import (
    alive,
    find_process,
    log_tail,
    read_pidfile,
    remove_pidfile,
    spawn_detached,
    stop_process,
    wait_started,
    write_pidfile,
)


def resolve_command(module, command):
    """``command`` with its program as an absolute path (as ``/proc/<pid>/cmdline`` will show it)."""
    program = command[0]
    if os.path.isabs(program):
        if not os.access(program, os.X_OK):
            module.fail_json(msg="{}: {} is not an executable file".format(module.params["name"], program))
        return list(command)
    if os.sep in program:
        base = module.params["chdir"] or os.getcwd()
        return [os.path.normpath(os.path.join(base, program)), *list(command[1:])]
    path = module.get_bin_path(program)
    if path is None:
        module.fail_json(msg="{}: {} not found in PATH".format(module.params["name"], program))
    return [path, *list(command[1:])]


def current_pid(module, p, command):
    """``(pid, pidfile_pid, adopted)``: the running process, from the pidfile or found by its command."""
    try:
        recorded = read_pidfile(p["pidfile"])
    except OSError as exc:
        module.fail_json(msg="{}: cannot read pidfile {}: {}".format(p["name"], p["pidfile"], exc))
    if alive(recorded, command):
        return recorded, recorded, False
    found = find_process(command)
    if found:
        return found[0], recorded, True
    return None, recorded, False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str"),
            pidfile=dict(type="path", required=True),
            logfile=dict(type="path"),
            state=dict(type="str", choices=["started", "stopped", "restarted"], default="started"),
            chdir=dict(type="path"),
            env=dict(type="dict", default={}),
            user=dict(type="str"),
            umask=dict(type="str", default="0022"),
            wait=dict(type="float", default=15.0),
            ready_socket=dict(type="path"),
        ),
        required_if=[("state", "started", ("command", "logfile")),
                     ("state", "restarted", ("command", "logfile"))],
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    if not p["command"]:
        module.fail_json(msg=f"{name}: command is required and must not be empty")
    if p["wait"] < 0:
        module.fail_json(msg=f"{name}: wait must be 0 or more seconds")
    try:
        umask = int(p["umask"], 8)
    except ValueError:
        module.fail_json(msg="{}: umask must be an octal number such as 0022, got {!r}".format(name, p["umask"]))
    command = resolve_command(module, p["command"])
    env = dict((str(k), str(v)) for k, v in p["env"].items())

    pid, recorded, adopted = current_pid(module, p, command)
    result = dict(changed=False, pid=pid, previous_pid=pid, state="started" if pid else "stopped",
                  adopted=False, killed=False)

    if p["state"] in ("stopped", "restarted") and (pid is not None or recorded is not None):
        if not module.check_mode:
            if pid is not None:
                try:
                    result["killed"] = stop_process(pid, command, p["wait"])
                except OSError as exc:
                    module.fail_json(msg=f"{name}: cannot stop process {pid}: {exc}", **result)
            try:
                remove_pidfile(p["pidfile"])
            except OSError as exc:
                module.fail_json(msg="{}: cannot remove pidfile {}: {}".format(name, p["pidfile"], exc), **result)
        result.update(changed=True, pid=None, state="stopped")
        pid = None
    if p["state"] == "stopped":
        module.exit_json(**result)

    if pid is not None:  # started, and it runs
        if adopted:
            result.update(changed=True, adopted=True)
            if not module.check_mode:
                try:
                    write_pidfile(module, p["pidfile"], pid)
                except OSError as exc:
                    module.fail_json(msg="{}: cannot write pidfile {}: {}".format(name, p["pidfile"], exc), **result)
        module.exit_json(**result)

    result.update(changed=True, state="started")
    if module.check_mode:
        module.exit_json(**result)
    for path, what in ((p["pidfile"], "pidfile"), (p["logfile"], "logfile")):
        if not os.path.isdir(os.path.dirname(path) or "."):
            module.fail_json(msg=f"{name}: the directory of the {what} {path} does not exist", **result)
    try:
        new_pid = spawn_detached(command, p["logfile"], chdir=p["chdir"] or "/", env=env, user=p["user"],
                                 umask=umask)
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"{name}: {exc}", **result)
    try:
        write_pidfile(module, p["pidfile"], new_pid)
    except OSError as exc:
        module.fail_json(msg=f"{name}: started as pid {new_pid} but cannot write pidfile {p['pidfile']}: {exc}",
                         pid=new_pid)
    result["pid"] = new_pid
    why = wait_started(new_pid, command, p["wait"], p["ready_socket"])
    if why is not None:
        if why == "exited":
            result.update(pid=None, state="stopped")
            remove_pidfile(p["pidfile"])
        tail = log_tail(p["logfile"])
        module.fail_json(msg=f"{name}: started as pid {new_pid} but {why}; last lines of {p['logfile']}:\n"
                         f"{tail or '(empty)'}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
