#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: inventory_check
short_description: Validate the federation an inventory describes
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Checks the hosts of the C(supernodes) and C(members) groups before anything is deployed
    and lists every problem at once, one line per problem, naming the host.
  - "Problems found: an empty C(supernodes) group; an inventory name listed twice; a host in
    both groups; two hosts with the same address and port; a port that is not a number from
    1 to 65535; a member without a C(project); a C(standby) that is not a boolean; an unknown
    host variable starting with C(esgf_nm_) (a typo such as C(esgf_nm_prot) is reported with
    the name it probably meant)."
  - Reads only its parameters. Run it on the controller, with C(run_once) and C(delegate_to) set to V(localhost).
options:
  supernodes:
    description:
      - The hosts of the C(supernodes) group, in bootstrap order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Inventory name of the host.
        type: str
        required: true
      address:
        description: Address the agent listens on (C(esgf_nm_address)); defaults to O(supernodes[].name).
        type: str
      port:
        description:
          - Port of the agent (C(esgf_nm_port)); defaults to O(default_port).
          - Taken as given so that a bad value is reported as a problem of this host.
        type: raw
      vars:
        description:
          - Names of the variables set for the host (for example C(hostvars[host].keys() | list)), or a
            dict whose keys are those names. Only names starting with C(esgf_nm_) are checked.
        type: raw
  members:
    description:
      - The hosts of the C(members) group.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Inventory name of the host.
        type: str
        required: true
      address:
        description: Address the agent listens on (C(esgf_nm_address)); defaults to O(members[].name).
        type: str
      port:
        description: Port of the agent (C(esgf_nm_port)); defaults to O(default_port).
        type: raw
      project:
        description: The member's project (required for every member; taken as given so that a missing one is reported).
        type: raw
      standby:
        description: Whether the member volunteers as a standby supernode; must be a boolean when set.
        type: raw
      vars:
        description: As O(supernodes[].vars).
        type: raw
  allowed_vars:
    description:
      - Names of C(esgf_nm_) variables that may be set on hosts besides C(esgf_nm_address) and
        C(esgf_nm_port), typically the roles' variables.
      - Shell patterns are allowed (C(esgf_nm_agent_*)), at the price of not catching typos below them.
    type: list
    elements: str
    default: []
  default_port:
    description: Port of a host without O(supernodes[].port).
    type: int
    default: 7443
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module never changes anything.
  diff_mode:
    support: none
  platform:
    platforms: all
notes:
  - The module fails when there is any problem; the message lists them one per line and
    RV(problems) holds the same list.
seealso:
  - module: esgf.nodemgr.nodemap
'''

EXAMPLES = r'''
- name: Validate the inventory before deploying
  esgf.nodemgr.inventory_check:
    supernodes: "{{ __sn }}"
    members: "{{ __mem }}"
    allowed_vars:
      - esgf_nm_agent_*
      - esgf_nm_pki_*
  run_once: true
  delegate_to: localhost
  vars:
    __sn: >-
      {%- set out = [] -%}
      {%- for h in groups['supernodes'] | default([]) -%}
      {%- set v = hostvars[h] -%}
      {%- set _ = out.append({'name': h,
            'address': v.esgf_nm_address | default(v.ansible_host | default(h)),
            'port': v.esgf_nm_port | default(7443),
            'vars': v.keys() | select('match', '^esgf_nm_') | list}) -%}
      {%- endfor -%}
      {{ out }}
    __mem: >-
      {%- set out = [] -%}
      {%- for h in groups['members'] | default([]) -%}
      {%- set v = hostvars[h] -%}
      {%- set _ = out.append({'name': h,
            'address': v.esgf_nm_address | default(v.ansible_host | default(h)),
            'port': v.esgf_nm_port | default(7443),
            'project': v.project | default(none),
            'standby': v.standby | default(false),
            'vars': v.keys() | select('match', '^esgf_nm_') | list}) -%}
      {%- endfor -%}
      {{ out }}

- name: Validate a hand-written federation
  esgf.nodemgr.inventory_check:
    supernodes:
      - {name: sn1.example.org, address: 10.0.0.1}
      - {name: sn2.example.org, address: 10.0.0.2, port: 7444}
    members:
      - {name: data1.example.org, project: CMIP6}
      - {name: data2.example.org, project: CORDEX, standby: true}
'''

RETURN = r'''
problems:
  description: Every problem found, one sentence each, starting with the host it concerns.
  returned: always
  type: list
  elements: str
  sample: ["m2.example.org: member without a project (set the host variable project)",
           "sn3.example.org: unknown variable esgf_nm_prot (did you mean esgf_nm_port?)"]
summary:
  description: What the inventory describes.
  returned: always
  type: dict
  contains:
    supernodes:
      description: Number of supernodes.
      type: int
      returned: always
      sample: 3
    members:
      description: Number of members.
      type: int
      returned: always
      sample: 12
    standby:
      description: Number of members that volunteer as standby supernodes.
      type: int
      returned: always
      sample: 2
    projects:
      description: Members per project.
      type: dict
      returned: always
      sample: {"CMIP6": 10, "CORDEX": 2}
    bootstrap_order:
      description: Supernode names in bootstrap order (the first seeds the epoch).
      type: list
      elements: str
      returned: always
      sample: ["sn1.example.org", "sn2.example.org", "sn3.example.org"]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_inventory import (
    DEFAULT_PORT,
    check_inventory,
    summarize,
)


def main():
    host_common = dict(
        name=dict(type="str", required=True),
        address=dict(type="str"),
        port=dict(type="raw"),
        vars=dict(type="raw"),
    )
    member_options = dict(host_common, project=dict(type="raw"), standby=dict(type="raw"))
    module = AnsibleModule(
        argument_spec=dict(
            supernodes=dict(type="list", elements="dict", default=[], options=host_common),
            members=dict(type="list", elements="dict", default=[], options=member_options),
            allowed_vars=dict(type="list", elements="str", default=[]),
            default_port=dict(type="int", default=DEFAULT_PORT),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = check_inventory(p["supernodes"], p["members"], p["allowed_vars"], p["default_port"])
    summary = summarize(p["supernodes"], p["members"], p["default_port"])
    if problems:
        plural = "" if len(problems) == 1 else "s"
        module.fail_json(msg=f"the inventory has {len(problems)} problem{plural}:\n" + "\n".join(problems),
                         problems=problems, summary=summary)
    module.exit_json(changed=False, problems=[], summary=summary)


if __name__ == "__main__":
    main()
