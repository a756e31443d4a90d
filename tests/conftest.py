"""Repository-level pytest configuration (`pytest tests`, see `make test-repo`).

- makes `tests.*` importable (the multi-host lab lives in tests/lab);
- registers the `lab` marker: tests that need the lab (root, namespaces, sshd); select them
  with `-m lab`, leave them out with `-m "not lab"`; they skip with the reason when the
  lab cannot run here;
- provides the lab's fixtures (`lab_factory`, see tests/lab/fixtures.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.lab.fixtures import lab_factory  # noqa: E402  (a fixture, re-exported for all tests)

__all__ = ["lab_factory"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the multi-host lab (root, network namespaces, sshd); skips otherwise")
