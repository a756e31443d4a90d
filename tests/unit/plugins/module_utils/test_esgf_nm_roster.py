"""Roster helpers: changes between rosters, diff text, and the starting point of nodemap."""

from __future__ import annotations

from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_roster import (
    OUR_FORMAT,
    roster_changes,
    roster_text,
    same_roster,
    starting_map,
)


def roster(version, names, retired=(), next_id=None):
    sns = [{"id": str(i + 1), "hostname": h, "address": f"10.0.0.{i + 1}", "port": 7443}
           for i, h in enumerate(names)]
    return {"version": version, "capacity": 20, "next_id": next_id or len(names) + len(retired) + 1,
            "supernodes": sns, "retired": [{"id": i, "hostname": h} for i, h in retired]}


def test_changes_name_added_and_newly_retired_hostnames():
    before = roster(1, ["a", "b"], retired=[("9", "z")])
    after = roster(2, ["a", "c"], retired=[("9", "z"), ("2", "b")])
    assert roster_changes(before, after) == (["c"], ["b"])
    assert roster_changes(None, after) == (["a", "c"], ["z", "b"])


def test_same_roster_ignores_retired_order_but_not_supernode_order():
    a = roster(1, ["a", "b"], retired=[("8", "y"), ("9", "z")])
    b = dict(a, retired=list(reversed(a["retired"])))
    assert same_roster(a, b)
    assert not same_roster(a, dict(a, supernodes=list(reversed(a["supernodes"]))))


def test_roster_text_lists_ids_hostnames_and_retired():
    text = roster_text(roster(3, ["a"], retired=[("2", "b")]))
    assert text == ("roster version 3, capacity 20, next id 3\n"
                    "supernode 1 a 10.0.0.1:7443\n"
                    "retired 2 b\n")
    assert roster_text(None) == ""


def test_starting_map_prefers_the_newer_roster_and_keeps_next_id_high():
    dest = {"format": OUR_FORMAT, "roster": roster(1, ["a", "b"], next_id=7), "entries": {"1": {}}}
    live = roster(2, ["a", "b", "c"], next_id=4)
    start = starting_map(dest, live)
    assert start["roster"]["version"] == 2
    assert start["roster"]["next_id"] == 7
    assert start["entries"] == {"1": {}}
    # an older live roster does not replace a newer file
    assert starting_map(dest, roster(0, []))["roster"] == dest["roster"]
    assert starting_map(None, live) == {"format": OUR_FORMAT, "roster": live}
    assert starting_map(dest, None) is dest


def test_starting_map_keeps_ids_retired_only_in_the_file():
    dest = {"format": OUR_FORMAT, "roster": roster(3, ["a"], retired=[("2", "b")])}
    live = roster(3, ["a"])
    start = starting_map(dest, live)
    assert start["roster"]["retired"] == [{"id": "2", "hostname": "b"}]
