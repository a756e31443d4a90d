#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: nodemap
short_description: Build or merge the federation's node map from the ordered supernode list
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Builds the node map (the agent's own format) whose roster is O(supernodes), in that order,
    and writes it to O(dest) when it differs from what O(dest) holds.
  - Ids are stable per hostname and never reused; reordering the list keeps every id; a new
    hostname gets an id never used before; a supernode left out of the list becomes retired
    (its id stays reserved) and its members move to the remaining supernodes.
  - The starting point is the live agent's roster when an agent answers at O(socket) (so that
    a rerun after bootstrap keeps what the federation runs), combined with the members and
    state O(dest) holds; without a running agent, O(dest) alone; without either, an empty map.
  - The map is built by the agent's command line (C(esgf-nm map generate)), which is pure, so
    check mode builds it too and reports exactly what would change.
options:
  supernodes:
    description:
      - The supernodes in bootstrap order (also the rotation order of the leader).
    type: list
    elements: dict
    required: true
    suboptions:
      hostname:
        description: Host name of the supernode (its identity in the federation).
        type: str
        required: true
      address:
        description: Address its agent listens on; defaults to O(supernodes[].hostname).
        type: str
      port:
        description: Port its agent listens on.
        type: int
        default: 7443
  capacity:
    description:
      - Members one supernode may serve (its own plus adopted ones).
      - When not set, the existing map's capacity is kept (20 for a new map).
    type: int
  dest:
    description:
      - The map file on the managed node (our format). Written atomically when it changes.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - esgf.nodemgr.esgf_nm
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the roster (version, ids, hostnames, addresses, retired ids) of O(dest) before and after.
  platform:
    platforms: posix
notes:
  - O(dest) is the map an agent reads at its first start; a running federation only takes a
    new roster from M(esgf.nodemgr.roster).
seealso:
  - module: esgf.nodemgr.roster
  - module: esgf.nodemgr.inventory_check
'''

EXAMPLES = r'''
- name: Build the node map on supernode 1
  esgf.nodemgr.nodemap:
    supernodes:
      - {hostname: sn1.example.org, address: 10.0.0.1}
      - {hostname: sn2.example.org, address: 10.0.0.2}
      - {hostname: sn3.example.org, address: 10.0.0.3, port: 7444}
    capacity: 20
    dest: /var/lib/esgf-nm/map.json
    owner: esgf-nm
    mode: "0644"
  register: __map

- name: Preview a change of the supernode list (nothing is written)
  esgf.nodemgr.nodemap:
    supernodes: "{{ esgf_nm_supernode_list }}"
    dest: /var/lib/esgf-nm/map.json
  check_mode: true
  diff: true
  register: __preview

- name: Show what a removal would retire
  ansible.builtin.debug:
    msg: "retired: {{ __preview.retired }}, new roster version {{ __preview.roster_version }}"
'''

RETURN = r'''
dest:
  description: The map file.
  returned: always
  type: str
  sample: /var/lib/esgf-nm/map.json
roster:
  description: The roster of the resulting map (what O(dest) holds or, in check mode, would hold).
  returned: always
  type: dict
  sample:
    version: 2
    capacity: 20
    next_id: 4
    supernodes:
      - {id: "1", hostname: sn1.example.org, address: 10.0.0.1, port: 7443}
      - {id: "2", hostname: sn2.example.org, address: 10.0.0.2, port: 7443}
    retired:
      - {id: "3", hostname: sn3.example.org}
roster_version:
  description: Version of that roster; it goes up by one whenever the roster changes.
  returned: always
  type: int
  sample: 2
added:
  description: Hostnames that are supernodes now but were not in the starting roster.
  returned: always
  type: list
  elements: str
  sample: ["sn4.example.org"]
retired:
  description: Hostnames retired by this run (they were supernodes in the starting roster).
  returned: always
  type: list
  elements: str
  sample: ["sn3.example.org"]
content:
  description:
    - The map as text, what O(dest) holds after the run (in check mode, what it would hold). The
      bootstrap playbook hands it to every node as its initial map without reading O(dest) again.
  returned: always
  type: str
  sample: '{"roster": {"version": 2, "supernodes": []}}'
source:
  description:
    - Where the starting point came from. V(agent+file) the live agent's roster with O(dest)'s
      members; V(agent) the live roster only; V(file) O(dest) only; V(none) a new map.
  returned: always
  type: str
  sample: agent+file
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import EsgfNm, esgf_nm_argument_spec
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_roster import (
    is_our_map,
    roster_changes,
    roster_of,
    roster_text,
    roster_version,
    starting_map,
)

