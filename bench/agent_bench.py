"""Agent benchmarks on this machine: real agent processes with real mutual TLS on loopback.

Measures (issue "The agent", targets in brackets):

- RSS and CPU of each agent at idle, 5 supernodes + 5 members, default round length
  [RSS <= 60 MB, CPU <= 2 % of a core];
- probe endpoint throughput over keep-alive mTLS from several client processes
  [>= 500 requests/s], and the serving agent's CPU and RSS meanwhile;
- rounds from SIGKILL of a supernode until every survivor has declared it down and adopted
  its members [<= 3 rounds].

Writes ``bench/results/agent-<date>.json`` and ``bench/results/agent-latest.md``. Numbers are
measured, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "agent" / "tests"))

from support.federation import Federation, bootstrap, build_federation, wait_for  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def sample(fed: Federation, seconds: float) -> dict[str, dict[str, float]]:
    pids = {h: n.pid for h, n in fed.nodes.items() if n.pid}
    cpu0 = {h: proc_cpu_s(p) for h, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return {h: {"cpu_pct": 100.0 * (proc_cpu_s(p) - cpu0[h]) / elapsed,
                "rss_mb": proc_rss_mb(p)} for h, p in pids.items()}


def _client(args: tuple[str, int, str, str, str, str, float]) -> int:
    """One keep-alive mTLS connection issuing requests back to back (http.client: the
    client's own overhead must not be what is measured)."""
    host, port, path, ca, cert, key, seconds = args
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            n += 1
    conn.close()
    return n


def load(fed: Federation, target: str, clients: int, seconds: float) -> dict[str, Any]:
    node = fed.nodes[target]
    files = fed.pki.node("sn2.test")
    path = "/esgf-nm/v1/probe?from=sn2.test&round=0"
    pid = node.pid
    assert pid is not None
    cpu0 = proc_cpu_s(pid)
    t0 = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        counts = pool.map(_client, [("127.0.0.1", node.port, path, files.ca, files.cert,
                                     files.key, seconds)] * clients)
    elapsed = time.monotonic() - t0
    return {"clients": clients, "requests": sum(counts), "seconds": round(elapsed, 2),
            "requests_per_s": round(sum(counts) / elapsed, 1),
            "server_cpu_pct": round(100.0 * (proc_cpu_s(pid) - cpu0) / elapsed, 1),
            "server_rss_mb": round(proc_rss_mb(pid), 1)}


def detection(fed: Federation, victim: str, round_s: float) -> dict[str, float]:
    survivors = [h for h in fed.supernodes() if h != victim]
    fed.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()

    def adopted() -> bool:
        for h in survivors:
            st = fed.status(h)
            if {s["hostname"]: s["health"] for s in st["supernodes"]}[victim] != "unreachable":
                return False
            if any(m["server_hostname"] == victim for m in st["members"]):
                return False
        return True

    wait_for(adopted, 30 * round_s, "adoption", interval=0.05)
    seconds = time.monotonic() - t0
    fed.start(victim)
    wait_for(lambda: all(s["health"] == "good" for s in fed.status(survivors[0])["supernodes"]),
             30 * round_s, "recovery")
    return {"seconds": round(seconds, 2), "rounds": round(seconds / round_s, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--load-seconds", type=float, default=10.0)
    ap.add_argument("--round-s", type=float, default=2.0, help="default round length")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="esgf-nm-bench-") as tmp:
        fed = build_federation(Path(tmp), 5, 5, round_s=args.round_s)
        # Production timing: probe timeout 1 s, ticks every 0.2 s (the defaults).
        for node in fed.nodes.values():
            text = node.config.read_text()
            text = text.replace(f"probe_timeout_s: {round(args.round_s * 0.45, 3)}",
                                "probe_timeout_s: 1.0").replace("tick_s: 0.05", "tick_s: 0.2")
            node.config.write_text(text.replace("level: INFO", "level: WARNING"))
        try:
            bootstrap(fed)
            time.sleep(3 * args.round_s)
            idle = sample(fed, args.idle_seconds)
            sn = [v for h, v in idle.items() if h.startswith("sn")]
            mem = [v for h, v in idle.items() if h.startswith("m")]
            results["idle"] = {
                "round_s": args.round_s, "seconds": args.idle_seconds,
                "supernode_cpu_pct_median": round(statistics.median(x["cpu_pct"] for x in sn), 2),
                "supernode_cpu_pct_max": round(max(x["cpu_pct"] for x in sn), 2),
                "supernode_rss_mb_max": round(max(x["rss_mb"] for x in sn), 1),
                "member_cpu_pct_max": round(max(x["cpu_pct"] for x in mem), 2),
                "member_rss_mb_max": round(max(x["rss_mb"] for x in mem), 1),
            }
            results["load"] = [load(fed, "sn1.test", c, args.load_seconds) for c in (1, 2, 4)]
            runs: list[dict[str, float]] = [detection(fed, v, args.round_s)
                                            for v in ("sn3.test", "sn4.test", "sn2.test")]
            results["detection"] = {"runs": runs, "rounds_median": statistics.median(
                r["rounds"] for r in runs), "rounds_max": max(r["rounds"] for r in runs)}
        finally:
            fed.stop_all()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"agent-{time.strftime('%Y%m%d')}.json").write_text(json.dumps(results, indent=2))
    idle_r = results["idle"]
    best = max(results["load"], key=lambda x: x["requests_per_s"])
    det = results["detection"]
    md = [
        "# Agent benchmark (real processes, mTLS on loopback)", "",
        f"Run {results['date']} on {results['machine']['cpus']} CPUs; 5 supernodes + 5 members,"
        f" round {args.round_s} s.", "",
        "| measure | value | target |", "|---|---|---|",
        f"| supernode RSS at idle (max) | {idle_r['supernode_rss_mb_max']} MB | <= 60 MB |",
        f"| supernode CPU at idle (median / max) | {idle_r['supernode_cpu_pct_median']} % / "
        f"{idle_r['supernode_cpu_pct_max']} % of a core | <= 2 % |",
        f"| member RSS / CPU at idle (max) | {idle_r['member_rss_mb_max']} MB / "
        f"{idle_r['member_cpu_pct_max']} % | |",
        f"| probe endpoint, keep-alive mTLS ({best['clients']} client processes) | "
        f"{best['requests_per_s']} req/s (server CPU {best['server_cpu_pct']} %, RSS "
        f"{best['server_rss_mb']} MB) | >= 500 req/s |",
        f"| SIGKILL to adoption by every survivor (median / max of {len(det['runs'])}) | "
        f"{det['rounds_median']} / {det['rounds_max']} rounds | <= 3 rounds |", "",
        "Load runs: " + "; ".join(f"{x['clients']} clients {x['requests_per_s']} req/s"
                                  for x in results["load"]),
    ]
    (out / "agent-latest.md").write_text("\n".join(md) + "\n")
    sys.stdout.write("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
