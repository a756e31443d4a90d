"""``esgf-nm`` commands that run or talk to the local agent.

``agent`` runs it in the foreground; ``config check`` validates a config file; the others talk
to the running agent over its admin socket (found from ``--socket``, else ``--config``, else
``$ESGF_NM_CONFIG``, else ``/etc/esgf-nm/agent.yml``). Every read command takes ``--json``.
Exit codes: 0 ok, 1 the answer is "no" (unhealthy, refused, failed join), 2 bad usage,
3 the agent cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from esgf_nodemgr.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, CommandError
from esgf_nodemgr.runtime.adminclient import AdminClient, AdminError, AdminUnavailable
from esgf_nodemgr.runtime.config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/esgf-nm/agent.yml"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("agent", help="run the agent in the foreground")
    p.add_argument("--config", required=True, help="agent configuration (YAML)")
    p.set_defaults(func=cmd_agent)

    p = subparsers.add_parser("config", help="agent configuration")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    c = sub.add_parser("check", help="validate a configuration file")
    c.add_argument("file")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_check)

    def client_parser(name: str, help_text: str, json_flag: bool = True) -> Any:
        sp = subparsers.add_parser(name, help=help_text)
        _client_args(sp, json_flag)
        return sp

    client_parser("status", "federation status as this node sees it").set_defaults(
        func=cmd_status)
    client_parser("members", "members and who serves them").set_defaults(func=cmd_members)
    j = client_parser("join", "join the federation (member nodes)")
    j.add_argument("--project", required=True)
    j.add_argument("--standby", action="store_true", help="volunteer as a standby supernode")
    j.add_argument("--wait", type=float, default=30.0,
                   help="seconds to wait for the outcome (0: do not wait)")
    j.set_defaults(func=cmd_join)
    lv = client_parser("leave", "leave the federation (member nodes)")
    lv.add_argument("--wait", type=float, default=30.0)
    lv.set_defaults(func=cmd_leave)
    ep = subparsers.add_parser("epoch", help="the federation's epoch")
    esub = ep.add_subparsers(dest="epoch_command", metavar="SUBCOMMAND")
    show = esub.add_parser("show", help="show the epoch and current round")
    _client_args(show, True)
    show.set_defaults(func=cmd_epoch_show)
    seed = esub.add_parser("seed", help="seed the epoch (supernode #1, once)")
    _client_args(seed, True)
    seed.add_argument("--value", type=float, help="epoch in seconds since 1970 (default: now)")
    seed.add_argument("--force", action="store_true", help="replace an existing epoch")
    seed.set_defaults(func=cmd_epoch_seed)
    client_parser("check", "self-check: agent, ESGF files, database").set_defaults(
        func=cmd_check)
    ro = client_parser("roster", "install a roster (or a whole map) on this node")
    ro.add_argument("file", help="map file (ours or the prototype's) or {\"roster\": ...}")
    ro.set_defaults(func=cmd_roster)
    jo = client_parser("journal", "recent changes recorded by this node")
    jo.add_argument("--limit", type=int, default=20)
    jo.set_defaults(func=cmd_journal)


def client_args(p: argparse.ArgumentParser, json_flag: bool) -> None:
    """Options of every command that talks to the local agent."""
    p.add_argument("--socket", help="admin socket of the agent")
    p.add_argument("--config", help="agent configuration (to find the admin socket)")
    p.add_argument("--timeout", type=float, default=15.0,
                   help="seconds to wait for the agent's answer (default 15)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="machine-readable output")


_client_args = client_args


def client_for(args: argparse.Namespace) -> AdminClient:
    """The admin client for the agent that ``args`` point at."""
    timeout = max(0.1, float(getattr(args, "timeout", 15.0) or 15.0))
    if getattr(args, "socket", None):
        return AdminClient(args.socket, timeout=timeout)
    path = getattr(args, "config", None) or os.environ.get("ESGF_NM_CONFIG") or DEFAULT_CONFIG
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise CommandError(f"cannot find the admin socket: {exc}", EXIT_UNAVAILABLE) from exc
    return AdminClient(cfg.admin_socket, timeout=timeout)


def call(args: argparse.Namespace, method: str, target: str, doc: Any = None
         ) -> Dict[str, Any]:
    """One admin request; agent unreachable -> exit 3, an error answer -> exit 1."""
    return _call(args, method, target, doc)


def _call(args: argparse.Namespace, method: str, target: str, doc: Any = None
          ) -> Dict[str, Any]:
    client = client_for(args)
    try:
        return client.request(method, target, doc)
    except AdminUnavailable as exc:
        raise CommandError(f"{exc} (is the agent running?)", EXIT_UNAVAILABLE) from exc
    except AdminError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _marker(health: str) -> str:
    # Text as well as any colour a terminal might add: unhealthy must read as unhealthy.
    return {"good": "ok", "new": "new", "unhealthy": "WARN"}.get(health, "DOWN")


# -- commands -------------------------------------------------------------------------------
def cmd_agent(args: argparse.Namespace) -> int:
    from esgf_nodemgr.runtime.agent import AgentError
    from esgf_nodemgr.runtime.service import configure_logging, run_agent
    from esgf_nodemgr.runtime.tls import TLSConfigError
    from esgf_nodemgr.store.db import StoreError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    configure_logging(cfg.log_level)
    try:
        run_agent(cfg)
    except (AgentError, TLSConfigError, StoreError, OSError) as exc:
        raise CommandError(f"agent not started: {exc}", EXIT_FAILURE) from exc
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        if args.json:
            _print_json({"valid": False, "problems": exc.problems})
            return EXIT_FAILURE
        raise CommandError(str(exc), EXIT_FAILURE) from exc
    if args.json:
        _print_json({"valid": True, "hostname": cfg.hostname, "role": cfg.role})
    else:
        sys.stdout.write(f"valid: {cfg.role} {cfg.hostname}, port {cfg.port}, "
                         f"round {cfg.core.round_s} s, state in {cfg.state_dir}\n")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    st = _call(args, "GET", "/v1/status")
    if args.json:
        _print_json(st)
        return EXIT_OK
    out = sys.stdout
    if st.get("role") == "member":
        out.write(f"member {st['hostname']}: {'joined' if st.get('joined') else 'not joined'}"
                  f" ({st.get('state')}), project {st.get('project') or '-'}\n")
        out.write(f"served by {st.get('server_hostname') or '-'} (home "
                  f"{st.get('home') or '-'}), round {st.get('round')}\n")
        for a in st.get("attempts", []):
            out.write(f"  tried {a['supernode']}: {a.get('answer') or '-'} {a.get('reason')}\n")
        return EXIT_OK if st.get("joined") else EXIT_FAILURE
    down = [s for s in st["supernodes"] if s["health"] in ("unreachable", "bad")]
    out.write(f"supernode {st['hostname']} (id {st.get('id')}): round {st.get('round')}, "
              f"leader {st.get('leader_hostname') or '-'}, epoch {st.get('epoch')}, "
              f"map {st['map']['digest'][:12]}{_sync_note(st['map'])}\n")
    out.write(f"federation: {len(st['supernodes'])} supernodes ({len(down)} down), "
              f"{len(st['members'])} members\n\n")
    local = st.get("local_links", {})
    rows = [[s["id"], s["hostname"], f"{_marker(s['health'])} {s['health']}",
             str(s["members"]), str(s["adopted"]),
             "-" if s["me"] else _fmt_ms(local.get(s["hostname"], {}).get("rtt_ms"))]
            for s in st["supernodes"]]
    out.write(_table(rows, ["ID", "SUPERNODE", "HEALTH", "MEMBERS", "ADOPTED",
                            "RTT"]) + "\n")
    if st["members"]:
        out.write("\n" + _member_table(st["members"]) + "\n")
    if st.get("timeline"):
        out.write("\nrecent decisions:\n")
        for t in st["timeline"][:5]:
            out.write(f"  {t['summary']} (by {t['leader']})\n")
    return EXIT_FAILURE if down else EXIT_OK


def _sync_note(m: Dict[str, Any]) -> str:
    """' (same on all 2 peers)' or ' (differs from sn3 at its last answer)'."""
    if "peers_differ" not in m:  # an agent older than this command
        return ""
    if m["peers_differ"]:
        return f" (differs from {', '.join(m['peers_differ'])} at their last answer)"
    return f" (same on all {len(m['peers_in_sync'])} peers)"


def _fmt_ms(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _member_table(members: List[Dict[str, Any]]) -> str:
    rows = [[m["id"], m["hostname"], m["project"], "yes" if m["standby"] else "no",
             m.get("server_hostname") or "UNSERVED",
             "adopted" if m["adopted"] else "home", f"{_marker(m['health'])} {m['health']}"]
            for m in members]
    return _table(rows, ["ID", "MEMBER", "PROJECT", "STANDBY", "SERVED BY", "", "HEALTH"])


def cmd_members(args: argparse.Namespace) -> int:
    st = _call(args, "GET", "/v1/status")
    members = st.get("members", [])
    if args.json:
        _print_json(members)
    elif st.get("role") == "member":
        sys.stdout.write("members hold only their own slice of the map; ask a supernode\n")
    else:
        sys.stdout.write(_member_table(members) + "\n" if members else "no members\n")
    return EXIT_OK


def _wait_member(args: argparse.Namespace, done: List[str]) -> Dict[str, Any]:
    deadline = time.monotonic() + max(0.0, args.wait)
    st = _call(args, "GET", "/v1/status")
    while st.get("state") not in done and time.monotonic() < deadline:
        time.sleep(0.2)
        st = _call(args, "GET", "/v1/status")
    return st


def cmd_join(args: argparse.Namespace) -> int:
    answer = _call(args, "POST", "/v1/join", {"project": args.project,
                                               "standby": bool(args.standby)})
    st = _wait_member(args, ["joined", "failed"]) if args.wait > 0 else answer.get("data", {})
    ok = answer.get("status") == "unchanged" or st.get("state") == "joined"
    if args.json:
        _print_json({"answer": answer, "status": st})
    elif ok:
        sys.stdout.write(f"joined: served by {st.get('server_hostname')} "
                         f"(member id {st.get('member_id')})\n")
    else:
        sys.stdout.write(f"join {st.get('state')}: " + "; ".join(
            f"{a['supernode']}: {a.get('answer')} ({a.get('reason')})"
            for a in st.get("attempts", [])) + "\n")
    return EXIT_OK if ok else EXIT_FAILURE


def cmd_leave(args: argparse.Namespace) -> int:
    answer = _call(args, "POST", "/v1/leave")
    st = _wait_member(args, ["left", "failed", "idle"]) if args.wait > 0 else {}
    ok = answer.get("status") == "unchanged" or st.get("state") == "left"
    if args.json:
        _print_json({"answer": answer, "status": st})
    else:
        sys.stdout.write("left the federation\n" if ok else
                         f"leave {st.get('state')}: {answer.get('detail')}\n")
    return EXIT_OK if ok else EXIT_FAILURE


def cmd_epoch_show(args: argparse.Namespace) -> int:
    doc = _call(args, "GET", "/v1/epoch")
    if args.json:
        _print_json(doc)
    else:
        sys.stdout.write(f"epoch {doc.get('epoch')}, round {doc.get('round')}, "
                         f"round length {doc.get('round_s')} s\n")
    return EXIT_OK if doc.get("epoch") is not None else EXIT_FAILURE


def cmd_epoch_seed(args: argparse.Namespace) -> int:
    body: Dict[str, Any] = {"force": bool(args.force)}
    if args.value is not None:
        body["value"] = args.value
    doc = _call(args, "POST", "/v1/epoch/seed", body)
    if args.json:
        _print_json(doc)
    else:
        data = doc.get("data", {})
        sys.stdout.write(f"{doc.get('detail')}: epoch {data.get('epoch')}\n")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    doc = _call(args, "GET", "/v1/check")
    if args.json:
        _print_json(doc)
    else:
        for c in doc.get("checks", []):
            sys.stdout.write(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}\n")
    return EXIT_OK if doc.get("ok") else EXIT_FAILURE


def cmd_roster(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {args.file}: {exc}") from exc
    answer = _call(args, "POST", "/v1/roster", doc)
    if args.json:
        _print_json(answer)
    else:
        sys.stdout.write(f"{answer.get('status')}: {answer.get('detail')}\n")
    return EXIT_OK


def cmd_journal(args: argparse.Namespace) -> int:
    doc = _call(args, "GET", f"/v1/journal?limit={max(1, min(args.limit, 1000))}")
    entries = doc.get("entries", [])
    if args.json:
        _print_json(entries)
    else:
        for e in entries:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"]))
            sys.stdout.write(f"{e['seq']:>6} {stamp} {e['summary']}\n")
    return EXIT_OK
