"""``nodemap`` end to end with the real ``esgf-nm map generate`` (no mocks).

Without an agent (the socket does not exist) the file is the starting point; with a running
agent, its live roster is.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.esgf.nodemgr.plugins.modules import nodemap
from conftest import ESGF_NM

SN = [{"hostname": "sn1.test", "address": "10.0.0.1"},
      {"hostname": "sn2.test", "address": "10.0.0.2"},
      {"hostname": "sn3.test", "address": "10.0.0.3", "port": 7444}]


@pytest.fixture
def args(tmp_path):
    if not os.path.exists(ESGF_NM):
        pytest.skip("esgf-nm not installed in this venv")
    return {"esgf_nm": ESGF_NM, "socket": str(tmp_path / "no-agent.sock"), "dest": str(tmp_path / "map.json")}


def read(path):
    with open(path) as f:
        return f.read()


def ids(result):
    return dict((s["hostname"], s["id"]) for s in result["roster"]["supernodes"])


def test_new_map_then_idempotent(run_module, args):
    first = run_module(nodemap, dict(args, supernodes=SN, capacity=5), diff=True)
    assert first["changed"] and first["source"] == "none"
    assert ids(first) == {"sn1.test": "1", "sn2.test": "2", "sn3.test": "3"}
    assert first["added"] == ["sn1.test", "sn2.test", "sn3.test"] and first["retired"] == []
    assert first["roster"]["capacity"] == 5
    assert first["diff"]["before"] == ""
    assert "supernode 3 sn3.test 10.0.0.3:7444" in first["diff"]["after"]
    with open(args["dest"]) as f:
        on_disk = json.load(f)
    assert on_disk["roster"] == first["roster"]
    assert first["content"] == read(args["dest"])  # the map as written: no need to read it again

    again = run_module(nodemap, dict(args, supernodes=SN, capacity=5), diff=True)
    assert not again["changed"] and again["source"] == "file"
    assert again["roster_version"] == first["roster_version"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["added"] == [] and again["retired"] == []
    assert again["content"] == read(args["dest"])


def test_ids_are_stable_when_reordered_and_new_hosts_get_new_ids(run_module, args):
    first = run_module(nodemap, dict(args, supernodes=SN))
    reordered = run_module(nodemap, dict(args, supernodes=list(reversed(SN))))
    assert reordered["changed"]  # the order is the rotation order: a real change
    assert ids(reordered) == ids(first)
    assert [s["hostname"] for s in reordered["roster"]["supernodes"]] == ["sn3.test", "sn2.test", "sn1.test"]
    assert reordered["roster_version"] == first["roster_version"] + 1

    removed = run_module(nodemap, dict(args, supernodes=SN[:2]))
    assert removed["retired"] == ["sn3.test"] and removed["added"] == []
    added = run_module(nodemap, dict(args, supernodes=[*SN[:2], {"hostname": "sn4.test"}]))
    assert added["added"] == ["sn4.test"]
    assert ids(added)["sn4.test"] == "4"  # never 3: that id stays reserved for sn3
    back = run_module(nodemap, dict(args, supernodes=SN))
    assert ids(back)["sn3.test"] == "3"  # a returning hostname gets its old id back
    assert back["retired"] == ["sn4.test"]


def test_check_mode_writes_nothing_but_reports_the_change(run_module, args):
    preview = run_module(nodemap, dict(args, supernodes=SN), check_mode=True, diff=True)
    assert preview["changed"] and not os.path.exists(args["dest"])
    assert preview["roster_version"] == 1
    assert json.loads(preview["content"])["roster"] == preview["roster"]  # what it would write
    run_module(nodemap, dict(args, supernodes=SN))
    before = read(args["dest"])
    mtime = os.stat(args["dest"]).st_mtime_ns
    change = run_module(nodemap, dict(args, supernodes=SN[:2]), check_mode=True)
    assert change["changed"] and change["retired"] == ["sn3.test"]
    assert read(args["dest"]) == before and os.stat(args["dest"]).st_mtime_ns == mtime


def test_file_mode_is_applied(run_module, args):
    result = run_module(nodemap, dict(args, supernodes=SN, mode="0640"))
    assert result["changed"]
    assert oct(os.stat(args["dest"]).st_mode & 0o777) == "0o640"
    assert not run_module(nodemap, dict(args, supernodes=SN, mode="0640"))["changed"]
    assert run_module(nodemap, dict(args, supernodes=SN, mode="0644"))["changed"]


def test_bad_input_fails_clearly(run_module, args):
    dup = run_module(nodemap, dict(args, supernodes=[*SN, SN[0]]))
    assert dup["failed"] and "listed twice" in dup["msg"]
    empty = run_module(nodemap, dict(args, supernodes=[]))
    assert empty["failed"] and "supernodes is empty" in empty["msg"]
    with open(args["dest"], "w") as f:
        f.write("{not json")
    broken = run_module(nodemap, dict(args, supernodes=SN))
    assert broken["failed"] and "is not a JSON node map" in broken["msg"]
    os.unlink(args["dest"])
    missing = run_module(nodemap, dict(args, supernodes=SN, esgf_nm="/nonexistent/esgf-nm"))
    assert missing["failed"] and "esgf-nm not found at /nonexistent/esgf-nm" in missing["msg"]


def test_host_arguments_for_the_cli():
    assert nodemap.host_argument({"hostname": "a", "address": None, "port": 7443}) == "a=a:7443"
    assert nodemap.host_argument({"hostname": "a", "address": "2001:db8::1", "port": 1}) == "a=[2001:db8::1]:1"
