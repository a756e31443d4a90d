"""``esgf-nm sim``: run one seeded simulation scenario and print its result.

With ``--json`` the result is one JSON object on stdout (seed, profile, scenario, detection and
convergence times, message and byte rates, false downs, violations...). The exit code is 0 when
every invariant held and 1 otherwise; a failed run names the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from esgf_nodemgr.sim import faults as fl
from esgf_nodemgr.sim.scenario import PROFILES, Spec, median, percentile, run


def register(subparsers: Any) -> None:
    """Add the ``sim`` sub-command."""
    p = subparsers.add_parser(
        "sim", help="run a deterministic federation simulation",
        description="Run a seeded simulation of a federation (safety phase with faults, then "
                    "a liveness phase that must converge) and report invariants and metrics.")
    p.add_argument("--supernodes", type=int, default=5, metavar="N")
    p.add_argument("--members", type=int, default=10, metavar="M")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scenario", choices=fl.SCENARIOS, default="crash")
    p.add_argument("--loss", type=float, default=0.01, metavar="P",
                   help="probability that any message or probe is lost (default 0.01)")
    p.add_argument("--skew", type=float, default=0.5, metavar="S",
                   help="each node's clock is off by up to +-S seconds (default 0.5)")
    p.add_argument("--duration", type=float, default=300.0, metavar="SECONDS",
                   help="length of the safety phase in simulated seconds (default 300)")
    p.add_argument("--round-s", type=float, default=2.0, metavar="R",
                   help="round length of our protocol in seconds (default 2)")
    p.add_argument("--profile", choices=PROFILES, default="ours")
    p.add_argument("--samples", type=int, default=1,
                   help="join+leave samples for bytes per membership change (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from esgf_nodemgr.cli.main import CommandError

    try:
        spec = Spec(supernodes=args.supernodes, members=args.members, seed=args.seed,
                    scenario=args.scenario, loss=args.loss, skew_s=args.skew,
                    duration_s=args.duration, round_s=args.round_s, profile=args.profile,
                    samples=args.samples)
    except ValueError as exc:
        raise CommandError(f"sim: {exc}") from exc
    result = run(spec)
    if args.json:
        sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    else:
        sys.stdout.write(summary(result))
    return 0 if not result["violations"] else 1


def _fmt(v: Optional[float], unit: str = "s") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def summary(r: Dict[str, Any]) -> str:
    """A short human summary of a result."""
    det: List[float] = r["detection_s"]
    conv: List[float] = r["convergence_s"]
    lines = [
        f"{r['profile']} / {r['scenario']}: {r['supernodes']} supernodes, {r['members']} "
        f"members, seed {r['seed']}, loss {r['loss']}, skew +-{r['skew_s']}s",
        f"  detection    n={len(det)} median {_fmt(median(det))} p99 {_fmt(percentile(det, 99))}",
        f"  convergence  n={len(conv)} median {_fmt(median(conv))} "
        f"p99 {_fmt(percentile(conv, 99))}",
        f"  messages/s   {r['messages_per_supernode_per_s']} per supernode, "
        f"{r['messages_per_member_per_s']} per member",
        f"  bytes/change {r['bytes_per_membership_change']}",
        f"  false downs  {r['false_down']}",
    ]
    if r["violations"]:
        lines.append(f"  FAILED: {len(r['violations'])} violation(s); first ones:")
        lines += [f"    {v}" for v in r["violations"][:10]]
        lines.append(f"  reproduce with: {r['reproduce']}")
    else:
        lines.append("  all invariants held" if r.get("invariants_checked", True)
                     else "  (invariants are checked for the 'ours' profile only)")
    return "\n".join(lines) + "\n"
