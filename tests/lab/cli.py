"""Command line of the lab: `python -m tests.lab <command> ...` (run from the repository root).

Logs what it does on stderr; results (paths, status) go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from .lab import DEFAULT_NAME, DEFAULT_PIDFILE, DEFAULT_SUBNET, Lab, destroy_all, leftovers
from .system import LabError, LabUnavailable, check_subnet, missing_requirements

log = logging.getLogger("esgf_lab")


def _out(text: object) -> None:
    sys.stdout.write(f"{text}\n")


def _csv(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.lab",
        description="esgf-nm multi-host lab (needs root). A command for run/ssh/exec/agent start|restart goes after --.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def named(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--name", default=os.environ.get("ESGF_LAB_NAME", DEFAULT_NAME), help="lab name (default %(default)s; env ESGF_LAB_NAME)")
        return sp

    def creating(sp: argparse.ArgumentParser) -> None:
        named(sp)
        sp.add_argument("-n", "--count", type=int, default=3, help="number of hosts node1..nodeN (default 3)")
        sp.add_argument("--hosts", type=_csv, help="host names instead of --count, comma-separated")
        sp.add_argument("--subnet", help=f"lab subnet (default env ESGF_LAB_SUBNET or {DEFAULT_SUBNET})")
        sp.add_argument("--root", help="lab directory (default /run/esgf-nm-lab/<name>)")
        sp.add_argument("--supernodes", type=_csv, default=[], help="inventory group supernodes, comma-separated")
        sp.add_argument("--members", type=_csv, default=[], help="inventory group members, comma-separated")
        sp.add_argument("--no-verify", action="store_true", help="skip the SSH check of every host")

    sp = sub.add_parser("check", help="can the lab run here? (root, binaries, subnet free)")
    sp.add_argument("--subnet", default=os.environ.get("ESGF_LAB_SUBNET", DEFAULT_SUBNET))
    creating(sub.add_parser("create", help="create and start a lab; it keeps running until destroy"))
    sp = sub.add_parser("run", help="create a lab, run COMMAND with LAB_* / ANSIBLE_* env set, always destroy")
    creating(sp)
    sp = named(sub.add_parser("destroy", help="tear a lab down (or --all: every lab and any leftovers)"))
    sp.add_argument("--all", action="store_true", help="every registered lab, plus a sweep of anything named enml-*")
    sp.add_argument("--keep-files", action="store_true", help="keep the lab directory (logs, keys)")
    sub.add_parser("list", help="registered labs")
    named(sub.add_parser("status", help="hosts, addresses, anchors, cuts, agents (JSON)"))
    named(sub.add_parser("inventory", help="print the inventory path"))
    named(sub.add_parser("env", help="print shell exports: ANSIBLE_CONFIG, ANSIBLE_INVENTORY, LAB_*"))
    sp = named(sub.add_parser("ssh", help="ssh into a host (interactive, or run a command)"))
    sp.add_argument("host")
    sp = named(sub.add_parser("exec", help="run a command in a host's namespaces (nsenter, no ssh)"))
    sp.add_argument("host")
    sp = named(sub.add_parser("agent", help="agent faults: status|stop|kill|pause|resume|restart|start"))
    sp.add_argument("action", choices=["status", "stop", "kill", "pause", "resume", "restart", "start"])
    sp.add_argument("host")
    sp.add_argument("--pidfile", default=DEFAULT_PIDFILE, help="pidfile inside the host (default %(default)s)")
    sp.add_argument("--timeout", type=float, default=10.0, help="stop/restart: SIGKILL after this many seconds")
    for verb, helptext in (("cut", "drop all traffic between two hosts"), ("heal", "undo a cut (heal --all: every cut)")):
        sp = named(sub.add_parser(verb, help=helptext))
        if verb == "heal":
            sp.add_argument("--all", action="store_true")
            sp.add_argument("hosts", nargs="*")
        else:
            sp.add_argument("hosts", nargs=2)
    sp = named(sub.add_parser("isolate", help="cut a host from all others (the controller keeps SSH)"))
    sp.add_argument("host")
    sp = named(sub.add_parser("rejoin", help="heal every cut of a host and its isolation"))
    sp.add_argument("host")
    sp = named(sub.add_parser("partition", help="split hosts into groups: partition a,b c,d (others: one more group)"))
    sp.add_argument("groups", nargs="+", type=_csv)
    named(sub.add_parser("heal-all", help="undo every cut and isolation"))
    return p


def _create(args: argparse.Namespace, *, keep: bool) -> Lab:
    hosts: int | list[str] = args.hosts or args.count
    groups = {"supernodes": args.supernodes, "members": args.members}
    return Lab.create(
        hosts, name=args.name, subnet=args.subnet, root=args.root, groups=groups, cleanup_on_exit=not keep, verify=not args.no_verify
    )


def _env(lab: Lab) -> dict[str, str]:
    return {
        "ANSIBLE_CONFIG": str(lab.ansible_cfg),
        "ANSIBLE_INVENTORY": str(lab.inventory),
        "LAB_NAME": lab.name,
        "LAB_ROOT": str(lab.root),
        "LAB_INVENTORY": str(lab.inventory),
        "LAB_SSH_KEY": str(lab.client_key),
        "LAB_KNOWN_HOSTS": str(lab.known_hosts),
    }


def _status(lab: Lab) -> dict[str, object]:
    from .system import proc_start_time

    hosts = []
    for h in lab.hosts:
        alive = bool(h.anchor_pid) and proc_start_time(h.anchor_pid) == h.anchor_start
        agent: int | str | None = None
        if alive:
            try:
                agent = lab.agent_pid(h.name)
            except LabError as exc:
                agent = str(exc)
        hosts.append({"name": h.name, "address": h.address, "netns": h.netns, "anchor_pid": h.anchor_pid, "anchor_alive": alive, "agent_pid": agent})
    return {
        "name": lab.name,
        "root": str(lab.root),
        "subnet": lab.state.subnet,
        "controller": lab.state.controller,
        "inventory": str(lab.inventory),
        "hosts": hosts,
        "cuts": lab.state.cuts,
        "isolated": lab.state.isolated,
    }


def dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "check":
        problems = missing_requirements()
        if not problems:
            try:
                check_subnet(args.subnet)
            except LabError as exc:
                problems.append(str(exc))
        for problem in problems:
            _out(f"NOT OK: {problem}")
        if not problems:
            _out(f"OK: the lab can run here (subnet {args.subnet} is free)")
        return 1 if problems else 0
    if cmd == "create":
        lab = _create(args, keep=True)
        _out(lab.inventory)
        return 0
    if cmd == "run":
        argv = list(args.argv)
        if not argv:
            raise LabError("run: give a command after --")
        lab = _create(args, keep=False)
        try:
            log.info("running: %s", " ".join(argv))
            return subprocess.run(argv, env={**os.environ, **_env(lab)}, check=False).returncode
        finally:
            lab.destroy()
    if cmd == "destroy":
        if args.all:
            errors = destroy_all()
            for e in errors:
                log.error("%s", e)
            return 1 if errors else 0
        Lab.open(args.name).destroy(keep_files=args.keep_files)
        return 0
    if cmd == "list":
        for name in Lab.running():
            _out(name)
        return 0

    lab = Lab.open(args.name)
    if cmd == "status":
        _out(json.dumps(_status(lab), indent=2))
    elif cmd == "inventory":
        _out(lab.inventory)
    elif cmd == "env":
        for k, v in _env(lab).items():
            _out(f"export {k}={v}")
    elif cmd == "ssh":
        argv = [*lab.ssh_argv(args.host, tty=not args.argv), *args.argv]
        os.execvp(argv[0], argv)
    elif cmd == "exec":
        proc = lab.exec(args.host, list(args.argv) or ["/bin/sh", "-c", "hostname"], check=False, timeout=3600)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return proc.returncode
    elif cmd == "agent":
        return _agent(lab, args)
    elif cmd == "cut":
        lab.cut(*args.hosts)
    elif cmd == "heal":
        if args.all:
            lab.heal_all()
        elif len(args.hosts) == 2:
            lab.heal(*args.hosts)
        else:
            raise LabError("heal: give two hosts, or --all")
    elif cmd == "heal-all":
        lab.heal_all()
    elif cmd == "isolate":
        lab.isolate(args.host)
    elif cmd == "rejoin":
        lab.rejoin(args.host)
    elif cmd == "partition":
        lab.partition(*args.groups)
    return 0


def _agent(lab: Lab, args: argparse.Namespace) -> int:
    action, host, pidfile = args.action, args.host, args.pidfile
    if action == "status":
        pid = lab.agent_pid(host, pidfile)
        _out(f"{host}: agent {'running, pid ' + str(pid) if pid else 'not running'} ({pidfile})")
        return 0 if pid else 3
    if action == "stop":
        lab.stop_agent(host, pidfile, timeout=args.timeout)
    elif action == "kill":
        lab.kill_agent(host, pidfile)
    elif action == "pause":
        lab.pause_agent(host, pidfile)
    elif action == "resume":
        lab.resume_agent(host, pidfile)
    elif action == "start":
        argv = list(args.argv)
        if not argv:
            raise LabError("agent start: give the command after --")
        _out(lab.start_agent(host, argv, pidfile))
    elif action == "restart":
        _out(lab.restart_agent(host, pidfile, list(args.argv) or None, timeout=args.timeout))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # Everything after the first "--" is a command for `run`, `ssh`, `exec`, `agent start|restart`.
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        rest = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = build_parser().parse_args(argv)
    args.argv = rest
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="lab: %(message)s", stream=sys.stderr)
    # ^C raises KeyboardInterrupt; SIGTERM/SIGHUP exit normally too, so a half-created lab
    # (or a `run` lab) is torn down by create's error path, `run`'s finally, or atexit.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    t0 = time.monotonic()
    try:
        rc = dispatch(args)
    except LabUnavailable as exc:
        log.error("%s", exc)
        return 2
    except LabError as exc:
        log.error("error: %s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    if args.command in ("create", "destroy", "run"):
        log.info("%s took %.2fs", args.command, time.monotonic() - t0)
        if args.command == "destroy" and not args.all:
            left = leftovers(args.name)
            if left:
                log.error("left behind: %s", "; ".join(left))
                return 1
    return rc
