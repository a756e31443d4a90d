"""esgf-nm multi-host lab: real hosts (network + mount + UTS namespaces, sshd) on one machine.

    from tests.lab import Lab
    lab = Lab.create(3)              # node1..node3, inventory at lab.inventory
    lab.cut("node1", "node2"); lab.heal_all()
    lab.kill_agent("node2")          # pidfile /run/esgf-nm/agent.pid inside the host
    lab.destroy()

CLI: `python -m tests.lab --help`. Details and safety rules: tests/lab/README.md.
"""

from .lab import DEFAULT_HOST_DIRS, DEFAULT_NAME, DEFAULT_PIDFILE, DEFAULT_SUBNET, Host, Lab, destroy_all, leftovers
from .system import LabError, LabUnavailable, missing_requirements

__all__ = [
    "DEFAULT_HOST_DIRS",
    "DEFAULT_NAME",
    "DEFAULT_PIDFILE",
    "DEFAULT_SUBNET",
    "Host",
    "Lab",
    "LabError",
    "LabUnavailable",
    "destroy_all",
    "leftovers",
    "missing_requirements",
]
