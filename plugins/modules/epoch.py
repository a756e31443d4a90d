#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: epoch
short_description: Seed the federation's epoch once, on supernode 1
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - The epoch is the moment round 0 of the federation started; every supernode derives the
    round number and the leader of each round from it.
  - With O(state=present) the module seeds the epoch on the local agent when it has none and
    returns it; when the agent already holds one (a rerun, or it learnt it from another
    supernode), that one is kept and returned, unchanged.
  - Run it on supernode 1 only, after supernodes 2..N are up. The agent passes the epoch on to
    the others.
options:
  state:
    description:
      - V(present) makes sure an epoch is seeded.
    type: str
    choices: [present]
    default: present
  value:
    description:
      - The epoch to seed, in seconds since 1970 (default the agent's current time).
      - Only used when no epoch is seeded yet; an existing epoch is never replaced. Meant for tests.
    type: float
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - esgf.nodemgr.esgf_nm
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: esgf.nodemgr.federation_info
'''

EXAMPLES = r'''
- name: Seed the epoch on supernode 1
  esgf.nodemgr.epoch:
    state: present
  register: __epoch
  when: inventory_hostname == groups['supernodes'][0]

- name: Seed a fixed epoch (tests)
  esgf.nodemgr.epoch:
    value: 1767225600
    socket: /tmp/sn1/admin.sock
    esgf_nm: /opt/esgf-nm/venv/bin/esgf-nm
'''

RETURN = r'''
epoch:
  description: The epoch, in seconds since 1970 (null only in check mode when none is seeded yet).
  returned: always
  type: float
  sample: 1767225600.0
round:
  description: The current round of the federation by the agent's clock (null before the epoch).
  returned: always
  type: int
  sample: 1042
round_s:
  description: Length of a round in seconds.
  returned: always
  type: float
  sample: 60.0
seeded:
  description: Whether this run seeded the epoch (or would, in check mode).
  returned: always
  type: bool
  sample: true
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import EXIT_FAILURE, EXIT_OK, EsgfNm, esgf_nm_argument_spec


def main():
    module = AnsibleModule(
        argument_spec=esgf_nm_argument_spec(
            state=dict(type="str", choices=["present"], default="present"),
            value=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    value = module.params["value"]
    if value is not None and value <= 0:
        module.fail_json(msg=f"value must be a positive number of seconds since 1970, got {value}")
    cli = EsgfNm(module)
    # Exit 1 with a JSON document: the agent runs but no epoch is seeded yet.
    shown = cli.run("epoch show", ["epoch", "show", "--json"], ok=(EXIT_OK, EXIT_FAILURE)).doc or {}
    result = dict(changed=False, seeded=False, epoch=shown.get("epoch"), round=shown.get("round"),
                  round_s=shown.get("round_s"))
    if shown.get("epoch") is not None:
        if value is not None and value != shown.get("epoch"):
            module.warn("the epoch is already seeded ({}); value {} was not used".format(shown.get("epoch"), value))
        module.exit_json(**result)

    result.update(changed=True, seeded=True)
    if module.check_mode:
        result["epoch"] = value
        module.exit_json(**result)
    args = ["epoch", "seed", "--json"]
    if value is not None:
        args += ["--value", repr(float(value))]
    answer = cli.run("epoch seed", args).doc or {}
    data = answer.get("data") or {}
    if answer.get("status") == "unchanged":  # seeded meanwhile (by another run or a peer)
        result.update(changed=False, seeded=False)
    result["epoch"] = data.get("epoch")
    after = cli.run("epoch show", ["epoch", "show", "--json"], ok=(EXIT_OK, EXIT_FAILURE)).doc or {}
    result.update(round=after.get("round"), round_s=after.get("round_s"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
