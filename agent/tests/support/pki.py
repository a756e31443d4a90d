"""A throw-away test PKI built with ``cryptography``: a federation CA, one certificate per node
(hostname as CN and DNS SAN, plus IP SANs), and a second "foreign" CA with a certificate of its
own, for tests that must be refused.

Files are written as PEM into a directory; private keys get mode 0600 like in production.
EC P-256 keys keep generation fast.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class NodeFiles:
    """Paths of one node's certificate and key, and of the CA bundle it trusts."""

    hostname: str
    cert: str
    key: str
    ca: str


@dataclass(frozen=True)
class Pki:
    """Everything ``make_pki`` wrote."""

    directory: str
    ca_cert: str
    ca_key: str
    nodes: Dict[str, NodeFiles] = field(default_factory=dict)
    foreign_ca_cert: str = ""
    foreign: Optional[NodeFiles] = None

    def node(self, hostname: str) -> NodeFiles:
        """The files of ``hostname``."""
        return self.nodes[hostname]


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca(name: str) -> Tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hostname: str,
    ips: Sequence[str],
) -> Tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list = [x509.DNSName(hostname)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        # Agents are both servers and clients of each other.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_pki(
    directory: str,
    hostnames: Sequence[str],
    ips: Sequence[str] = ("127.0.0.1",),
    foreign_hostname: str = "intruder.example",
) -> Pki:
    """Create the federation CA and a certificate per hostname (with every IP in ``ips`` as an
    IP SAN) in ``directory``; also a foreign CA and a certificate for ``foreign_hostname``.

    Layout: ``ca.pem``, ``ca.key``, ``<host>.pem``, ``<host>.key``, ``foreign-ca.pem``,
    ``foreign.pem``, ``foreign.key``.
    """
    os.makedirs(directory, exist_ok=True)
    ca_key, ca_cert = _make_ca("esgf-nodemgr test federation CA")
    ca_path = os.path.join(directory, "ca.pem")
    ca_key_path = os.path.join(directory, "ca.key")
    _write(ca_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(ca_key_path, _key_pem(ca_key), 0o600)
    nodes: Dict[str, NodeFiles] = {}
    for host in hostnames:
        key, cert = _issue(ca_key, ca_cert, host, ips)
        cert_path = os.path.join(directory, f"{host}.pem")
        key_path = os.path.join(directory, f"{host}.key")
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(key_path, _key_pem(key), 0o600)
        nodes[host] = NodeFiles(host, cert_path, key_path, ca_path)

    f_ca_key, f_ca_cert = _make_ca("some other CA")
    f_ca_path = os.path.join(directory, "foreign-ca.pem")
    _write(f_ca_path, f_ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    f_key, f_cert = _issue(f_ca_key, f_ca_cert, foreign_hostname, ips)
    f_cert_path = os.path.join(directory, "foreign.pem")
    f_key_path = os.path.join(directory, "foreign.key")
    _write(f_cert_path, f_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(f_key_path, _key_pem(f_key), 0o600)
    foreign = NodeFiles(foreign_hostname, f_cert_path, f_key_path, f_ca_path)
    return Pki(directory, ca_path, ca_key_path, nodes, f_ca_path, foreign)
