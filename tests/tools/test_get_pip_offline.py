"""Tests of the offline get-pip stand-in that `make sanity` installs for ansible-test."""

from __future__ import annotations

import ensurepip
import subprocess
import venv
from pathlib import Path

import get_pip_offline
import pytest

SCRIPT = Path(get_pip_offline.__file__)


def test_drops_get_pip_only_flags() -> None:
    argv = ["--disable-pip-version-check", "pip==24.2", "--no-setuptools", "--no-wheel"]
    assert get_pip_offline.pip_install_arguments(argv) == ["--disable-pip-version-check", "pip==24.2"]


def test_environment_forgets_pip_config_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    env = get_pip_offline.pip_environment()
    assert "PIP_CONFIG_FILE" not in env
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"


def test_bootstraps_pip_into_a_venv_without_pip(tmp_path: Path) -> None:
    # Offline: the only requirement is pip itself, from the wheel bundled with ensurepip.
    # Success proves pip was bootstrapped and the get-pip-only flags were dropped (pip
    # rejects them).
    venv.EnvBuilder(with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    argv = ["--no-index", "--find-links", str(bundled), "pip", "--no-setuptools", "--no-wheel"]
    result = subprocess.run(
        [str(python), str(SCRIPT), *argv], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    version = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("pip ")
