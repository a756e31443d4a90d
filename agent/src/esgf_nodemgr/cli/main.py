"""Entry point of ``esgf-nm``.

Each command group lives in its own module exposing ``register(subparsers)``; the module adds
its sub-parser(s) and sets ``func`` (``Callable[[argparse.Namespace], int]``) on them. ``main``
is the only place where library errors become exit codes and messages on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, List, Optional, Sequence

from esgf_nodemgr import __version__

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: List[str] = [
    "esgf_nodemgr.cli.agent_cmd",
    "esgf_nodemgr.cli.map_cmd",
    "esgf_nodemgr.cli.sim_cmd",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and the answer is "no" (invalid map, unhealthy node, ...)
EXIT_USAGE = 2  # bad arguments or unreadable input
EXIT_UNAVAILABLE = 3  # the local agent (or another service) could not be reached


class CommandError(Exception):
    """An error a command reports to the user: message on stderr, ``exit_code`` returned."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esgf-nm", description="ESGF node manager: federation map, simulator and agent."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``esgf-nm`` with ``argv``; return the exit code (never calls ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help/--version and on bad usage
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except CommandError as exc:
        sys.stderr.write(f"esgf-nm: {exc}\n")
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_OK


def entrypoint() -> None:
    """Console-script entry point."""
    sys.exit(main())
