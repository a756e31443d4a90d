# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""Options shared by the modules that call the local agent's command line."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r'''
options:
  esgf_nm:
    description:
      - Path of the agent's command line, C(esgf-nm), on the managed node.
      - The module runs it with C(--json) and turns its exit codes into results
        (0 ok, 1 the answer is no, 2 bad usage, 3 the agent cannot be reached).
    type: path
    default: /opt/esgf-nm/venv/bin/esgf-nm
  socket:
    description:
      - Admin socket (Unix socket) of the local agent.
    type: path
    default: /run/esgf-nm/admin.sock
  timeout:
    description:
      - Seconds one call of C(esgf-nm) may take before it is stopped and the module fails.
      - Waits asked for by the module itself (such as the C(wait) of a join) come on top.
      - C(0) means no limit. The limit uses C(timeout) from coreutils; without it there is no limit.
    type: float
    default: 30
requirements:
  - The esgf-nodemgr agent installed on the managed node (its C(esgf-nm) command line).
'''
