"""Simulator benchmark: our protocol against the 2015 prototype's schedule, same runs.

Each case is one (N supernodes, M members, scenario, loss, seed) run of both profiles through
``esgf_nodemgr.sim.scenario.run``: same hostnames, link RTTs (20-250 ms), clock skews, loss and
fault plan. Results are pooled per N over the seeds: medians and p99 of detection and
convergence, per-node message and byte rates, bytes per membership change, false downs and
invariant violations, and the ratios ours vs prototype.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from esgf_nodemgr.sim.scenario import Spec, median, percentile, run

Case = dict[str, Any]


def run_case(case: Case) -> dict[str, Any]:
    """Run one spec (a dict of ``Spec`` fields); add the wall time it took."""
    started = time.monotonic()
    result = run(Spec(**case))
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["violation_sample"] = result["violations"][:5]
    result["violations"] = len(result["violations"])
    return result


def run_all(cases: Sequence[Case], workers: int) -> list[dict[str, Any]]:
    """Run every case, ``workers`` at a time, longest first; results in case order."""
    order = sorted(range(len(cases)), key=lambda i: -cost(cases[i]))
    results: list[dict[str, Any] | None] = [None] * len(cases)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {i: pool.submit(run_case, cases[i]) for i in order}
        for i in order:
            results[i] = futures[i].result()
            r = results[i]
            assert r is not None
            print(f"  done {r['profile']:9} N={r['supernodes']:<3} M={r['members']:<4} "
                  f"{r['scenario']:8} loss={r['loss']} seed={r['seed']} "
                  f"({r['wall_s']} s wall, {r['violations']} violations)", flush=True)
    return [r for r in results if r is not None]


def cost(case: Case) -> float:
    """A rough wall-time estimate used to start the longest runs first."""
    weight = 1.0 if case.get("profile") == "ours" else 0.05
    n = case["supernodes"]
    return weight * n * (n + case["members"] / 5) * case["duration_s"]


def _values(results: Iterable[dict[str, Any]], key: str) -> list[float]:
    out: list[float] = []
    for r in results:
        v = r[key]
        if isinstance(v, list):
            out += [float(x) for x in v]
        elif v is not None:
            out.append(float(v))
    return out


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool the runs of one (profile, N, scenario, loss) group."""
    det = _values(results, "detection_s")
    conv = _values(results, "convergence_s")
    changes = _values(results, "membership_change_samples")

    def mean(key: str) -> float | None:
        vals = _values(results, key)
        return round(sum(vals) / len(vals), 2) if vals else None

    def r2(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "runs": len(results),
        "seeds": sorted(r["seed"] for r in results),
        "crashes_detected": len(det),
        "crashes_undetected": sum(int(r.get("undetected_crashes", 0)) for r in results),
        "detection_median_s": r2(median(det)),
        "detection_p99_s": r2(percentile(det, 99)),
        "decisions_converged": len(conv),
        "decisions_unconverged": sum(int(r.get("unconverged_decisions", 0)) for r in results),
        "convergence_median_s": r2(median(conv)),
        "convergence_p99_s": r2(percentile(conv, 99)),
        "messages_per_supernode_per_s": mean("messages_per_supernode_per_s"),
        "messages_per_member_per_s": mean("messages_per_member_per_s"),
        "bytes_per_supernode_per_s": mean("bytes_per_supernode_per_s"),
        "bytes_per_member_per_s": mean("bytes_per_member_per_s"),
        "bytes_per_membership_change": r2(median(changes)),
        "false_down": sum(int(r["false_down"]) for r in results),
        "violations": sum(int(r["violations"]) for r in results),
        "liveness_max_s": max((float(r["liveness_s"]) for r in results
                               if r.get("liveness_s") is not None), default=None),
        "wall_s": round(sum(float(r["wall_s"]) for r in results), 1),
    }


def group(results: Sequence[dict[str, Any]]) -> dict[tuple[str, int, str, float, float],
                                                      dict[str, Any]]:
    """Summaries keyed by (profile, N, scenario, loss, duration)."""
    keys = sorted({(r["profile"], r["supernodes"], r["scenario"], r["loss"], r["duration_s"])
                   for r in results})
    return {k: summarize([r for r in results if (r["profile"], r["supernodes"], r["scenario"],
                                                 r["loss"], r["duration_s"]) == k])
            for k in keys}


def ratio(a: float | None, b: float | None) -> float | None:
    """How many times ``b`` is larger than ``a`` (prototype / ours)."""
    if a is None or b is None or a <= 0:
        return None
    return round(b / a, 1)
