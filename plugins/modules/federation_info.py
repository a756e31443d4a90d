#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: federation_info
short_description: The federation as the local agent sees it
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Returns the local agent's status document (C(esgf-nm status --json)) as RV(federation),
    its role, the epoch and current round, the leader, the supernodes with their health, the
    members and who serves them, the links between supernodes, the roster and the map's
    versions, and the recent decisions.
  - Never changes anything.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - esgf.nodemgr.esgf_nm
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - A supernode knows the whole federation; a member knows its own membership and the roster.
seealso:
  - module: esgf.nodemgr.member
  - module: esgf.nodemgr.roster
'''

EXAMPLES = r'''
- name: Read the federation from every supernode
  esgf.nodemgr.federation_info:
  register: __fed

- name: Every supernode holds the same epoch
  ansible.builtin.assert:
    that:
      - groups['supernodes'] | map('extract', hostvars, ['__fed', 'federation', 'epoch']) | unique | length == 1
  run_once: true

- name: Supernodes that are down
  ansible.builtin.debug:
    msg: "{{ __fed.federation.supernodes | selectattr('health', 'in', ['bad', 'unreachable'])
             | map(attribute='hostname') | list }}"
'''

RETURN = r'''
federation:
  description:
    - The agent's status document. The keys below are the main ones; the agent may add more.
  returned: always
  type: dict
  contains:
    role:
      description: V(supernode) or V(member).
      type: str
      returned: always
      sample: supernode
    hostname:
      description: This node's hostname.
      type: str
      returned: always
      sample: sn1.example.org
    epoch:
      description: The federation's epoch (null before it is seeded).
      type: float
      returned: always
      sample: 1767225600.0
    round:
      description: The current round (null before the epoch).
      type: int
      returned: always
      sample: 1042
    leader:
      description: Id of the leader of the current round.
      type: str
      returned: on supernodes
      sample: "2"
    roster:
      description: The roster this node holds (version, supernodes with ids, retired ids, next id, capacity).
      type: dict
      returned: always
    supernodes:
      description: Supernodes with their health and member counts.
      type: list
      elements: dict
      returned: on supernodes
    members:
      description: Members with project, standby flag, home and serving supernode, health.
      type: list
      elements: dict
      returned: on supernodes
    links:
      description: The links between supernodes, with status and round-trip time.
      type: list
      elements: dict
      returned: on supernodes
    map:
      description: Digest and section versions of the node map (including C(roster_version)).
      type: dict
      returned: on supernodes
    timeline:
      description: Recent decisions of the leaders, newest first.
      type: list
      elements: dict
      returned: on supernodes
    joined:
      description: Whether this member is joined.
      type: bool
      returned: on members
    server_hostname:
      description: The supernode serving this member.
      type: str
      returned: on members
    attempts:
      description: What each supernode answered at the last join or leave.
      type: list
      elements: dict
      returned: on members
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import EsgfNm, esgf_nm_argument_spec


def main():
    module = AnsibleModule(argument_spec=esgf_nm_argument_spec(), supports_check_mode=True)
    federation = EsgfNm(module).status()
    module.exit_json(changed=False, federation=federation)


if __name__ == "__main__":
    main()
