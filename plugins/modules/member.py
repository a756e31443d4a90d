#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: member
short_description: Join a member node to the federation, or leave it
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Runs on a member node and asks its local agent to join (O(state=present)) or leave
    (O(state=absent)) the federation.
  - A join probes every supernode of the roster and asks them in order of round-trip time until
    one accepts; the result names the supernode that accepted (RV(server)) and, per supernode,
    what it answered and why (RV(attempts)).
  - Unchanged when the node is already joined with the same O(project) and O(standby)
    (present), or not joined (absent). Joining again with another project or standby flag
    changes the membership.
options:
  state:
    description: Whether the node is a member of the federation.
    type: str
    choices: [present, absent]
    default: present
  project:
    description: The project the node serves data for (required with O(state=present)).
    type: str
  standby:
    description: Whether the node volunteers as a standby supernode.
    type: bool
    default: false
  wait:
    description:
      - Seconds to wait for the outcome of the join or leave. V(0) starts it without waiting
        (RV(joined) then tells only what was known at once).
    type: float
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - esgf.nodemgr.esgf_nm
attributes:
  check_mode:
    support: full
    details: Reports whether the node would join or leave; asks no supernode.
  diff_mode:
    support: full
    details: The diff shows the membership (joined, project, standby, server) before and after.
  platform:
    platforms: posix
notes:
  - When no supernode accepts, the module fails and its message lists each supernode's answer and reason.
seealso:
  - module: esgf.nodemgr.federation_info
'''

EXAMPLES = r'''
- name: Join the federation
  esgf.nodemgr.member:
    project: "{{ project }}"
    standby: "{{ standby | default(false) }}"
    wait: 60
  register: __join

- name: Who serves this node
  ansible.builtin.debug:
    msg: "served by {{ __join.server }} (member id {{ __join.member_id }})"

- name: Leave the federation
  esgf.nodemgr.member:
    state: absent
'''

RETURN = r'''
joined:
  description: Whether the node is a member after the run (in check mode, would be).
  returned: always
  type: bool
  sample: true
server:
  description: Hostname of the supernode that serves the node (null when not joined).
  returned: always
  type: str
  sample: sn2.example.org
member_id:
  description: The node's member id (null when not joined).
  returned: always
  type: str
  sample: "7"
project:
  description: The node's project (null when not joined).
  returned: always
  type: str
  sample: CMIP6
standby:
  description: Whether the node volunteers as a standby supernode.
  returned: always
  type: bool
  sample: false
state:
  description: The agent's membership state (V(joined), V(left), V(failed), V(idle), V(probing)...).
  returned: always
  type: str
  sample: joined
attempts:
  description: The supernodes tried by the last join or leave, in the order they were asked.
  returned: always
  type: list
  elements: dict
  contains:
    supernode:
      description: Hostname of the supernode.
      type: str
      returned: always
    answer:
      description: What it answered (for example V(accept), V(deny), V(no answer)); null if not asked.
      type: str
      returned: always
    reason:
      description: Why (for example V(full)).
      type: str
      returned: always
    rtt_ms:
      description: Round-trip time of the probe in milliseconds (null when it did not answer).
      type: float
      returned: always
  sample: [{"supernode": "sn1.example.org", "answer": "deny", "reason": "full", "rtt_ms": 0.8},
           {"supernode": "sn2.example.org", "answer": "accept", "reason": null, "rtt_ms": 1.1}]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_cli import EXIT_FAILURE, EXIT_OK, EsgfNm, esgf_nm_argument_spec


def membership(st):
    """The part of a member's status that ``diff`` and the result show."""
    joined = bool(st.get("joined"))
    return dict(joined=joined, project=st.get("project") if joined else None,
                standby=bool(st.get("standby")) if joined else False,
                server=st.get("server_hostname") if joined else None)


def attempts_of(st):
    out = []
    for a in st.get("attempts") or []:
        if isinstance(a, dict):
            out.append(dict(supernode=a.get("supernode"), answer=a.get("answer"), reason=a.get("reason"),
                            rtt_ms=a.get("rtt_ms")))
    return out


