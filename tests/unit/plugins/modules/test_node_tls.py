"""``node_tls``: the TLS directory made right; key and certificates looked at, never written."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.esgf.nodemgr.plugins.modules import node_tls

serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write_key(path, curve=None, file_mode=0o600):
    key = ec.generate_private_key(curve or ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, file_mode)
    return key


def args(tmp_path, **extra):
    tls = tmp_path / "etc" / "tls"
    return dict({
        "path": str(tls), "mode": "0750",
        "privatekey": {"path": str(tls / "node.key"), "mode": "0600"},
        "certificates": [{"path": str(tls / "node.pem"), "content": "CERT\n", "mode": "0644"},
                         {"path": str(tls / "ca.pem"), "content": "CA\n", "mode": "0644"}],
    }, **extra)


def test_fresh_node_creates_the_directory_and_reports_what_is_missing(run_module, tmp_path):
    preview = run_module(node_tls, args(tmp_path), check_mode=True)
    assert preview["changed"] and not (tmp_path / "etc").exists()
    assert not preview["privatekey_ok"] and preview["fingerprint"] is None
    assert not preview["certificates_ok"]

    res = run_module(node_tls, args(tmp_path))
    assert res["changed"] and mode(tmp_path / "etc" / "tls") == 0o750
    assert not res["privatekey_ok"] and not res["certificates_ok"]
    assert any("node.key: missing" in p for p in res["problems"])
    assert run_module(node_tls, args(tmp_path))["changed"] is False


def test_everything_in_place(run_module, tmp_path):
    tls = tmp_path / "etc" / "tls"
    tls.mkdir(parents=True, mode=0o750)
    os.chmod(tls, 0o750)
    key = write_key(tls / "node.key")
    (tls / "node.pem").write_text("CERT\n")
    (tls / "ca.pem").write_text("CA\n")
    os.chmod(tls / "node.pem", 0o644)
    os.chmod(tls / "ca.pem", 0o644)
    res = run_module(node_tls, args(tmp_path))
    assert not res["changed"] and res["privatekey_ok"] and res["certificates_ok"], res["problems"]
    assert res["problems"] == []
    # community.crypto.openssl_privatekey's fingerprint.sha256: the public key's DER, hex pairs.
    import hashlib
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest()
    assert res["fingerprint"] == ":".join(digest[i:i + 2] for i in range(0, 64, 2))

    # Content, mode, curve: each is reported, and nothing is written.
    (tls / "node.pem").write_text("OLD\n")
    os.chmod(tls / "node.key", 0o644)
    res = run_module(node_tls, args(tmp_path))
    assert not res["changed"] and not res["privatekey_ok"] and not res["certificates_ok"]
    assert (tls / "node.pem").read_text() == "OLD\n" and mode(tls / "node.key") == 0o644
    assert sorted(res["problems"]) == sorted([f"{tls / 'node.key'}: mode is 0644, not 0600",
                                              f"{tls / 'node.pem'}: content differs"])
    assert res["fingerprint"]  # still readable: whoever fixes the mode keeps the key

    write_key(tls / "node.key", curve=ec.SECP384R1())
    res = run_module(node_tls, args(tmp_path))
    assert not res["privatekey_ok"]
    assert any("not secp256r1" in p for p in res["problems"])

    (tls / "node.key").write_text("not a key\n")
    res = run_module(node_tls, args(tmp_path))
    assert not res["privatekey_ok"] and res["fingerprint"] is None


def test_directory_mode_is_fixed(run_module, tmp_path):
    tls = tmp_path / "etc" / "tls"
    tls.mkdir(parents=True)
    os.chmod(tls, 0o755)
    res = run_module(node_tls, {"path": str(tls), "mode": "0750"})
    assert res["changed"] and mode(tls) == 0o750
    assert res["privatekey_ok"] and res["certificates_ok"]  # nothing asked about them


def test_a_file_where_the_directory_should_be_fails(run_module, tmp_path):
    (tmp_path / "tls").write_text("x")
    res = run_module(node_tls, {"path": str(tmp_path / "tls")})
    assert res["failed"] and "not a directory" in res["msg"]
