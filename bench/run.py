"""Benchmarks (``make bench``): the simulator comparison of DESIGN.md section 8.

Runs, for N in {5, 20, 50} supernodes with 10 members each, the crash scenario at 1% loss and
20-250 ms RTT with both profiles (ours and the 2015 prototype) on the same seeds, plus one
simulated hour at 5% loss without faults at N=50 (false downs). Writes
``bench/results/sim-<date>.json`` (every run) and ``bench/results/sim-latest.md`` (the table).

Usage: ``python bench/run.py [--quick] [--workers K] [--sizes 5:5,20:3,50:3] [--duration S]
[--hour-n N] [--hour-s S] [--tag T]``. ``--quick`` runs a small version (N in {5, 20}, a
10-minute quiet run) for a smoke check; it writes ``sim-quick-*`` files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "agent" / "src"))

from sim_compare import Case, group, ratio, run_all  # noqa: E402

# Targets from the issue (measured here, never asserted in tests).
TARGETS = {
    "detection_median_s": 5.0,
    "detection_p99_s": 10.0,
    "convergence_p99_s": 3.0,
    "false_down_hour": 0,
    "detection_speedup": 10.0,
    "bytes_per_change_reduction": 20.0,
}


def cases(sizes: list[tuple[int, int]], duration: float, hour_n: int,
          hour_s: float, first_seed: int = 1,
          hour_profiles: tuple[str, ...] = ("ours", "prototype")) -> list[Case]:
    out: list[Case] = []
    for n, count in sizes:
        for seed in range(first_seed, first_seed + count):
            for profile in ("ours", "prototype"):
                out.append({"supernodes": n, "members": 10 * n, "seed": seed,
                            "scenario": "crash", "loss": 0.01, "skew_s": 0.5,
                            "duration_s": duration,
                            "profile": profile, "samples": 1})
    if hour_s > 0:
        for profile in hour_profiles:
            out.append({"supernodes": hour_n, "members": 10 * hour_n, "seed": 1000,
                        "scenario": "none", "loss": 0.05, "skew_s": 0.5, "duration_s": hour_s,
                        "profile": profile, "samples": 0})
    return out


def _sizes(text: str) -> list[tuple[int, int]]:
    """"5:5,20:3,50:3" -> [(5, 5), (20, 3), (50, 3)] (supernodes:seeds); "none" -> []."""
    out: list[tuple[int, int]] = []
    if text.strip() in ("", "none"):
        return out
    for part in text.split(","):
        n, _, seeds = part.partition(":")
        out.append((int(n), int(seeds or 1)))
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def table(summary: dict[str, dict[str, Any]], started: str, wall: float) -> str:
    crash = {k: v for k, v in summary.items() if v["scenario"] == "crash"}
    ns = sorted({v["supernodes"] for v in crash.values()})
    durations = "/".join(sorted({f"{v['duration_s']:.0f}" for v in crash.values()}))
    lines = [
        "# Simulator benchmark: ours vs the 2015 prototype",
        "",
        f"Run {started}, {wall / 60:.1f} min wall. Produced by `make bench` (`bench/run.py`); "
        "every run's JSON is in the matching `sim-*.json`.",
        "",
        "Crash scenario, 10 members per supernode, RTT 20-250 ms per link, 1% loss on every "
        f"message and probe, clock skew ±0.5 s, {durations} s safety phase (about one "
        "supernode in five crashes, each stays down 30-50 % of the phase), then healed and checked for convergence. Both "
        "profiles face the same hosts, links, skews, loss and fault plan. Detection: crash → "
        "first decision marking it down. Convergence: decision → every live supernode holds it "
        "(or newer) and every member it moves follows its new server. Bytes per membership "
        "change: median over one join and one leave, windowed difference against a quiet "
        "window of equal length with loss switched off (see `bench/README.md`).",
        "",
        "| metric | " + " | ".join(f"N={n} ours | N={n} prototype | ratio" for n in ns) + " |",
        "|---|" + "---|---|---|" * len(ns),
    ]
    rows = [
        ("runs (seeds)", "runs", None),
        ("crashes detected / undetected", None, None),
        ("detection median (s)", "detection_median_s", "speed"),
        ("detection p99 (s)", "detection_p99_s", "speed"),
        ("convergence median (s)", "convergence_median_s", "speed"),
        ("convergence p99 (s)", "convergence_p99_s", "speed"),
        ("messages / supernode / s", "messages_per_supernode_per_s", "cost"),
        ("messages / member / s", "messages_per_member_per_s", "cost"),
        ("bytes / supernode / s", "bytes_per_supernode_per_s", "cost"),
        ("bytes / member / s", "bytes_per_member_per_s", "cost"),
        ("bytes / membership change", "bytes_per_membership_change", "cost"),
        ("false downs", "false_down", None),
        ("invariant violations", "violations", None),
        ("liveness: converged after heal within (s)", "liveness_max_s", None),
    ]
    for label, key, kind in rows:
        cells = []
        for n in ns:
            ours = crash.get(f"ours/{n}/crash")
            proto = crash.get(f"prototype/{n}/crash")
            if ours is None or proto is None:
                cells += ["-", "-", "-"]
                continue
            if key is None:
                cells += [f"{o['crashes_detected']} / {o['crashes_undetected']}"
                          for o in (ours, proto)]
                cells.append("")
                continue
            if key == "violations":
                cells += [_fmt(ours[key]), "not checked", ""]
                continue
            r = ratio(ours[key], proto[key]) if kind else None
            cells += [_fmt(ours[key]), _fmt(proto[key]), f"{r}x" if r is not None else ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Ratio = prototype ÷ ours (how many times slower or costlier the prototype "
              "is).", ""]
    hour = {k: v for k, v in summary.items() if v["scenario"] == "none"}
    if hour:
        lines += ["## Quiet run at 5% loss, no faults (false downs)", "",
                  "| profile | N | M | simulated s | false downs | violations | "
                  "messages / supernode / s | bytes / supernode / s | wall (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for _k, v in sorted(hour.items()):
            lines.append(f"| {v['profile']} | {v['supernodes']} | {v['members']} | "
                         f"{v['duration_s']:.0f} | {v['false_down']} | "
                         f"{v['violations'] if v['profile'] == 'ours' else 'not checked'} | "
                         f"{_fmt(v['messages_per_supernode_per_s'])} | "
                         f"{_fmt(v['bytes_per_supernode_per_s'])} | {v['wall_s']} |")
        lines.append("")
    lines += targets(summary)
    return "\n".join(lines) + "\n"


def targets(summary: dict[str, dict[str, Any]]) -> list[str]:
    ns = sorted({v["supernodes"] for v in summary.values() if v["scenario"] == "crash"})
    if not ns:
        return []
    n = ns[-1]
    ours = summary.get(f"ours/{n}/crash")
    proto = summary.get(f"prototype/{n}/crash")
    quiet = [v for v in summary.values() if v["profile"] == "ours" and v["scenario"] == "none"]
    hour = max(quiet, key=lambda v: v["supernodes"]) if quiet else None
    hour_n = hour["supernodes"] if hour else 0
    hour_s = hour["duration_s"] if hour else 0.0
    if ours is None or proto is None:
        return []

    def check(ok: bool | None) -> str:
        return "-" if ok is None else ("met" if ok else "MISSED")

    def le(v: float | None, t: float) -> bool | None:
        return None if v is None else v <= t

    speed = ratio(ours["detection_median_s"], proto["detection_median_s"])
    shrink = ratio(ours["bytes_per_membership_change"], proto["bytes_per_membership_change"])
    rows = [
        ("crash detected, median ≤ 5 s", _fmt(ours["detection_median_s"]),
         check(le(ours["detection_median_s"], 5.0))),
        ("crash detected, p99 ≤ 10 s", _fmt(ours["detection_p99_s"]),
         check(le(ours["detection_p99_s"], 10.0))),
        ("every live node holds a decision ≤ 3 s after it (p99)",
         _fmt(ours["convergence_p99_s"]), check(le(ours["convergence_p99_s"], 3.0))),
        (f"zero false downs over the quiet run at 5% loss "
         f"({'-' if hour is None else f'N={hour_n}, {hour_s:.0f} s'})",
         "-" if hour is None else str(hour["false_down"]),
         "-" if hour is None else check(hour["false_down"] == 0)),
        ("≥ 10x faster detection than the prototype", f"{speed}x" if speed else "-",
         check(None if speed is None else speed >= 10.0)),
        ("≥ 20x fewer bytes per membership change", f"{shrink}x" if shrink else "-",
         check(None if shrink is None else shrink >= 20.0)),
    ]
    out = [f"## Targets at N={n} ({10 * n} members)", "", "| target | measured | |",
           "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small smoke version: N=5 and 20, a 10-minute quiet run at N=20")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default="5:5,20:3,50:3",
                        help="supernodes:seeds,... for the crash runs (default 5:5,20:3,50:3; "
                        "none: no crash runs)")
    parser.add_argument("--duration", type=float, default=300.0,
                        help="safety phase of the crash runs, simulated seconds")
    parser.add_argument("--hour-n", type=int, default=50, help="N of the quiet 5%%-loss run")
    parser.add_argument("--hour-s", type=float, default=3600.0,
                        help="length of the quiet run (0: skip it)")
    parser.add_argument("--hour-profiles", default="ours,prototype",
                        help="profiles of the quiet run (the target is on ours; the prototype's "
                        "hour is for comparison)")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--first-seed", type=int, default=1,
                        help="seeds of the crash runs are first-seed, first-seed+1, ...")
    parser.add_argument("--assemble", type=Path, nargs="+", default=None,
                        help="run nothing: build the table from these result JSON files "
                        "(runs made in parts, e.g. one seed per process)")
    args = parser.parse_args(argv)
    if args.assemble:
        return assemble(args.assemble, args.out, args.tag)
    if args.quick:
        args.sizes, args.hour_n, args.hour_s = "5:2,20:1", 20, 600.0
        args.tag = args.tag or "quick"
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    hour_profiles = tuple(p for p in args.hour_profiles.split(",") if p)
    unknown = set(hour_profiles) - {"ours", "prototype"}
    if unknown:
        parser.error(f"--hour-profiles: unknown profile(s) {', '.join(sorted(unknown))} "
                     "(ours, prototype)")
    todo = cases(_sizes(args.sizes), args.duration, args.hour_n, args.hour_s, args.first_seed,
                 hour_profiles)
    print(f"bench: {len(todo)} simulation runs on {args.workers} worker(s)", flush=True)
    t0 = time.monotonic()
    results = run_all(todo, args.workers)
    wall = time.monotonic() - t0
    return write(results, started, wall, args.out, args.tag)


def assemble(files: list[Path], out: Path, tag: str) -> int:
    """The table of several partial runs' JSON documents, pooled as if run at once."""
    results: list[dict[str, Any]] = []
    started, wall = [], 0.0
    for f in files:
        doc = json.loads(f.read_text())
        results += doc["runs"]
        started.append(doc["started"])
        wall += float(doc["wall_s"])
    return write(results, f"{min(started)} .. {max(started)} (assembled from "
                 f"{len(files)} parts)", wall, out, tag)


def write(results: list[dict[str, Any]], started: str, wall: float, out: Path,
          tag: str) -> int:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    summary = {}
    for (profile, n, scenario, loss, duration), s in group(results).items():
        s.update({"profile": profile, "supernodes": n, "members": 10 * n,
                  "scenario": scenario, "loss": loss, "duration_s": duration})
        summary[f"{profile}/{n}/{scenario}"] = s
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"sim-{tag}" if tag else "sim"
    doc = {"started": started, "wall_s": round(wall, 1), "targets": TARGETS,
           "summary": summary, "runs": results}
    (out / f"{prefix}-{stamp}.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = table(summary, started, wall)
    (out / f"{prefix}-latest.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
