"""``epoch``, ``nodemap``, ``roster``, ``member`` and ``federation_info`` against real agents.

One federation for the whole file (two supernodes and a member, real processes, real mTLS,
from the agent's own test support). The tests run in file order and build on each other the
way the bootstrap playbook does: epoch, map, roster, join, leave.
"""

from __future__ import annotations

import json
import shutil

import pytest
from ansible_collections.esgf.nodemgr.plugins.modules import epoch, federation_info, member, nodemap, roster
from conftest import ESGF_NM, agent_support

SN1, SN2, M1 = "sn1.test", "sn2.test", "m1.test"


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    support = agent_support()
    f = support.build_federation(tmp_path_factory.mktemp("federation"), 2, 1, round_s=1.0, capacity=20)
    try:
        f.start(SN2)
        f.start(SN1)
        yield f
    finally:
        f.stop_all()


def cli(fed, host, **extra):
    return dict(esgf_nm=ESGF_NM, socket=fed.nodes[host].socket, timeout=60, **extra)


def supernode_list(fed):
    return [{"hostname": h, "address": "127.0.0.1", "port": fed.nodes[h].port} for h in (SN1, SN2)]


def test_federation_info_reads_the_agent(run_module, fed):
    result = run_module(federation_info, cli(fed, SN1), check_mode=True)
    assert result["changed"] is False
    info = result["federation"]
    assert info["role"] == "supernode" and info["hostname"] == SN1
    assert info["epoch"] is None
    assert [s["hostname"] for s in info["roster"]["supernodes"]] == [SN1, SN2]


def test_epoch_is_seeded_once(run_module, fed):
    preview = run_module(epoch, cli(fed, SN1), check_mode=True)
    assert preview["changed"] and preview["seeded"] and preview["epoch"] is None
    assert fed.status(SN1)["epoch"] is None  # check mode seeded nothing

    seeded = run_module(epoch, cli(fed, SN1))
    assert seeded["changed"] and seeded["seeded"]
    value = seeded["epoch"]
    assert isinstance(value, float) and value > 0
    assert seeded["round_s"] == 1.0

    again = run_module(epoch, cli(fed, SN1, value=12345.0))
    assert not again["changed"] and again["epoch"] == value
    assert "already seeded" in json.dumps(again.get("warnings"))

    agent_support().wait_for(lambda: fed.status(SN2).get("epoch") == value, 20, "sn2 to learn the epoch")
    on_sn2 = run_module(epoch, cli(fed, SN2))
    assert not on_sn2["changed"] and on_sn2["epoch"] == value


def test_epoch_cannot_be_seeded_on_a_member(run_module, fed):
    fed.start(M1)
    result = run_module(epoch, cli(fed, M1))
    assert result["failed"]
    assert "only a supernode seeds the epoch" in result["msg"]


def test_nodemap_starts_from_the_live_roster(run_module, fed, tmp_path):
    dest = tmp_path / "map.json"
    shutil.copy(str(fed.root / "map.json"), str(dest))
    same = run_module(nodemap, cli(fed, SN1, supernodes=supernode_list(fed), dest=str(dest)))
    assert not same["changed"] and same["source"] == "agent+file"
    assert same["roster_version"] == fed.status(SN1)["roster"]["version"]

    # No file: the live roster alone is enough to keep every id.
    fresh = tmp_path / "fresh.json"
    rebuilt = run_module(nodemap, cli(fed, SN1, supernodes=list(reversed(supernode_list(fed))), dest=str(fresh)))
    assert rebuilt["changed"] and rebuilt["source"] == "agent"
    live_ids = dict((s["hostname"], s["id"]) for s in fed.status(SN1)["roster"]["supernodes"])
    assert dict((s["hostname"], s["id"]) for s in rebuilt["roster"]["supernodes"]) == live_ids


