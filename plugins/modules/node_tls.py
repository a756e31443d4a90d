#!/usr/bin/python
# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r'''
module: node_tls
short_description: A node's TLS directory, and what its private key and certificates hold, in one step
version_added: 0.1.0
author: ESGF node manager maintainers (@ESGF)
description:
  - Makes sure the directory O(path) exists with its owner, group and mode (like
    M(ansible.builtin.file) with C(state=directory)).
  - Looks at the private key O(privatekey) and the certificate files O(certificates) in it, and
    changes neither; it says whether they are already what they must be. The key is good when it
    is an unencrypted elliptic-curve key on O(privatekey.curve) with the owner, group and mode
    given (what M(community.crypto.openssl_privatekey) keeps it at); its fingerprint is returned
    in the format of M(community.crypto.openssl_privatekey). A certificate file is good when it
    holds exactly the given content with the owner, group and mode given.
  - The pki role runs it first on every node; the tasks that create a key, issue a certificate or
    install one run only for what it reports missing or different. A rerun where everything is in
    place costs one module run per node instead of one per step.
options:
  path:
    description: The directory (created with its parents when missing).
    type: path
    required: true
  owner:
    description: Owner (name or uid) of the directory; unchanged when not given.
    type: str
  group:
    description: Group (name or gid) of the directory; unchanged when not given.
    type: str
  mode:
    description: Mode of the directory as an octal string such as C("0750"); unchanged when not given.
    type: raw
  privatekey:
    description: The private key to look at.
    type: dict
    suboptions:
      path:
        description: The key file (PEM).
        type: path
        required: true
      curve:
        description: The elliptic curve the key must be on (the name C(cryptography) gives it).
        type: str
        default: secp256r1
      owner:
        description: Owner (name or uid) the key file must have; not looked at when not given.
        type: str
      group:
        description: Group (name or gid) the key file must have; not looked at when not given.
        type: str
      mode:
        description: Mode the key file must have, such as C("0600"); not looked at when not given.
        type: raw
  certificates:
    description: Files (certificates) that must hold exactly the given content. Never written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      content:
        description: The content it must hold.
        type: str
        required: true
      owner:
        description: Owner (name or uid) it must have; not looked at when not given.
        type: str
      group:
        description: Group (name or gid) it must have; not looked at when not given.
        type: str
      mode:
        description: Mode it must have, such as C("0644"); not looked at when not given.
        type: raw
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the directory would be created or changed; the rest is read-only anyway.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - cryptography (on the node, to read the key; without it the key is reported as not good)
notes:
  - The key's content never leaves the node; only its public fingerprint is returned.
seealso:
  - module: community.crypto.openssl_privatekey
  - module: esgf.nodemgr.node_files
'''

EXAMPLES = r'''
- name: The node's TLS directory; are its key and certificates in place?
  esgf.nodemgr.node_tls:
    path: /etc/esgf-nm/tls
    owner: esgf-nm
    group: esgf-nm
    mode: "0750"
    privatekey: {path: /etc/esgf-nm/tls/node.key, owner: esgf-nm, group: esgf-nm, mode: "0600"}
    certificates:
      - {path: /etc/esgf-nm/tls/ca.pem, content: "{{ lookup('ansible.builtin.file', 'ca.pem') }}\n", mode: "0644"}
  register: __tls

- name: Create the key only when it is not there yet (or not right)
  community.crypto.openssl_privatekey:
    path: /etc/esgf-nm/tls/node.key
    type: ECC
    curve: secp256r1
    mode: "0600"
  when: not __tls.privatekey_ok
'''

RETURN = r'''
path:
  description: The directory.
  returned: always
  type: str
  sample: /etc/esgf-nm/tls
privatekey_ok:
  description: Whether the key exists, is on the curve and has the owner, group and mode given.
  returned: always
  type: bool
  sample: true
fingerprint:
  description:
    - SHA-256 fingerprint of the key's public key, as M(community.crypto.openssl_privatekey)
      returns it in C(fingerprint.sha256); null when the key cannot be read.
  returned: always
  type: str
  sample: "3f:0a:...:9c"
certificates_ok:
  description: Whether every file of O(certificates) holds its content with the owner, group and mode given.
  returned: always
  type: bool
  sample: true
