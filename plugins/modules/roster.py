#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: roster
short_description: Install the roster of a map file on the running local agent
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Reads the roster (the ordered supernode list with its version) from the map file O(src)
    and installs it on the agent running on this node when the agent's roster is older.
  - Unchanged when the agent already holds that roster. A supernode passes a new roster on to
    the other supernodes itself; members take it from their supernode too, so installing it on
    one node is enough for it to spread, and installing it everywhere makes it immediate.
  - Refuses (fails) when O(src) is older than the agent's roster, or has the same version with
    different content, because a stale map file must not roll the federation back. Rebuild the map with
    M(esgf.nodemgr.nodemap), which starts from the live roster.
options:
  src:
    description:
      - "Map file on the managed node, in our format or the prototype's, or a JSON document
        C({\"roster\": {...}}) holding only a roster."
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - esgf.nodemgr.esgf_nm
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the agent's roster (version and supernodes) before and after.
  platform:
    platforms: posix
seealso:
  - module: esgf.nodemgr.nodemap
  - module: esgf.nodemgr.federation_info
'''

EXAMPLES = r'''
- name: Install the new roster on every running node
  esgf.nodemgr.roster:
    src: /var/lib/esgf-nm/map.json
    socket: /run/esgf-nm/admin.sock
  register: __roster

- name: Report
  ansible.builtin.debug:
    msg: "roster v{{ __roster.previous_version }} -> v{{ __roster.roster_version }}"
  when: __roster is changed
'''

RETURN = r'''
roster_version:
  description: Version of the agent's roster after the run (in check mode, what it would be).
  returned: always
  type: int
  sample: 3
previous_version:
  description: Version of the agent's roster before the run.
  returned: always
  type: int
  sample: 2
src_version:
  description: Version of the roster in O(src).
  returned: always
  type: int
  sample: 3
supernodes:
  description: Hostnames of the supernodes of the agent's roster after the run, in order.
  returned: always
  type: list
  elements: str
  sample: ["sn1.example.org", "sn2.example.org"]
epoch:
  description:
    - The federation's epoch as the agent held it when the module asked (null before it is
      seeded). The bootstrap playbook checks with it that every supernode holds the same epoch.
  returned: always
  type: float
  sample: 1767225600.0
answer:
  description: The agent's answer to the install (V(ok) or V(unchanged)); absent when nothing was sent.
  returned: when the roster was sent to the agent
  type: dict
  sample: {"status": "ok", "detail": "roster version 3 installed"}
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import EsgfNm, esgf_nm_argument_spec
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_roster import (
    hostnames,
    roster_of,
    roster_text,
    roster_version,
    same_roster,
)

MAX_MAP_BYTES = 64 * 1024 * 1024


def read_src_roster(module, cli, src):
    """The roster in ``src``: read directly from our format, converted by the CLI otherwise."""
    if not os.path.isfile(src):
        module.fail_json(msg=f"src {src} does not exist or is not a file")
    try:
        if os.path.getsize(src) > MAX_MAP_BYTES:
            module.fail_json(msg=f"src {src} is larger than {MAX_MAP_BYTES} bytes: not a node map")
        with open(src, "rb") as f:
            doc = json.loads(f.read().decode("utf-8-sig"))
    except OSError as exc:
        module.fail_json(msg=f"cannot read src {src}: {exc}")
    except ValueError as exc:
        module.fail_json(msg=f"src {src} is not JSON: {exc}")
    roster = roster_of(doc)
    if roster is not None:
        return roster
    # The prototype's format: let the agent's CLI convert it (it validates it too).
    out = os.path.join(module.tmpdir, "converted.json")
    cli.run("map convert", ["map", "convert", src, "--to", "ours", "-o", out], json_output=False,
            with_socket=False)
    with open(out, "rb") as f:
        roster = roster_of(json.loads(f.read().decode("utf-8")))
    if roster is None:
        module.fail_json(msg=f"src {src}: the converted map has no roster")
    return roster


def main():
    module = AnsibleModule(
        argument_spec=esgf_nm_argument_spec(src=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    src = module.params["src"]
    cli = EsgfNm(module)
    new = read_src_roster(module, cli, src)
    status = cli.status()
    current = status.get("roster")
    if not isinstance(current, dict):
        module.fail_json(msg="the agent's status has no roster (esgf-nm too old?)")
    cur_v, new_v = roster_version(current), roster_version(new)
    result = dict(changed=False, previous_version=cur_v, src_version=new_v, roster_version=cur_v,
                  supernodes=hostnames(current), epoch=status.get("epoch"))

    if same_roster(current, new):
        module.exit_json(**result)
    if new_v < cur_v:
        module.fail_json(msg=f"src {src} holds roster version {new_v}, older than the agent's version {cur_v}: "
                             "refusing to roll the federation back (rebuild the map with esgf.nodemgr.nodemap, "
                             "which starts from the live roster)", **result)
    if new_v == cur_v:
        theirs = ", ".join(hostnames(new)) or "none"
        ours = ", ".join(hostnames(current)) or "none"
        module.fail_json(msg=f"src {src} holds roster version {new_v}, the agent's version, but different content "
                             f"(supernodes {theirs} vs the agent's {ours}): two maps were built independently; "
                             "rebuild it with esgf.nodemgr.nodemap from the live agent", **result)

    result.update(changed=True, roster_version=new_v, supernodes=hostnames(new))
    if not module.check_mode:
        res = cli.run("roster", ["roster", src, "--json"])
        answer = res.doc if isinstance(res.doc, dict) else {}
        result["answer"] = dict(status=answer.get("status"), detail=answer.get("detail"))
        if answer.get("status") == "unchanged":
            result["changed"] = False
    if module._diff:
        result["diff"] = dict(before=roster_text(current), after=roster_text(new),
                              before_header="agent roster", after_header="agent roster")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
