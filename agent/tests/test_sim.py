"""The simulator as a product: scenarios hold their invariants, runs replay, breakage is caught.

Small federations (5 supernodes, 10-20 members) keep this file well under a minute.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any, Dict

import pytest

from esgf_nodemgr.core import nodemap as nm
from esgf_nodemgr.core.supernode import SupernodeCore
from esgf_nodemgr.sim import faults as fl
from esgf_nodemgr.sim.checker import Monitor
from esgf_nodemgr.sim.engine import Simulator
from esgf_nodemgr.sim.scenario import Spec, layout, median, percentile, run


def _run(**kw: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {"supernodes": 5, "members": 15, "duration_s": 120.0}
    base.update(kw)
    return run(Spec(**base))


@pytest.mark.parametrize(("scenario", "seed", "loss"), [
    ("crash", 1, 0.01), ("crash", 2, 0.05),
    ("partition", 3, 0.01), ("partition", 4, 0.03),
    ("link-cut", 5, 0.01), ("link-cut", 6, 0.05),
    ("churn", 7, 0.01), ("churn", 8, 0.03),
])
def test_scenarios_hold_every_invariant(scenario: str, seed: int, loss: float) -> None:
    r = _run(scenario=scenario, seed=seed, loss=loss)
    assert r["violations"] == [], f"reproduce: {r['reproduce']}"
    assert r["liveness_s"] is not None
    assert r["false_down"] == 0
    if scenario in ("crash", "churn"):
        assert r["detection_s"], "every crash lasts long enough to be detected"


def test_one_second_clock_skew_is_tolerated() -> None:
    r = _run(scenario="crash", seed=11, loss=0.02, skew_s=1.0, members=20)
    assert r["violations"] == [], f"reproduce: {r['reproduce']}"
    assert r["detection_s"]


def test_same_seed_same_result() -> None:
    a = _run(scenario="churn", seed=21, loss=0.03, members=12, duration_s=80.0)
    b = _run(scenario="churn", seed=21, loss=0.03, members=12, duration_s=80.0)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = _run(scenario="churn", seed=22, loss=0.03, members=12, duration_s=80.0)
    assert json.dumps(a, sort_keys=True) != json.dumps(c, sort_keys=True)


def test_fault_plan_depends_on_seed_only_and_always_heals() -> None:
    spec = Spec(supernodes=10, members=30, seed=5, scenario="churn", duration_s=200.0)
    lay = layout(spec)
    assert lay.plan == layout(replace(spec, profile="prototype")).plan
    crashed = [f.nodes[0] for f in lay.plan if f.action == fl.CRASH]
    restarted = [f.nodes[0] for f in lay.plan if f.action == fl.RESTART]
    assert sorted(crashed) == sorted(restarted) and crashed
    assert all(0 <= f.at <= spec.duration_s for f in lay.plan)
    for scenario in ("partition", "link-cut"):
        plan = fl.plan(scenario, lay.supernodes, lay.members, 200.0, 5)
        opened = sum(1 for f in plan if f.action in (fl.PARTITION, fl.CUT))
        closed = sum(1 for f in plan if f.action in (fl.HEAL, fl.UNCUT))
        assert opened == closed > 0


def test_a_reused_member_id_is_caught_and_reported_with_its_seed() -> None:
    """Tamper with one supernode's persisted map: give a member's id to another hostname."""

    def hook(phase: str, sim: Simulator) -> None:
        if phase != "safety":
            return
        core = sim.nodes["sn1"].core
        assert isinstance(core, SupernodeCore)
        m = core.map
        _home, victim = next((sid, mem) for sid, mem in m.all_members() if sid != "1")
        own = m.entry("1")
        intruder = replace(victim, hostname="intruder.example", address="intruder.example")
        sim.tamper("sn1", m.with_entry(replace(own, version=own.version + 1,
                                               members=(*own.members, intruder))))

    from esgf_nodemgr.sim.scenario import OursRun

    r = OursRun(Spec(supernodes=5, members=10, seed=31, scenario="none", duration_s=20.0,
                     samples=0), hook).run()
    assert any("reused" in v and "intruder.example" in v for v in r["violations"]), r["violations"]
    assert "--seed 31" in r["reproduce"]


def test_a_version_going_down_is_caught() -> None:
    def hook(phase: str, sim: Simulator) -> None:
        if phase != "safety":
            return
        core = sim.nodes["sn2"].core
        assert isinstance(core, SupernodeCore)
        own = core.map.entry("2")
        assert own.version > 0
        sim.tamper("sn2", core.map.with_entry(replace(own, version=own.version - 1)))

    from esgf_nodemgr.sim.scenario import OursRun

    r = OursRun(Spec(supernodes=5, members=10, seed=32, scenario="none", duration_s=10.0,
                     samples=0), hook).run()
    assert any("version of entry/2 went down" in v for v in r["violations"]), r["violations"]


def test_a_member_in_two_entries_is_reported() -> None:
    m = nm.NodeMap(entries={
        "1": nm.Entry("1", 1, 2, (nm.Member("1.1", "a.example", "CMIP6"),)),
        "2": nm.Entry("2", 1, 2, (nm.Member("2.1", "a.example", "CMIP6"),
                                  nm.Member("1.1", "b.example", "CMIP6"))),
    })
    problems = Monitor._check_map(m, "test map")
    assert any("a.example listed in entries 1 and 2" in p for p in problems)
    assert any("id 1.1 names" in p for p in problems)


def test_prototype_detects_far_slower_than_ours_in_the_same_run() -> None:
    spec = Spec(supernodes=5, members=10, seed=41, scenario="crash", duration_s=300.0,
                samples=1)
    ours = run(spec)
    proto = run(replace(spec, profile="prototype"))
    assert ours["violations"] == []
    assert ours["detection_s"] and proto["detection_s"]
    det_ours, det_proto = median(ours["detection_s"]), median(proto["detection_s"])
    assert det_ours is not None and det_proto is not None
    assert det_proto > 4 * det_ours
    assert proto["bytes_per_membership_change"] > 4 * ours["bytes_per_membership_change"]


def test_percentiles() -> None:
    assert percentile([], 99) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5


def _sim_parser() -> argparse.ArgumentParser:
    from esgf_nodemgr.cli import sim_cmd

    parser = argparse.ArgumentParser(prog="esgf-nm")
    sim_cmd.register(parser.add_subparsers(dest="command"))
    return parser


SIM_ARGS = ["sim", "--supernodes", "3", "--members", "6", "--seed", "7", "--duration", "40",
            "--scenario", "crash", "--loss", "0.02", "--json"]


def _check_json(out: str) -> None:
    result = json.loads(out)
    for key in ("seed", "profile", "scenario", "supernodes", "members", "detection_s",
                "convergence_s", "messages_per_supernode_per_s", "messages_per_member_per_s",
                "bytes_per_membership_change", "false_down", "violations"):
        assert key in result
    assert result["seed"] == 7 and result["violations"] == []


def test_sim_command_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    args = _sim_parser().parse_args(SIM_ARGS)
    assert args.func(args) == 0
    _check_json(capsys.readouterr().out)
    args = _sim_parser().parse_args([*SIM_ARGS[:-1], "--profile", "prototype"])
    assert args.func(args) == 0
    assert "prototype / crash" in capsys.readouterr().out


def test_esgf_nm_sim_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    from esgf_nodemgr.cli import main as cli_main

    if "esgf_nodemgr.cli.sim_cmd" not in cli_main.COMMAND_MODULES:
        pytest.skip("cli/main.py does not register esgf_nodemgr.cli.sim_cmd yet")
    assert cli_main.main(SIM_ARGS) == 0
    _check_json(capsys.readouterr().out)
    assert cli_main.main(["sim", "--supernodes", "0"]) == 2