problems:
  description: What is missing or different, one line each (empty when everything is in place).
  returned: always
  type: list
  elements: str
  sample: ["/etc/esgf-nm/tls/node.pem: content differs"]
'''

import hashlib
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.esgf.nodemgr.plugins.module_utils.esgf_nm_files import gid_of, parse_mode, uid_of

ATTRS = dict(owner=dict(type="str"), group=dict(type="str"), mode=dict(type="raw"))


def _mode(module, what, mode):
    try:
        return parse_mode(mode)
    except ValueError as exc:
        module.fail_json(msg=f"{what}: {exc}")


def attribute_problems(module, path, spec):
    """What differs between ``path``'s owner, group and mode and ``spec`` (existing file)."""
    st = os.stat(path)
    problems = []
    if spec.get("owner") is not None and uid_of(spec["owner"]) != st.st_uid:
        problems.append(f"{path}: owner is not {spec['owner']}")
    if spec.get("group") is not None and gid_of(spec["group"]) != st.st_gid:
        problems.append(f"{path}: group is not {spec['group']}")
    mode = _mode(module, path, spec.get("mode"))
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        problems.append(f"{path}: mode is {stat.S_IMODE(st.st_mode):04o}, not {mode:04o}")
    return problems


def ensure_directory(module, p):
    """Create ``path`` (and parents) and set its attributes; True when something changed."""
    path = p["path"]
    changed = False
    if not os.path.isdir(path):
        if os.path.lexists(path):
            module.fail_json(msg=f"{path} exists and is not a directory")
        if module.check_mode:
            return True
        try:
            os.makedirs(path, mode=_mode(module, path, p.get("mode")) or 0o755)
        except OSError as exc:
            module.fail_json(msg=f"cannot create directory {path}: {exc}")
        changed = True
    if p.get("owner") is not None:
        changed = module.set_owner_if_different(path, p["owner"], changed)
    if p.get("group") is not None:
        changed = module.set_group_if_different(path, p["group"], changed)
    if p.get("mode") is not None:
        changed = module.set_mode_if_different(path, p["mode"], changed)
    return changed


def fingerprint(public_der):
    """The SHA-256 fingerprint in community.crypto's format (hex pairs joined by colons)."""
    digest = hashlib.sha256(public_der).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def look_at_key(module, spec):
    """(problems, fingerprint) of the private key ``spec`` describes."""
    path = spec["path"]
    if not os.path.isfile(path):
        return [f"{path}: missing"], None
    problems = attribute_problems(module, path, spec)
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return [*problems, f"{path}: cannot be read here (the Python library cryptography is missing)"], None
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return [*problems, f"{path}: not an unencrypted PEM private key ({exc})"], None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        problems.append(f"{path}: not an elliptic-curve key")
    elif key.curve.name != spec["curve"]:
        problems.append(f"{path}: on curve {key.curve.name}, not {spec['curve']}")
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return problems, fingerprint(der)


def look_at_file(module, spec):
    path = spec["path"]
    try:
        with open(path, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        return [f"{path}: missing"]
    except OSError as exc:
        return [f"{path}: cannot be read ({exc})"]
    if old != to_bytes(spec["content"], errors="surrogate_or_strict"):
        return [f"{path}: content differs"]
    return attribute_problems(module, path, spec)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            # A path and what the key must be, never the key itself.
            privatekey=dict(type="dict", no_log=False,
                            options=dict(path=dict(type="path", required=True),
                                         curve=dict(type="str", default="secp256r1"), **ATTRS)),
            certificates=dict(type="list", elements="dict", default=[],
                              options=dict(path=dict(type="path", required=True),
                                           content=dict(type="str", required=True), **ATTRS)),
            **ATTRS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    changed = ensure_directory(module, p)
    key_problems, key_fingerprint = [], None
    if p["privatekey"]:
        key_problems, key_fingerprint = look_at_key(module, p["privatekey"])
    cert_problems = []
    for spec in p["certificates"]:
        cert_problems += look_at_file(module, spec)
    module.exit_json(changed=changed, path=p["path"], privatekey_ok=not key_problems,
                     fingerprint=key_fingerprint, certificates_ok=not cert_problems,
                     problems=key_problems + cert_problems)


if __name__ == "__main__":
    main()
