"""Playbook wall times on the local federation (issue #4's targets: bootstrap <= 60 s, rerun <= 30 s).

Bootstraps a fresh copy of ``inventories/local`` (3 supernodes + 3 members as agents on this
machine, ``ansible_connection: local``), reruns it (must report ``changed=0``), optionally runs
``--check`` on another fresh copy, and stops every agent. Each timing is written with the 1-minute
load average sampled just before and just after it: on a shared 2-core machine the load explains
most of the spread.

Usage::

    .venv/bin/python bench/playbooks_bench.py [--repeat N] [--check] [--profile] [--out FILE]

``--profile`` enables ansible.posix's ``profile_tasks`` callback and prints the slowest tasks.
Results go to ``bench/results/playbooks-bench-<UTC time>.json`` (and, with ``--latest``, also
``bench/results/playbooks-latest.json``, the file ``tests/test_playbooks.py`` writes too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.playbook_support import LocalFederation, missing_prerequisites  # noqa: E402

TARGETS_S = {"bootstrap": 60, "rerun": 30}
LOG_DIR: Path | None = None
_TASK_TIME = re.compile(r"^(?P<task>.+?) -+ (?P<s>\d+\.\d+)s$", re.MULTILINE)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _children_cpu() -> float:
    """CPU seconds (user + system) of waited-for child processes: ansible-playbook and its workers
    and modules. The agents are detached (never waited for) and not counted. Unlike wall time,
    this hardly depends on what else the machine runs."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _git_rev() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "?"


def timed(fed: LocalFederation, name: str, *args: str, profile: bool) -> dict:
    if profile:
        os.environ["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        os.environ["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "25"
    before = _load()
    cpu_before = _children_cpu()
    run = fed.playbook(name, *args)
    out = {"seconds": round(run.seconds, 1), "cpu_s": round(_children_cpu() - cpu_before, 1),
           "load_1m_before": before, "load_1m_after": _load(),
           "rc": run.rc, "changed": sum(r["changed"] for r in run.recap.values()),
           "failed": sum(r["failed"] + r["unreachable"] for r in run.recap.values())}
    if run.rc != 0:
        print(run.tail(60), file=sys.stderr)
    if LOG_DIR is not None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_DIR / f"{time.strftime('%H%M%S')}-{name}{'-check' if '--check' in args else ''}.log").write_text(run.output)
    if profile:
        tasks = _TASK_TIME.findall(run.output[run.output.rfind("PLAY RECAP"):])
        out["slowest_tasks"] = [[t.strip(), float(s)] for t, s in tasks]
    return out


def one_round(profile: bool, check: bool) -> dict:
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="esgf-nm-pbench-") as tmp:
        fed = LocalFederation(Path(tmp) / "fed")
        try:
            result["bootstrap"] = timed(fed, "bootstrap-federation.yml", profile=profile)
            result["rerun"] = timed(fed, "bootstrap-federation.yml", profile=profile)
        finally:
            fed.stop_all()
        if check:
            fresh = LocalFederation(Path(tmp) / "check")
            try:
                result["check_fresh"] = timed(fresh, "bootstrap-federation.yml", "--check",
                                              profile=profile)
            finally:
                fresh.stop_all()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="fresh bootstrap + rerun this many times")
    ap.add_argument("--check", action="store_true", help="also time --check on a fresh copy")
    ap.add_argument("--profile", action="store_true", help="per-task times (profile_tasks)")
    ap.add_argument("--latest", action="store_true",
                    help="also write bench/results/playbooks-latest.json")
    ap.add_argument("--log-dir", type=Path, help="keep each run's output there")
    ap.add_argument("--note", default="", help="free text stored with the result")
    ap.add_argument("--out", type=Path, help="result file (default bench/results/playbooks-bench-<time>.json)")
    args = ap.parse_args(argv)
    global LOG_DIR
    LOG_DIR = args.log_dir
    why = missing_prerequisites()
    if why:
        print(f"SKIPPED: {why}")
        return 0
    runs = []
    for i in range(args.repeat):
        r = one_round(args.profile, args.check)
        runs.append(r)
        print(f"round {i + 1}: " + ", ".join(
            f"{k} {v['seconds']} s, {v['cpu_s']} CPU-s (load {v['load_1m_before']}->{v['load_1m_after']}, changed {v['changed']},"
            f" rc {v['rc']})" for k, v in r.items()), flush=True)
        for k, v in r.items():
            for task, s in v.get("slowest_tasks", [])[:12]:
                print(f"    {k}: {s:6.2f} s  {task}")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    doc = {
        "what": "wall time of ansible-playbook on inventories/local (3 supernodes, 3 members, "
                "one machine), bench/playbooks_bench.py",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": _git_rev(),
        "note": args.note,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": _load()},
        "runs": runs,
        "targets_s": TARGETS_S,
    }
    out = args.out or HERE / "results" / f"playbooks-bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    if args.latest:
        best = {k: min(r[k]["seconds"] for r in runs) for k in runs[0]}
        latest = {
            "what": "wall time of ansible-playbook on inventories/local (3 supernodes, 3 members, "
                    "one machine)",
            "recorded_at": doc["recorded_at"],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m": runs[-1]["bootstrap"]["load_1m_before"]},
            "seconds": best,
            "targets_s": TARGETS_S,
            "source": "bench/playbooks_bench.py",
        }
        (HERE / "results" / "playbooks-latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    failed = any(v["rc"] != 0 for r in runs for v in r.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