DEFAULT_PORT = 7443
MAX_MAP_BYTES = 64 * 1024 * 1024


def host_argument(spec):
    """``hostname=address:port`` for ``esgf-nm map generate`` (IPv6 addresses in brackets)."""
    address = spec.get("address") or spec["hostname"]
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{spec['hostname']}={address}:{spec.get('port') or DEFAULT_PORT}"


def read_map(module, path):
    """The decoded JSON in ``path``, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    try:
        if os.path.getsize(path) > MAX_MAP_BYTES:
            module.fail_json(msg=f"{path} is larger than {MAX_MAP_BYTES} bytes: not a node map")
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8-sig"))
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc}")
    except ValueError as exc:
        module.fail_json(msg=f"{path} exists but is not a JSON node map ({exc}); move it away or fix it")


def write_json(module, doc, name):
    path = os.path.join(module.tmpdir, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def main():
    module = AnsibleModule(
        argument_spec=esgf_nm_argument_spec(
            supernodes=dict(type="list", elements="dict", required=True, options=dict(
                hostname=dict(type="str", required=True),
                address=dict(type="str"),
                port=dict(type="int", default=DEFAULT_PORT),
            )),
            capacity=dict(type="int"),
            dest=dict(type="path", required=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    if not p["supernodes"]:
        module.fail_json(msg="supernodes is empty: a federation needs at least one supernode")
    if p["capacity"] is not None and p["capacity"] < 1:
        module.fail_json(msg=f"capacity must be at least 1, got {p['capacity']}")
    dest = p["dest"]
    if os.path.isdir(dest):
        module.fail_json(msg=f"dest {dest} is a directory; give the path of the map file")
    cli = EsgfNm(module)

    dest_doc = read_map(module, dest)
    status = cli.status(allow_unreachable=True)
    live_roster = status.get("roster") if status else None
    if live_roster is not None and not isinstance(live_roster, dict):
        module.fail_json(msg="the agent's status has no usable roster (esgf-nm too old?)")

    generate = ["map", "generate"] + [host_argument(s) for s in p["supernodes"]]
    if dest_doc is not None and not is_our_map(dest_doc):
        # A map in the prototype's format: the CLI reads it; the live roster cannot be spliced in.
        start_roster = None
        generate += ["--existing", dest]
        source = "file"
        if live_roster is not None:
            module.warn(f"{dest} is not in our format: the live agent's roster was not used as the "
                        "starting point")
    else:
        start = starting_map(dest_doc, live_roster)
        start_roster = roster_of(start) if start is not None else None
        if start is not None:
            generate += ["--existing", write_json(module, start, "existing.json")]
        source = {(True, True): "agent+file", (True, False): "agent", (False, True): "file",
                  (False, False): "none"}[(live_roster is not None, dest_doc is not None)]
    if p["capacity"] is not None:
        generate += ["--capacity", str(p["capacity"])]
    out = os.path.join(module.tmpdir, "map.json")
    generate += ["-o", out]
    cli.run("map generate", generate, json_output=False, with_socket=False)

    new_doc = read_map(module, out)
    if new_doc is None or not is_our_map(new_doc):
        module.fail_json(msg=f"esgf-nm map generate wrote no map in our format to {out}")
    new_roster = roster_of(new_doc)
    before_roster = roster_of(dest_doc) if dest_doc is not None else None
    added, retired = roster_changes(start_roster, new_roster)
    changed = new_doc != dest_doc

    # What dest holds after the run: the new map when it changed (or, in check mode, would).
    with open(out if changed or dest_doc is None else dest, "rb") as f:
        content = f.read().decode("utf-8")
    if changed and not module.check_mode:
        module.atomic_move(out, dest)
    file_args = module.load_file_common_arguments(p, path=dest)
    if os.path.exists(dest):
        changed = module.set_fs_attributes_if_different(file_args, changed)

    result = dict(
        changed=changed,
        dest=dest,
        roster=new_roster,
        roster_version=roster_version(new_roster),
        added=added,
        retired=retired,
        source=source,
        content=content,
    )
    if module._diff:
        result["diff"] = dict(before=roster_text(before_roster), after=roster_text(new_roster),
                              before_header=f"{dest} (roster)", after_header=f"{dest} (roster)")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
