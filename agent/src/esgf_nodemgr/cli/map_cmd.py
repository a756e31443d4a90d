"""``esgf-nm map``: build, check, show and convert node maps (ours or the prototype's).

Sub-commands::

    esgf-nm map generate HOST... [--existing MAP] [--capacity N] [-o OUT] [--legacy]
    esgf-nm map add-supernode MAP HOST [-o OUT] [--legacy]
    esgf-nm map check MAP
    esgf-nm map show MAP [--json]
    esgf-nm map convert MAP --to ours|legacy [-o OUT]

``MAP`` is a file in either format (detected from its content) or ``-`` for stdin. ``HOST`` is
``host``, ``host:port``, ``host=address`` or ``host=address:port`` (an IPv6 address in
brackets: ``host=[2001:db8::1]:7443``). Output goes to stdout, or atomically to ``-o OUT``;
our format unless ``--legacy``. Exit codes: 0 done (or valid), 1 the map is not valid (not JSON,
wrong structure), 2 bad arguments or a file that cannot be read or written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from esgf_nodemgr.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from esgf_nodemgr.core import legacy, roster, view
from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.errors import MapFormatError, RosterError
from esgf_nodemgr.store.files import atomic_write

#: Refuse map files larger than this (a map of 10 000 nodes is a few MiB).
MAX_MAP_BYTES = 64 * 1024 * 1024
OUTPUT_MODE = 0o644


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------
def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def read_json(path: str) -> Any:
    """The decoded JSON in ``path`` (``-``: stdin); CommandError when unreadable or not JSON."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_MAP_BYTES + 1)
        else:
            with open(path, "rb") as f:
                raw = f.read(MAX_MAP_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    if len(raw) > MAX_MAP_BYTES:
        raise CommandError(f"{path}: larger than {MAX_MAP_BYTES} bytes", EXIT_USAGE)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not a map: not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start})", EXIT_FAILURE) from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}: not a map: not valid JSON: {exc.msg} (line {exc.lineno}, "
                           f"column {exc.colno})", EXIT_FAILURE) from exc
    except ValueError as exc:  # raised by the hooks above
        raise CommandError(f"{path}: not a map: {exc}", EXIT_FAILURE) from exc
    except RecursionError as exc:
        raise CommandError(f"{path}: not a map: nested too deeply", EXIT_FAILURE) from exc


def _invalid(path: str, exc: MapFormatError) -> CommandError:
    lines = "\n".join(f"  {p}" for p in exc.problems)
    return CommandError(f"{path}: invalid node map ({len(exc.problems)} problem"
                        f"{'s' if len(exc.problems) != 1 else ''}):\n{lines}", EXIT_FAILURE)


class Loaded:
    """A map read from a file, with what its format told us."""

    def __init__(self, nodemap: nm.NodeMap, fmt: str, warnings: Sequence[str] = (),
                 create_timestamp: Optional[float] = None) -> None:
        self.map = nodemap
        self.format = fmt
        self.warnings = tuple(warnings)
        self.create_timestamp = create_timestamp


def load_map(path: str) -> Loaded:
    """Read a map in either format; CommandError (exit 1) naming every problem if invalid."""
    value = read_json(path)
    try:
        fmt = legacy.detect_format(value)
        if fmt == "ours":
            return Loaded(nm.map_from_json(value), fmt)
        imported = legacy.read_legacy(value)
    except MapFormatError as exc:
        raise _invalid(path, exc) from exc
    return Loaded(imported.map, fmt, imported.warnings, imported.create_timestamp)


def render(m: nm.NodeMap, *, as_legacy: bool, create_timestamp: Optional[float] = None) -> str:
    """The text of ``m`` in our format or (``as_legacy``) in the prototype's."""
    if not as_legacy:
        return nm.dump_map_text(m)
    try:
        doc = legacy.to_legacy(m, create_timestamp=create_timestamp)
    except MapFormatError as exc:
        raise CommandError("cannot write the prototype format:\n" + "\n".join(
            f"  {p}" for p in exc.problems), EXIT_FAILURE) from exc
    # The prototype wrote its map with sorted keys and an indent of 4.
    return json.dumps(doc, indent=4, sort_keys=True) + "\n"


def _warn(message: str) -> None:
    sys.stderr.write(f"esgf-nm: warning: {message}\n")


