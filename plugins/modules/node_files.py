#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: node_files
short_description: Directories and small files of a node, in one step
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Makes sure that several directories exist and that several small files hold exactly the given
    content, each with its owner, group and mode, in one module run.
  - The roles use it where they would otherwise run M(ansible.builtin.file), M(ansible.builtin.copy)
    or M(ansible.builtin.template) once per path. Every module run costs a Python start on the node
    (and C(copy)/C(template) cost two, C(stat) and C(file), even when nothing changes); a node's
    configuration is a handful of files, so one run for all of them is most of a rerun's time saved.
  - A file is written only when its content differs, to a temporary file in the same directory that
    gets its mode (and owner, group) before it is validated and renamed over the old one; a reader
    never sees a partial file.
options:
  directories:
    description: Directories to create (with their parents) and whose owner, group and mode to set.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      owner:
        description: Owner (name or uid); unchanged when not given.
        type: str
      group:
        description: Group (name or gid); unchanged when not given.
        type: str
      mode:
        description: Mode as an octal string such as C("0750"); unchanged when not given.
        type: raw
  files:
    description: Files and their whole content. Processed after O(directories), in the order given.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file. Its directory must exist (or be listed in O(directories)).
        type: path
        required: true
      content:
        description: The whole content of the file (text, written as UTF-8).
        type: str
        required: true
      owner:
        description: Owner (name or uid); unchanged when not given.
        type: str
      group:
        description: Group (name or gid); unchanged when not given.
        type: str
      mode:
        description: Mode as an octal string such as C("0644"); a new file without it gets C(0644).
        type: raw
      validate:
        description:
          - A command run on the new content before it replaces the file, with C(%s) standing for
            the temporary file's path; a non-zero exit code fails the module and leaves the file
            as it was. Only run when the content changes.
        type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change; writes nothing.
  diff_mode:
    support: full
    details: The content before and after of every file that changes.
  platform:
    platforms: posix
notes:
  - For small text files (configuration, certificates, maps). Not for private keys (their content
    would travel through the module's arguments and the diff).
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
'''

EXAMPLES = r'''
- name: Directories and configuration of a node, in one step
  esgf.nodemgr.node_files:
    directories:
      - {path: /etc/esgf-nm, owner: root, group: esgf-nm, mode: "0750"}
      - {path: /var/lib/esgf-nm, owner: esgf-nm, group: esgf-nm, mode: "0750"}
    files:
      - path: /etc/esgf-nm/agent.yml
        content: "{{ lookup('ansible.builtin.template', 'agent.yml.j2') }}"
        owner: root
        group: esgf-nm
        mode: "0640"
        validate: /opt/esgf-nm/venv/bin/esgf-nm config check %s
  notify: Restart esgf-nm agent
'''

RETURN = r'''
changed_paths:
  description: The directories and files that were (in check mode, would be) created or changed.
  returned: always
  type: list
  elements: str
  sample: [/etc/esgf-nm/agent.yml]
'''

import os
import shlex
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_files import gid_of, parse_mode, uid_of

#: Longest content shown in a diff (a node map can be large; its summary is enough).
MAX_DIFF = 64 * 1024


def _attributes(module, path, spec, changed, diff):
    """Owner, group and mode of ``path`` as ``spec`` says; True when something changed."""
    if spec.get("owner") is not None:
        changed = module.set_owner_if_different(path, spec["owner"], changed, diff)
    if spec.get("group") is not None:
        changed = module.set_group_if_different(path, spec["group"], changed, diff)
    if spec.get("mode") is not None:
        changed = module.set_mode_if_different(path, spec["mode"], changed, diff)
    return changed


def _mode(module, spec, default):
    try:
        mode = parse_mode(spec.get("mode"))
    except ValueError as exc:
        module.fail_json(msg="{}: {}".format(spec["path"], exc))
    return default if mode is None else mode


def ensure_directory(module, spec):
    path = spec["path"]
    changed = False
    if not os.path.isdir(path):
        if os.path.lexists(path):
            module.fail_json(msg=f"{path} exists and is not a directory")
        changed = True
        if module.check_mode:
            return True
        try:
            os.makedirs(path, mode=_mode(module, spec, 0o755))
        except OSError as exc:
            module.fail_json(msg=f"cannot create directory {path}: {exc}")
    return _attributes(module, path, spec, changed, None)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _ids(module, spec):
    """(uid, gid) for chown of a new file (-1: keep)."""
    uid = gid = -1
    if spec.get("owner") is not None:
        uid = _uid(module, spec["owner"])
    if spec.get("group") is not None:
        gid = _gid(module, spec["group"])
    return uid, gid


def _uid(module, owner):
    uid = uid_of(owner)
    if uid is None:
        module.fail_json(msg=f"no such user: {owner}")
    return uid


def _gid(module, group):
    gid = gid_of(group)
    if gid is None:
        module.fail_json(msg=f"no such group: {group}")
    return gid


def ensure_file(module, spec, diffs):
    path = spec["path"]
    new = to_bytes(spec["content"], errors="surrogate_or_strict")
    old = _read(path)
    changed = False
    if old != new:
        changed = True
        if module._diff:
            diffs.append({
                "before_header": path, "after_header": path,
                "before": "" if old is None else _clip(to_text(old, errors="surrogate_or_replace")),
                "after": _clip(to_text(new, errors="surrogate_or_replace")),
            })
        if module.check_mode:
            return True
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            module.fail_json(msg=f"cannot write {path}: the directory {directory} does not exist")
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(new)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _mode(module, spec, 0o644))
            uid, gid = _ids(module, spec)
            if (uid, gid) != (-1, -1):
                os.chown(tmp, uid, gid)
            if spec.get("validate"):
                command = spec["validate"]
                if "%s" not in command:
                    module.fail_json(msg=f"{path}: validate must contain %s (the file to check): {command!r}")
                rc, out, err = module.run_command(shlex.split(command.replace("%s", shlex.quote(tmp))))
                if rc != 0:
                    module.fail_json(msg=f"{path}: the new content failed validation ({command}): {(err or out).strip()[:2000]}")
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return True
    if old is None:  # check mode, nothing to look at
        return changed
    return _attributes(module, path, spec, changed, None)


def _clip(text):
    if len(text) > MAX_DIFF:
        return text[:MAX_DIFF] + f"\n[... {len(text) - MAX_DIFF} more characters]\n"
    return text


def main():
    attrs = dict(owner=dict(type="str"), group=dict(type="str"), mode=dict(type="raw"))
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[],
                             options=dict(path=dict(type="path", required=True), **attrs)),
            files=dict(type="list", elements="dict", default=[],
                       options=dict(path=dict(type="path", required=True),
                                    content=dict(type="str", required=True),
                                    validate=dict(type="str"), **attrs)),
        ),
        supports_check_mode=True,
    )
    changed_paths = []
    diffs = []
    for spec in module.params["directories"]:
        if ensure_directory(module, spec):
            changed_paths.append(spec["path"])
    for spec in module.params["files"]:
        if ensure_file(module, spec, diffs):
            changed_paths.append(spec["path"])
    result = dict(changed=bool(changed_paths), changed_paths=changed_paths)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
