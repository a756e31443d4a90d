"""Every role's meta/argument_specs.yml stays in step with its defaults/main.yml.

As in the prometheus.prometheus collection: the options a role documents are exactly the
variables it defaults, each documented option has a description and a type, and every variable
carries the role's prefix (``esgf_nm_<role>_``). Also renders the agent's systemd unit with the
role's defaults to check that it stays hardened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent for p in (REPO_ROOT / "roles").glob("*/meta/argument_specs.yml"))
VALID_TYPES = {"str", "int", "float", "bool", "list", "dict", "path", "raw", "jsonarg", "json",
               "bytes", "bits"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _specs(role: Path) -> dict[str, Any]:
    return _load(role / "meta" / "argument_specs.yml")["argument_specs"]


def test_every_role_has_argument_specs() -> None:
    roles = sorted(p.name for p in (REPO_ROOT / "roles").iterdir() if p.is_dir())
    assert roles, "no roles"
    assert [r.name for r in ROLES] == roles, "a role lacks meta/argument_specs.yml"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_have_the_same_keys(role: Path) -> None:
    defaults = set((_load(role / "defaults" / "main.yml") or {}).keys())
    specs = _specs(role)
    assert "main" in specs
    documented = set(specs["main"].get("options", {}).keys())
    assert documented - defaults == set(), f"{role.name}: documented without a default"
    assert defaults - documented == set(), f"{role.name}: defaulted without documentation"
    # Other entry points document the same options (or a subset of them).
    for entry, spec in specs.items():
        extra = set((spec.get("options") or {}).keys()) - defaults
        assert not extra, f"{role.name}/{entry}: options without a default: {sorted(extra)}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_option_has_a_description_and_a_type(role: Path) -> None:
    problems: list[str] = []
    for entry, spec in _specs(role).items():
        if not spec.get("short_description"):
            problems.append(f"{entry}: no short_description")
        for name, opt in (spec.get("options") or {}).items():
            if not opt.get("description"):
                problems.append(f"{entry}.{name}: no description")
            if opt.get("type") not in VALID_TYPES:
                problems.append(f"{entry}.{name}: type {opt.get('type')!r}")
            if opt.get("type") == "list" and "elements" not in opt:
                problems.append(f"{entry}.{name}: list without elements")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = f"esgf_nm_{role.name}_"
    defaults = (_load(role / "defaults" / "main.yml") or {}).keys()
    assert [k for k in defaults if not k.startswith(prefix)] == []
    internal = (_load(role / "vars" / "main.yml") or {}) if (role / "vars" / "main.yml").exists() else {}
    assert [k for k in internal if not k.startswith(f"__{prefix}")] == []


def test_systemd_unit_is_hardened() -> None:
    role = REPO_ROOT / "roles" / "agent"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["basename"] = lambda p: Path(p).name
    env.filters["dirname"] = lambda p: str(Path(p).parent)
    env.tests["match"] = lambda value, pattern: __import__("re").match(pattern, value) is not None
    values = {
        "ansible_managed": "Ansible managed",
        "esgf_nm_agent_hostname": "sn1.example.org",
        "esgf_nm_agent_user": "esgf-nm",
        "esgf_nm_agent_group": "esgf-nm",
        "esgf_nm_agent_run_dir": "/run/esgf-nm",
        "esgf_nm_agent_state_dir": "/var/lib/esgf-nm",
        "esgf_nm_agent_log_dir": "/var/log/esgf-nm",
        "esgf_nm_agent_registration_xml": "/var/lib/esgf-nm/registration.xml",
        "esgf_nm_agent_legacy_map": "",
        "esgf_nm_agent_port": 7443,
        "__esgf_nm_agent_command": ["/opt/esgf-nm/venv/bin/esgf-nm", "agent", "--config",
                                    "/etc/esgf-nm/agent.yml"],
    }
    text = env.from_string((role / "templates" / "esgf-nm.service.j2").read_text()).render(values)
    for line in ("User=esgf-nm", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "ProtectHome=yes", "CapabilityBoundingSet=", "RuntimeDirectory=esgf-nm",
                 "ReadWritePaths=/var/lib/esgf-nm /run/esgf-nm /var/log/esgf-nm",
                 "ExecStart=/opt/esgf-nm/venv/bin/esgf-nm agent --config /etc/esgf-nm/agent.yml"):
        assert line in text.splitlines(), f"missing {line!r} in the unit:\n{text}"