def attempts_text(attempts):
    """One line per supernode: ``sn1: deny (full)``."""
    if not attempts:
        return "  (no supernode was tried)"
    lines = []
    for a in attempts:
        reason = f" ({a['reason']})" if a.get("reason") else ""
        lines.append(f"  {a['supernode']}: {a['answer'] or 'not asked'}{reason}")
    return "\n".join(lines)


def result_from(st, changed):
    m = membership(st)
    return dict(changed=changed, joined=m["joined"], server=m["server"], project=m["project"],
                standby=m["standby"], member_id=st.get("member_id") if m["joined"] else None,
                state=st.get("state"), attempts=attempts_of(st))


def main():
    module = AnsibleModule(
        argument_spec=esgf_nm_argument_spec(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            project=dict(type="str"),
            standby=dict(type="bool", default=False),
            wait=dict(type="float", default=30.0),
        ),
        required_if=[("state", "present", ("project",))],
        supports_check_mode=True,
    )
    p = module.params
    if p["wait"] < 0:
        module.fail_json(msg="wait must be 0 or more seconds, got {}".format(p["wait"]))
    if p["state"] == "present" and not p["project"].strip():
        module.fail_json(msg="project must not be empty")
    cli = EsgfNm(module)
    st = cli.status()
    if st.get("role") != "member":
        module.fail_json(msg="this node's agent is a %s, not a member: only members join or leave"
                         % (st.get("role") or "node of unknown role"))
    before = membership(st)

    if p["state"] == "present":
        wanted = dict(joined=True, project=p["project"], standby=p["standby"])
        done = before["joined"] and before["project"] == p["project"] and before["standby"] == p["standby"]
    else:
        wanted = dict(joined=False, project=None, standby=False)
        done = not before["joined"]

    if done:
        result = result_from(st, False)
    elif module.check_mode:
        result = result_from(st, True)
        result.update(joined=wanted["joined"], project=wanted["project"], standby=wanted["standby"])
        if not wanted["joined"]:
            result.update(server=None, member_id=None)
    else:
        result = change(module, cli, p)

    if module._diff:
        if done:
            after = before
        elif module.check_mode:
            after = dict(wanted, server="(chosen when joining)" if wanted["joined"] else None)
        else:
            after = dict(joined=result["joined"], project=result["project"], standby=result["standby"],
                         server=result["server"])
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


def change(module, cli, p):
    """Join or leave through the agent; the result, or a failure naming every supernode's answer."""
    wait = p["wait"]
    if p["state"] == "present":
        args = ["join", "--project", p["project"], "--wait", f"{wait:g}", "--json"]
        if p["standby"]:
            args.append("--standby")
        what = "join"
    else:
        args = ["leave", "--wait", f"{wait:g}", "--json"]
        what = "leave"
    res = cli.run(what, args, ok=(EXIT_OK, EXIT_FAILURE), extra_time=wait)
    doc = res.doc if isinstance(res.doc, dict) else {}
    st = doc.get("status") if isinstance(doc.get("status"), dict) else {}
    if not st or wait <= 0:
        st = cli.status()
    result = result_from(st, True)
    if res.rc == EXIT_FAILURE:
        answer = doc.get("answer") if isinstance(doc.get("answer"), dict) else {}
        # The agent's answer only says the request was taken ("join started"); the outcome is
        # the state the wait ended in, and the attempts say why.
        if answer.get("status") not in (None, "ok", "unchanged"):
            outcome = f"{answer.get('status')}: {answer.get('detail')}"
        else:
            outcome = f"state {st.get('state') or 'unknown'} after {wait:g} s"
        tried = attempts_text(result["attempts"])
        headline = {"join": f"join failed ({outcome}): no supernode accepted this node",
                    "leave": f"leave did not complete ({outcome})"}[what]
        msg = f"{headline}:\n{tried}"
        result.pop("changed")
        module.fail_json(msg=msg, **result)
    return result


if __name__ == "__main__":
    main()