def write_output(text: str, output: Optional[str]) -> None:
    """``text`` to stdout, or atomically to ``output``."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        atomic_write(output, text.encode("utf-8"), OUTPUT_MODE)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE) from exc


def _emit(m: nm.NodeMap, args: argparse.Namespace, *,
          create_timestamp: Optional[float] = None) -> int:
    as_legacy = bool(getattr(args, "legacy", False))
    if as_legacy:
        for loss in legacy.export_losses(m):
            _warn(f"the prototype format cannot hold {loss}")
    write_output(render(m, as_legacy=as_legacy, create_timestamp=create_timestamp), args.output)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# HOST arguments
# --------------------------------------------------------------------------------------------
def _port(text: str, arg: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise CommandError(f"{arg!r}: port must be a number from 1 to 65535, got {text!r}",
                           EXIT_USAGE)
    return int(text)


def _name(text: str, arg: str, what: str) -> str:
    if not text or any(c.isspace() for c in text) or "/" in text or len(text) > nm.MAX_HOSTNAME:
        raise CommandError(f"{arg!r}: not a valid {what}: {text!r}", EXIT_USAGE)
    return text


def _split_port(text: str, arg: str) -> Tuple[str, Optional[int]]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise CommandError(f"{arg!r}: unclosed '[' in an IPv6 address", EXIT_USAGE)
        rest = text[end + 1:]
        if rest and not rest.startswith(":"):
            raise CommandError(f"{arg!r}: expected ':port' after ']'", EXIT_USAGE)
        return text[1:end], _port(rest[1:], arg) if rest else None
    if text.count(":") == 1:
        name, port = text.split(":")
        return name, _port(port, arg)
    if ":" in text:
        raise CommandError(f"{arg!r}: write an IPv6 address in brackets: [{text}]",
                           EXIT_USAGE)
    return text, None


def parse_host(arg: str) -> roster.SupernodeSpec:
    """``host``, ``host:port``, ``host=address`` or ``host=address:port`` as a spec."""
    if "=" in arg:
        host, _, target = arg.partition("=")
        address, port = _split_port(target, arg)
        return roster.SupernodeSpec(_name(host, arg, "hostname"),
                                    _name(address, arg, "address"),
                                    port if port is not None else nm.DEFAULT_PORT)
    host, port = _split_port(arg, arg)
    return roster.SupernodeSpec(_name(host, arg, "hostname"), None,
                                port if port is not None else nm.DEFAULT_PORT)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    specs = [parse_host(h) for h in args.hosts]
    existing = load_map(args.existing) if args.existing else None
    if existing is not None:
        for w in existing.warnings:
            _warn(f"{args.existing}: {w}")
    try:
        result = roster.generate(specs, existing.map if existing else None,
                                 capacity=args.capacity)
    except RosterError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    return _emit(result, args, create_timestamp=time.time())


def cmd_add_supernode(args: argparse.Namespace) -> int:
    spec = parse_host(args.host)
    loaded = load_map(args.map)
    for w in loaded.warnings:
        _warn(f"{args.map}: {w}")
    try:
        result = roster.add_supernode(loaded.map, spec)
    except RosterError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    return _emit(result, args, create_timestamp=time.time())


def summary(m: nm.NodeMap) -> str:
    n = len(m.roster.supernodes)
    members = len(view.member_claims(m))
    return (f"{n} supernode{'s' if n != 1 else ''}, {members} member"
            f"{'s' if members != 1 else ''}, {n * (n - 1) // 2} links, "
            f"roster v{m.roster.version}")


def map_warnings(m: nm.NodeMap) -> List[str]:
    """Things a valid map holds that deserve attention (not errors)."""
    out = []
    ids = set(m.roster.ids)
    placement = m.decision.placement if m.decision is not None else {}
    for home, mem in sorted(view.member_claims(m).values(),
                            key=lambda hm: (nm.id_sort_key(hm[0]), hm[1].hostname)):
        if home not in ids and mem.hostname not in placement:
            out.append(f"$.entries[{home!r}]: member {mem.hostname} belongs to supernode "
                       f"{home}, which is not in the roster, and is served by nobody")
    stale = len(m.all_members()) - len(view.member_claims(m))
    if stale:
        out.append(f"$.entries: {stale} member(s) claimed by two supernodes (the newer claim "
                   f"counts)")
    return out


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_map(args.map)
    warnings = list(loaded.warnings) + map_warnings(loaded.map)
    what = "esgf-nodemgr map" if loaded.format == "ours" else "prototype map"
    sys.stdout.write(f"valid {what}: {summary(loaded.map)}\n")
    for w in warnings:
        sys.stdout.write(f"warning: {w}\n")
    return EXIT_OK


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
            for line in [list(headers), *rows]]


def cmd_show(args: argparse.Namespace) -> int:
    if args.map is None:
        # No file: the live map of the local agent.
        from esgf_nodemgr.cli.agent_cmd import call

        try:
            loaded = Loaded(nm.map_from_json(call(args, "GET", "/v1/map")), "ours")
        except MapFormatError as exc:
            raise _invalid("the agent's map", exc) from exc
    else:
        loaded = load_map(args.map)
    m = loaded.map
    sns = view.supernodes(m)
    mems = view.members(m)
    if args.json:
        doc = {"format": loaded.format, "roster_version": m.roster.version,
               "capacity": m.roster.capacity,
               "supernodes": [asdict(s) for s in sns],
               "members": [asdict(x) for x in mems],
               "links": [{"from": a, "to": b, "status": view.link_status(m, a, b)}
                         for a, b in m.roster.links()]}
        write_output(json.dumps(doc, indent=2) + "\n", None)
        return EXIT_OK
    lines = [f"supernodes: {len(sns)} (roster v{m.roster.version}, capacity "
             f"{m.roster.capacity})"]
    lines += _table(["ID", "HOSTNAME", "HEALTH", "MEMBERS", "ADOPTED"],
                    [[s.id, s.hostname, s.health, str(s.members), str(s.adopted)]
                     for s in sns])
    lines += ["", f"members: {len(mems)}"]
    lines += _table(["ID", "HOSTNAME", "PROJECT", "STANDBY", "HOME", "SERVER", "HEALTH"],
                    [[x.id, x.hostname, x.project, "yes" if x.standby else "no", x.home,
                      x.server if x.server is not None else "-", x.health] for x in mems])
    down = [f"{a}-{b} {view.link_status(m, a, b)}" for a, b in m.roster.links()
            if view.link_status(m, a, b) != "up"]
    if down:
        lines += ["", "links not up: " + ", ".join(down)]
    write_output("\n".join(lines) + "\n", None)
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    loaded = load_map(args.map)
    for w in loaded.warnings:
        _warn(f"{args.map}: {w}")
    args.legacy = args.to == "legacy"
    return _emit(loaded.map, args, create_timestamp=loaded.create_timestamp)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
def _capacity(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 1 <= value <= nm.MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be from 1 to {nm.MAX_NODES}, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``map`` command group to ``esgf-nm``."""
    parser = subparsers.add_parser("map", help="build, check, show and convert node maps",
                                   description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="map_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda _args: _usage(parser))

    def output(p: argparse.ArgumentParser, legacy_flag: bool = True) -> None:
        p.add_argument("-o", "--output", metavar="OUT",
                       help="write here (atomically) instead of stdout")
        if legacy_flag:
            p.add_argument("--legacy", action="store_true",
                           help="write the prototype's format (esgf_nodemgr_map.json)")

    p = sub.add_parser("generate", help="build a map from an ordered list of supernodes")
    p.add_argument("hosts", nargs="+", metavar="HOST",
                   help="host, host:port, host=address or host=address:port")
    p.add_argument("--existing", metavar="MAP",
                   help="keep the ids, members and state of this map (either format)")
    p.add_argument("--capacity", type=_capacity, metavar="N",
                   help="members one supernode may serve")
    output(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("add-supernode", help="append a supernode to a map")
    p.add_argument("map", metavar="MAP", help="map file (either format) or -")
    p.add_argument("host", metavar="HOST",
                   help="host, host:port, host=address or host=address:port")
    output(p)
    p.set_defaults(func=cmd_add_supernode)

    p = sub.add_parser("check", help="validate a map (either format), listing every problem")
    p.add_argument("map", metavar="MAP", help="map file or -")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("show", help="supernodes and members of a map (default: the local "
                                    "agent's), as tables")
    p.add_argument("map", metavar="MAP", nargs="?",
                   help="map file (either format) or -; omitted: the running agent's map")
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    from esgf_nodemgr.cli.agent_cmd import client_args

    client_args(p, json_flag=False)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("get", help="the live map of the local agent (over its admin socket)")
    p.add_argument("--legacy", action="store_true", help="in the prototype's format")
    p.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    from esgf_nodemgr.cli.agent_cmd import client_args

    client_args(p, json_flag=True)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("convert", help="convert a map between our format and the prototype's")
    p.add_argument("map", metavar="MAP", help="map file (either format) or -")
    p.add_argument("--to", required=True, choices=("ours", "legacy"))
    output(p, legacy_flag=False)
    p.set_defaults(func=cmd_convert)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def cmd_get(args: argparse.Namespace) -> int:
    """``esgf-nm map get``: the map the running agent holds (members: their roster only)."""
    from esgf_nodemgr.cli.agent_cmd import call

    doc = call(args, "GET", "/v1/map?format=legacy" if args.legacy else "/v1/map")
    text = json.dumps(doc, indent=2, sort_keys=not args.legacy) + "\n"
    if args.output:
        atomic_write(args.output, text.encode("utf-8"), 0o644)
    else:
        sys.stdout.write(text)
    return EXIT_OK
