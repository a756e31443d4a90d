"""The agent role's systemd unit, rendered by Ansible itself and checked by systemd's own tools.

No systemd runs as PID 1 on this machine, so the unit cannot be started here; what can run is
what systemd would say about it before starting it:

- ``systemd-analyze verify`` parses the unit as systemd does (unknown or misspelt keys, bad
  values, an ExecStart that is not executable) — any complaint fails the test;
- ``systemd-analyze security --offline=true`` scores its sandbox ("exposure", 0 = fully
  locked down, 10 = nothing); the hardened unit must stay at or under 2.0, which systemd
  labels "OK".

The unit is rendered with the role's own defaults and internal vars (``defaults/main.yml``,
``vars/main.yml``) by a real ``ansible-playbook`` run of the ``template`` module, so
``ansible_managed``, filters and tests behave exactly as on a real host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLE = REPO_ROOT / "roles" / "agent"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# systemd-analyze's --threshold is the exposure times ten (exit non-zero when above it).
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed (Debian package systemd)")


def _render(tmp_path: Path, **overrides: object) -> Path:
    """Render esgf-nm.service.j2 with the role's defaults plus ``overrides``; return the unit."""
    # ExecStart must name an executable file for `verify`; the role puts it in the venv.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / "esgf-nm"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "esgf-nm.service"
    extra = {"esgf_nm_agent_venv": str(venv), "__unit_dest": str(unit), **overrides}
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  vars_files:\n"
        f"    - {ROLE / 'defaults' / 'main.yml'}\n"
        f"    - {ROLE / 'vars' / 'main.yml'}\n"
        "  tasks:\n"
        "    - name: Render the unit\n"
        "      ansible.builtin.template:\n"
        f"        src: {ROLE / 'templates' / 'esgf-nm.service.j2'}\n"
        "        dest: '{{ __unit_dest }}'\n"
        "        mode: '0644'\n"
    )
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook), "-e", f"@{extra_file}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"rendering failed:\n{proc.stdout}\n{proc.stderr}"
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)


def _exposure(unit: Path) -> tuple[float, str]:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert found, f"no exposure level in:\n{proc.stdout}\n{proc.stderr}"
    return float(found.group(1)), proc.stdout


@pytest.mark.parametrize("overrides", [
    {},
    # A privileged port: the only capability it may hold is binding it.
    {"esgf_nm_port": 443},
    # The prototype's map written too, outside the state directory.
    {"esgf_nm_agent_legacy_map": "/esg/config/esgf_nodemgr_map.json"},
], ids=["defaults", "port-443", "legacy-map"])
def test_unit_passes_systemd_verify_and_stays_hardened(tmp_path: Path, overrides: dict[str, object]) -> None:
    unit = _render(tmp_path, **overrides)
    text = unit.read_text()
    verified = _verify(unit)
    assert verified.returncode == 0 and not verified.stderr.strip(), (
        f"systemd-analyze verify complained:\n{verified.stderr}\n--- unit ---\n{text}")
    exposure, report = _exposure(unit)
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    lines = text.splitlines()
    if overrides.get("esgf_nm_port") == 443:
        assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in lines
        assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in lines
    else:
        assert "CapabilityBoundingSet=" in lines
        assert not any(line.startswith("AmbientCapabilities") for line in lines)
    if overrides.get("esgf_nm_agent_legacy_map"):
        rw = next(line for line in lines if line.startswith("ReadWritePaths="))
        assert "/esg/config" in rw.split("=", 1)[1].split()


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The checks above can fail: a misspelt key and a missing executable are both reported."""
    unit = _render(tmp_path)
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSystm="))
    assert "ProtectSystm" in _verify(broken).stderr
    (tmp_path / "venv" / "bin" / "esgf-nm").unlink()
    assert _verify(unit).returncode != 0
    loose = tmp_path / "loose.service"
    loose.write_text("\n".join(line for line in unit.read_text().splitlines()
                               if not line.startswith(("Protect", "Private", "Restrict", "SystemCall"))))
    assert _exposure(loose)[0] > MAX_EXPOSURE
