"""``inventory_check`` as Ansible runs it: ok, and a failure listing one problem per line."""

from __future__ import annotations

from ansible_collections.esgf.nodemgr.plugins.modules import inventory_check


def test_a_good_inventory_passes_with_a_summary(run_module):
    result = run_module(inventory_check, {
        "supernodes": [{"name": "sn1", "address": "10.0.0.1", "vars": ["esgf_nm_address"]},
                       {"name": "sn2", "port": "7444"}],
        "members": [{"name": "m1", "project": "CMIP6", "standby": True}],
    }, check_mode=True)
    assert not result.get("failed") and result["changed"] is False
    assert result["problems"] == []
    assert result["summary"]["bootstrap_order"] == ["sn1", "sn2"]
    assert result["summary"]["projects"] == {"CMIP6": 1}


def test_a_bad_inventory_fails_with_one_line_per_problem(run_module):
    result = run_module(inventory_check, {
        "supernodes": [{"name": "sn1", "vars": ["esgf_nm_prot"]}],
        "members": [{"name": "sn1", "project": "P"}, {"name": "m2", "standby": "no"}],
        "allowed_vars": ["esgf_nm_agent_*"],
    })
    assert result["failed"]
    lines = result["msg"].splitlines()
    assert lines[0] == f"the inventory has {len(result['problems'])} problems:"
    assert lines[1:] == result["problems"]
    assert "sn1: unknown variable esgf_nm_prot (did you mean esgf_nm_port?)" in result["problems"]
    assert any(p.startswith("m2: member without a project") for p in result["problems"])
    assert any(p.startswith("sn1: in both") for p in result["problems"])


def test_an_empty_federation_fails(run_module):
    result = run_module(inventory_check, {})
    assert result["failed"]
    assert "supernodes group is empty" in result["msg"]
