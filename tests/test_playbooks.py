"""The playbooks, run for real on a copy of ``inventories/local`` (agents on this machine).

One federation is bootstrapped for the whole module and the tests below go through its life in
order: bootstrap, rerun (nothing changes), add a member, remove it, add a supernode by editing
the inventory, upgrade the agent (a rolling restart). Check mode runs on a fresh copy of its own. Every agent is stopped at the end,
even when a test fails. Wall times of the bootstrap and of the rerun are written to
``bench/results/playbooks-latest.json`` (targets: bootstrap <= 60 s, rerun <= 30 s; recorded,
not asserted: they depend on the machine's load).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.playbook_support import (
    REPO_ROOT,
    LocalFederation,
    Sample,
    StatusRecorder,
    missing_prerequisites,
    port_listening,
    process_start_time,
)

pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(missing_prerequisites() is not None,
                       reason=missing_prerequisites() or ""),
]

SUPERNODES = ["sn1", "sn2", "sn3"]
MEMBERS = ["m1", "m2", "m3"]
BENCH_FILE = REPO_ROOT / "bench" / "results" / "playbooks-latest.json"

TIMINGS: dict[str, float] = {}


def _write_bench() -> None:
    if not TIMINGS:
        return
    BENCH_FILE.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "what": "wall time of ansible-playbook on inventories/local (3 supernodes, 3 members, "
                "one machine)",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "seconds": {k: round(v, 1) for k, v in sorted(TIMINGS.items())},
        "targets_s": {"bootstrap": 60, "rerun": 30},
    }
    BENCH_FILE.write_text(json.dumps(doc, indent=2) + "\n")


def _assert_ok(run, what: str) -> None:
    assert run.rc == 0 and not run.failed_hosts(), (
        f"{what} failed (rc {run.rc}, failed hosts {run.failed_hosts()}):\n{run.tail()}")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    """The local federation plus m4, a member the first bootstrap leaves out (--limit '!m4')."""
    federation = LocalFederation(tmp_path_factory.mktemp("fed"))
    federation.add_host("members", "m4", 6, project="CORDEX")
    try:
        run = federation.playbook("bootstrap-federation.yml", "--limit", "!m4")
        TIMINGS["bootstrap"] = run.seconds
        federation.bootstrap_run = run  # type: ignore[attr-defined]
        yield federation
    finally:
        federation.stop_all()
        _write_bench()
    assert not federation.agent_pids(), "agents still running after teardown"


def test_bootstrap_builds_the_federation(fed: LocalFederation) -> None:
    run = fed.bootstrap_run  # type: ignore[attr-defined]
    _assert_ok(run, "bootstrap-federation.yml")
    assert set(run.recap) >= set(SUPERNODES + MEMBERS)
    assert "m4" not in run.recap
    # The summary table is printed from supernode 1's view.
    assert "NODE" in run.output and "SUPERNODE" in run.output and "HEALTH" in run.output

    epochs = {h: fed.status(h)["epoch"] for h in SUPERNODES}
    assert None not in epochs.values() and len(set(epochs.values())) == 1, epochs
    st = fed.status("sn1")
    assert [s["hostname"] for s in st["supernodes"]] == SUPERNODES
    assert sorted(m["hostname"] for m in st["members"]) == MEMBERS
    for m in MEMBERS:
        ms = fed.status(m)
        assert ms["joined"], ms
        assert ms["server_hostname"] in SUPERNODES
    assert fed.pid("m4") is None
    # Private keys are the agent's alone.
    for h in SUPERNODES + MEMBERS:
        assert (fed.node_dir(h) / "etc" / "node.key").stat().st_mode & 0o777 == 0o600
    # The CA key stays on the controller side (the pki dir), never in a node's directory.
    assert (fed.root / "pki" / "ca.key").exists()
    assert not list(fed.root.glob("*/etc/ca.key"))


def test_rerun_changes_nothing(fed: LocalFederation) -> None:
    pids = fed.agent_pids()
    run = fed.playbook("bootstrap-federation.yml", "--limit", "!m4")
    TIMINGS["rerun"] = run.seconds
    _assert_ok(run, "second bootstrap-federation.yml")
    assert run.changed_hosts() == {}, f"a rerun changed something:\n{run.tail(150)}"
    assert fed.agent_pids() == pids, "a rerun restarted agents"


def test_add_member_refuses_a_host_that_is_not_a_member(fed: LocalFederation) -> None:
    run = fed.playbook("add-member.yml", "-e", "node=sn2")
    assert run.rc != 0
    assert "refusing: sn2 is not in the inventory group `members`" in run.output


def test_add_member_installs_and_joins_only_that_host(fed: LocalFederation) -> None:
    pids = fed.agent_pids()
    run = fed.playbook("add-member.yml", "-e", "node=m4")
    TIMINGS["add_member"] = run.seconds
    _assert_ok(run, "add-member.yml -e node=m4")
    assert set(run.recap) == {"m4"}, f"add-member touched other hosts: {run.recap}"
    st = fed.status("m4")
    assert st["joined"] and st["project"] == "CORDEX", st
    fed.wait_for(lambda: "m4" in [m["hostname"] for m in fed.status("sn1")["members"]], 30,
                 "sn1 to list m4 among the members")
    after = fed.agent_pids()
    assert {h: after.get(h) for h in pids} == pids, "add-member restarted another agent"

    again = fed.playbook("add-member.yml", "-e", "node=m4")
    assert again.rc != 0
    assert "refusing: m4 is already a member of the federation" in again.output


def test_remove_member(fed: LocalFederation) -> None:
    pids = {h: p for h, p in fed.agent_pids().items() if h != "m4"}
    run = fed.playbook("remove-member.yml", "-e", "node=m4")
    _assert_ok(run, "remove-member.yml -e node=m4")
    assert set(run.recap) == {"m4"}
    assert fed.pid("m4") is None, "m4's agent still runs"
    fed.wait_for(lambda: "m4" not in [m["hostname"] for m in fed.status("sn1")["members"]],
                 30, "sn1 to forget m4")
    assert fed.agent_pids() == pids


def test_add_a_supernode_by_editing_the_inventory(fed: LocalFederation) -> None:
    pids = fed.agent_pids()
    epoch = fed.status("sn1")["epoch"]
    fed.add_host("supernodes", "sn4", 7)
    run = fed.playbook("bootstrap-federation.yml", "--limit", "!m4")
    TIMINGS["add_supernode"] = run.seconds
    _assert_ok(run, "bootstrap-federation.yml with sn4 added")
    assert fed.pid("sn4") is not None
    assert {h: fed.agent_pids().get(h) for h in pids} == pids, "an existing agent restarted"
    for node in [*SUPERNODES, "sn4"]:
        assert fed.status(node)["epoch"] == epoch, f"{node}: epoch changed"

    def roster_everywhere() -> bool:
        for node in [*SUPERNODES, "sn4", *MEMBERS]:
            names = [s["hostname"] for s in fed.status(node)["roster"]["supernodes"]]
            assert names == [*SUPERNODES, "sn4"], f"{node}: roster {names}"
        return True

    fed.wait_for(roster_everywhere, 30, "sn4 in every node's roster")


def _back_in_rounds(samples: list[Sample], pid: int) -> float | None:
    """When the agent ``pid`` was first seen back in the rounds: a round later than the first one
    it answered with and, for a supernode, seeing itself good (what the restart handler waits for)."""
    first_round = None
    for s in samples:
        if s.pid != pid or not s.status or s.status.get("round") is None:
            continue
        if first_round is None:
            first_round = s.status["round"]
            continue
        me = [n for n in s.status.get("supernodes", []) if n.get("me")]
        good = s.status.get("role") != "supernode" or (me and me[0].get("health") == "good")
        if s.status["round"] > first_round and good:
            return s.t
    return None


def test_upgrade_rolls_out_one_supernode_at_a_time_then_members(fed: LocalFederation) -> None:
    """A new agent version (the snapshot of agent/ with a bumped version) and a rerun: every agent
    restarts once, supernodes one at a time in inventory order, each back in the rounds before the
    next one restarts, members after; the federation ends healthy with every member."""
    groups = fed.groups()
    supernodes = groups["supernodes"]
    members = [m for m in groups["members"] if fed.pid(m) is not None]
    nodes = supernodes + members
    old = fed.agent_pids()
    assert set(old) >= set(nodes), old
    epoch = fed.status(supernodes[0])["epoch"]
    pyproject = fed.agent_source / "pyproject.toml"
    text = pyproject.read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)[1]
    new_version = version + ".post1"
    pyproject.write_text(text.replace(f'version = "{version}"', f'version = "{new_version}"', 1))

    with StatusRecorder(fed, nodes) as rec:
        run = fed.playbook("bootstrap-federation.yml", "--limit", "!m4")
    TIMINGS["upgrade"] = run.seconds
    _assert_ok(run, "bootstrap-federation.yml with a new agent version")
    assert list(fed.root.glob(f"venv/lib/python*/site-packages/esgf_nodemgr_agent-{new_version}.dist-info"))

    new = fed.agent_pids()
    started = {}
    for node in nodes:
        assert new.get(node) not in (None, old[node]), f"{node} did not restart ({old[node]} -> {new.get(node)})"
        seen = {s.pid for s in rec.of(node)} - {None}
        assert seen <= {old[node], new[node]}, f"{node} restarted more than once: pids {seen}"
        started[node] = process_start_time(new[node])
    order = sorted(nodes, key=lambda n: started[n])
    assert order[:len(supernodes)] == supernodes, f"restart order {order}"
    for prev, nxt in zip(supernodes, supernodes[1:]):
        back = _back_in_rounds(rec.of(prev), new[prev])
        assert back is not None and back < started[nxt], (
            f"{nxt} restarted at {started[nxt]:.2f} before {prev} was back in the rounds ({back})")
    last_back = _back_in_rounds(rec.of(supernodes[-1]), new[supernodes[-1]])
    assert last_back is not None
    for m in members:
        assert started[m] > last_back, f"member {m} restarted before the last supernode was back"

    def healthy() -> bool:
        st = fed.status(supernodes[0])
        assert st["epoch"] == epoch
        assert all(s["health"] == "good" for s in st["supernodes"]), st["supernodes"]
        served = {m["hostname"]: m["server_hostname"] for m in st["members"]}
        assert set(served) == set(members) and all(served.values()), served
        for m in members:
            assert fed.status(m)["joined"], m
        return True

    fed.wait_for(healthy, 30, "a healthy federation with every member after the upgrade")


def test_check_mode_on_a_fresh_inventory_changes_nothing(tmp_path: Path) -> None:
    fresh = LocalFederation(tmp_path)
    try:
        run = fresh.playbook("bootstrap-federation.yml", "--check")
        TIMINGS["check_fresh"] = run.seconds
        _assert_ok(run, "bootstrap-federation.yml --check")
        assert fresh.files() == [], f"check mode wrote files: {fresh.files()[:20]}"
        assert fresh.agent_pids() == {}
        for offset in range(6):
            assert not port_listening(fresh.port_base + offset), "an agent was started"
    finally:
        fresh.stop_all()


# -- inventories: parsing and the pre-check (no agent, no host touched) --------------------------
def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO_ROOT, env=_ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)


@pytest.mark.parametrize("inventory", ["example", "local"])
def test_shipped_inventories_parse_and_pass_the_precheck(inventory: str) -> None:
    bin_dir = REPO_ROOT / ".venv" / "bin"
    listed = _run([str(bin_dir / "ansible-inventory"), "-i", f"inventories/{inventory}", "--list"])
    assert listed.returncode == 0, listed.stdout
    doc = json.loads(listed.stdout[listed.stdout.index("{"):])
    assert doc["supernodes"]["hosts"] and doc["members"]["hosts"]
    for host in doc["supernodes"]["hosts"] + doc["members"]["hosts"]:
        assert "ansible_python_interpreter" in doc["_meta"]["hostvars"][host], host
    run = _run([str(bin_dir / "ansible-playbook"), "-i", f"inventories/{inventory}",
                "playbooks/precheck.yml"])
    assert run.returncode == 0, run.stdout[-3000:]
    assert "inventory OK" in run.stdout


def test_precheck_reports_every_problem_at_once(tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(REPO_ROOT / "inventories" / "local", inv)
    doc = yaml.safe_load((inv / "hosts.yml").read_text())
    members = doc["all"]["children"]["members"]["hosts"]
    del members["m3"]["project"]                      # a member without a project
    members["sn2"] = {"project": "CMIP6"}             # a host in both groups
    members["m1"]["esgf_nm_prot"] = 17999             # a typo of esgf_nm_port
    (inv / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run = _run([str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inv),
                "playbooks/bootstrap-federation.yml"])
    assert run.returncode != 0
    out = run.stdout
    assert "m3" in out and "project" in out
    assert "sn2" in out
    assert "esgf_nm_prot" in out
    # Nothing ran after the pre-check play.
    assert "PLAY [Certificates]" not in out