def test_roster_installs_a_newer_roster_once(run_module, fed, tmp_path):
    new_map = str(tmp_path / "map-v2.json")
    built = run_module(nodemap, cli(fed, SN1, supernodes=supernode_list(fed), capacity=30, dest=new_map))
    assert built["changed"]
    version = built["roster_version"]
    before = fed.status(SN1)["roster"]["version"]
    assert version == before + 1

    preview = run_module(roster, cli(fed, SN1, src=new_map), check_mode=True, diff=True)
    assert preview["changed"] and preview["roster_version"] == version
    assert "capacity 30" in preview["diff"]["after"] and "capacity 20" in preview["diff"]["before"]
    assert fed.status(SN1)["roster"]["version"] == before

    installed = run_module(roster, cli(fed, SN1, src=new_map))
    assert installed["changed"] and installed["answer"]["status"] == "ok"
    assert installed["previous_version"] == before and installed["roster_version"] == version
    assert fed.status(SN1)["roster"]["version"] == version

    again = run_module(roster, cli(fed, SN1, src=new_map))
    assert not again["changed"]
    assert again["epoch"] == fed.status(SN1)["epoch"]  # what the bootstrap's epoch check reads

    # sn1 passes the roster on; installing it on sn2 as well is then a no-op or a catch-up.
    run_module(roster, cli(fed, SN2, src=new_map))
    assert fed.status(SN2)["roster"]["version"] == version

    stale = run_module(roster, cli(fed, SN1, src=str(fed.root / "map.json")))
    assert stale["failed"]
    assert f"older than the agent's version {version}" in stale["msg"]


def test_roster_accepts_a_roster_only_document(run_module, fed, tmp_path):
    doc = {"roster": fed.status(SN1)["roster"]}
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(doc))
    assert not run_module(roster, cli(fed, SN1, src=str(path)))["changed"]


def test_member_joins_and_shows_who_accepted(run_module, fed):
    args = cli(fed, M1, project="CMIP6", wait=30)
    preview = run_module(member, args, check_mode=True, diff=True)
    assert preview["changed"] and preview["joined"]
    assert preview["diff"]["before"]["joined"] is False
    assert fed.status(M1)["joined"] is False  # check mode asked nobody

    joined = run_module(member, args, diff=True)
    assert joined["changed"] and joined["joined"] and joined["state"] == "joined"
    assert joined["server"] in (SN1, SN2)
    assert joined["member_id"]
    assert joined["project"] == "CMIP6" and joined["standby"] is False
    accepted = [a for a in joined["attempts"] if a["answer"] == "accept"]
    assert [a["supernode"] for a in accepted] == [joined["server"]], joined["attempts"]
    assert joined["diff"]["after"]["server"] == joined["server"]

    again = run_module(member, args)
    assert not again["changed"] and again["server"] == joined["server"]

    change = run_module(member, dict(args, standby=True), check_mode=True)
    assert change["changed"] and change["standby"] is True
    assert fed.status(M1)["standby"] is False


def test_member_refuses_on_a_supernode(run_module, fed):
    result = run_module(member, cli(fed, SN1, project="CMIP6"))
    assert result["failed"] and "is a supernode, not a member" in result["msg"]


def test_federation_info_on_a_member_and_a_supernode_after_the_join(run_module, fed):
    on_member = run_module(federation_info, cli(fed, M1))["federation"]
    assert on_member["role"] == "member" and on_member["joined"] is True
    on_supernode = run_module(federation_info, cli(fed, on_member["server_hostname"]))["federation"]
    assert M1 in [m["hostname"] for m in on_supernode["members"]]


def test_member_leaves(run_module, fed):
    args = cli(fed, M1, state="absent", wait=30)
    left = run_module(member, args, diff=True)
    assert left["changed"] and not left["joined"] and left["server"] is None
    assert left["diff"]["before"]["joined"] is True and left["diff"]["after"]["joined"] is False
    assert not run_module(member, args)["changed"]


def test_an_agent_that_is_not_running_is_named(run_module, fed, tmp_path):
    result = run_module(federation_info, dict(esgf_nm=ESGF_NM, socket=str(tmp_path / "none.sock")))
    assert result["failed"]
    assert result["msg"].startswith("esgf-nm status: agent not running at %s" % (tmp_path / "none.sock"))


def test_a_join_nobody_accepts_fails_naming_each_supernode(run_module, tmp_path):
    support = agent_support()
    lonely = support.build_federation(tmp_path / "lonely", 2, 1, round_s=1.0)
    try:
        lonely.start(M1)  # its supernodes are never started: nobody answers
        result = run_module(member, cli(lonely, M1, project="CMIP6", wait=20))
    finally:
        lonely.stop_all()
    assert result["failed"] and not result["joined"]
    lines = result["msg"].splitlines()
    assert lines[0] == "join failed (state failed after 20 s): no supernode accepted this node:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [SN1, SN2]
    assert all("no answer" in line for line in lines[1:]), lines
    assert sorted(a["supernode"] for a in result["attempts"]) == [SN1, SN2]
