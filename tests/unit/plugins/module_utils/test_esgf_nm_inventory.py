"""The inventory validation behind ``inventory_check``: a table of good and bad inventories."""

from __future__ import annotations

import pytest
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_inventory import (
    check_inventory,
    port_problem,
    summarize,
)

SN = [{"name": "sn1", "address": "10.0.0.1"}, {"name": "sn2", "address": "10.0.0.2", "port": 7444}]
MEM = [{"name": "m1", "project": "CMIP6"}, {"name": "m2", "project": "CORDEX", "standby": True}]


def test_a_good_inventory_has_no_problem():
    assert check_inventory(SN, MEM) == []


def test_known_and_allowed_variables_pass():
    sn = [dict(SN[0], vars=["esgf_nm_address", "esgf_nm_port", "esgf_nm_agent_user", "ansible_host"])]
    assert check_inventory(sn, [], allowed_vars=["esgf_nm_agent_*"]) == []
    # a dict of variables counts by its keys
    assert check_inventory([dict(SN[0], vars={"esgf_nm_port": 1})], []) == []


@pytest.mark.parametrize("supernodes, members, expected", [
    ([], MEM, "the supernodes group is empty"),
    ([*SN, {"name": "sn1", "address": "10.0.0.9"}], [], "sn1: supernodes is listed twice"),
    (SN, [{"name": "sn2", "project": "P"}], "sn2: in both the supernodes and the members group"),
    ([SN[0], {"name": "sn3", "address": "10.0.0.1"}], [], "sn1, sn3: the same address and port (10.0.0.1:7443)"),
    ([{"name": "a", "port": 7443}], [{"name": "a.alias", "address": "a", "project": "P"}],
     "a, a.alias: the same address and port (a:7443)"),
    (SN, [{"name": "m1"}], "m1: member without a project"),
    (SN, [{"name": "m1", "project": "  "}], "m1: member without a project"),
    (SN, [{"name": "m1", "project": 6}], "m1: project must be a string"),
    (SN, [{"name": "m1", "project": "P", "standby": "yes"}], "m1: standby must be true or false (a boolean), got 'yes' (str)"),
    ([{"name": "sn1", "port": 0}], [], "sn1: esgf_nm_port must be from 1 to 65535, got 0"),
    ([{"name": "sn1", "port": 70000}], [], "sn1: esgf_nm_port must be from 1 to 65535, got 70000"),
    ([{"name": "sn1", "port": "http"}], [], "sn1: esgf_nm_port must be a number from 1 to 65535, got 'http'"),
    ([{"name": "sn1", "port": True}], [], "sn1: esgf_nm_port must be a number"),
    ([{"name": "sn1", "address": "a b"}], [], "sn1: esgf_nm_address must be a host name or IP address without spaces"),
    ([{"name": "sn1", "vars": ["esgf_nm_prot"]}], [], "sn1: unknown variable esgf_nm_prot (did you mean esgf_nm_port?)"),
    ([{"name": "sn1", "vars": ["esgf_nm_adress"]}], [], "sn1: unknown variable esgf_nm_adress (did you mean esgf_nm_address?)"),
    ([{"name": "sn1", "vars": ["esgf_nm_something_else"]}], [], "sn1: unknown variable esgf_nm_something_else"),
    ([{"name": ""}], [], "supernodes #1: empty inventory name"),
])
def test_each_problem_is_reported_with_its_host(supernodes, members, expected):
    problems = check_inventory(supernodes, members)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_typo_below_an_allowed_name_is_suggested():
    problems = check_inventory([{"name": "sn1", "vars": ["esgf_nm_agent_usr"]}], [],
                               allowed_vars=["esgf_nm_agent_user"])
    assert problems == ["sn1: unknown variable esgf_nm_agent_usr (did you mean esgf_nm_agent_user?)"]


def test_every_problem_is_listed_at_once():
    problems = check_inventory([{"name": "sn1", "port": 0, "vars": ["esgf_nm_prot"]}],
                               [{"name": "sn1"}, {"name": "m1"}])
    assert len(problems) >= 5, problems


def test_port_strings_of_digits_count_as_ports():
    assert port_problem("7443") is None
    assert port_problem(7443) is None
    assert "got 65536" in port_problem(65536)


def test_summary_counts_members_per_project_and_keeps_bootstrap_order():
    s = summarize(SN, [*MEM, {"name": "m3", "project": "CMIP6"}])
    assert s == {"supernodes": 2, "members": 3, "standby": 1, "projects": {"CMIP6": 2, "CORDEX": 1},
                 "bootstrap_order": ["sn1", "sn2"]}
