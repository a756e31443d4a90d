"""pytest fixtures of the lab (imported by tests/conftest.py).

    @pytest.mark.lab
    def test_something(lab_factory):
        lab = lab_factory(3, groups={"supernodes": ["node1"], "members": ["node2", "node3"]})
        ...   # destroyed at the end of the session, also when the test fails

Skips (with the reason) when the lab cannot run here: not root, binaries missing.
Environment: ESGF_LAB_SUBNET forces the subnet; otherwise a free /24 in 10.213.0.0/16 is used.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .lab import Lab, free_subnet
from .system import LabError, missing_requirements

log = logging.getLogger("esgf_lab")

LabFactory = Callable[..., Lab]


def lab_skip_reason() -> str | None:
    problems = missing_requirements()
    return "esgf-nm lab unavailable: " + "; ".join(problems) if problems else None


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """Create labs (`lab_factory(n_or_names, **Lab.create kwargs)`); all are destroyed at the
    end of the session — pytest's finalizer, and atexit/SIGTERM inside Lab.create as backup."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    labs: list[Lab] = []
    counter = itertools.count()

    def make(hosts: int | list[str] = 3, **kwargs: Any) -> Lab:
        n = next(counter)
        kwargs.setdefault("name", f"t{os.getpid() % 10000:04d}{n % 10}")
        kwargs.setdefault("root", tmp_path_factory.mktemp(f"lab{n}"))
        if "subnet" not in kwargs and not os.environ.get("ESGF_LAB_SUBNET"):
            kwargs["subnet"] = free_subnet(start=1 + os.getpid() % 200)
        lab = Lab.create(hosts, **kwargs)
        labs.append(lab)
        return lab

    yield make
    errors = []
    for lab in labs:
        if lab.state_file.exists():
            try:
                lab.destroy()
            except LabError as exc:
                errors.append(str(exc))
    if errors:
        pytest.fail("lab teardown incomplete:\n" + "\n".join(errors))
