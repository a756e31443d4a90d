"""TLS material for the agent: server and client contexts built from file paths.

Every agent holds a certificate issued by the federation CA for its own hostname, the matching
key, and the CA bundle. Node-to-node calls are mutually authenticated; the identity of the
caller is the verified certificate's first DNS subjectAltName (or its commonName when it has
none), and route handlers compare that identity with the sender a request claims.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class TLSConfigError(Exception):
    """A certificate, key or CA file is missing, unreadable, malformed or mismatched."""


def _check_readable(kind: str, path: PathLike) -> str:
    fspath = os.fspath(path)
    try:
        with open(fspath, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError as exc:
        raise TLSConfigError(f"cannot read {kind} file {fspath}: {exc.strerror}") from exc
    if b"-----BEGIN " not in head:
        raise TLSConfigError(f"{kind} file {fspath} does not contain PEM data")
    return fspath


def check_key_permissions(key: PathLike) -> bool:
    """Warn (and return False) when the private key file is readable by group or others.

    Only a warning: refusing to start would turn a permissions slip into a federation outage,
    and the operator sees the warning in the log at every start.
    """
    fspath = os.fspath(key)
    try:
        mode = os.stat(fspath).st_mode
    except OSError as exc:
        raise TLSConfigError(f"cannot stat key file {fspath}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "private key %s has mode %04o; it should be readable by its owner only (0600)",
            fspath,
            stat.S_IMODE(mode),
        )
        return False
    return True


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except ssl.SSLError as exc:
        # OpenSSL says "key values mismatch" or "PEM lib"; say which files were involved.
        raise TLSConfigError(
            f"cannot load certificate {cert} with key {key}: {exc.reason or exc}"
            " (is the key the one for this certificate, and both PEM?)"
        ) from exc
    except OSError as exc:
        raise TLSConfigError(f"cannot load certificate {cert} / key {key}: {exc}") from exc


def _load_ca(ctx: ssl.SSLContext, ca: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load CA bundle {ca}: {exc}") from exc


def _restrict(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # No renegotiation and no compression: neither is needed and both have a history of bugs.
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0) | ssl.OP_NO_COMPRESSION


def server_context(cert: PathLike, key: PathLike, ca: PathLike) -> ssl.SSLContext:
    """Build the TLS context of the agent's HTTPS server.

    Client certificates are requested and verified against ``ca`` when offered, but not
    required at the TLS level (``CERT_OPTIONAL``): public read-only routes serve anyone, and
    node-to-node routes refuse callers without a verified identity (see ``httpserver``).
    A client certificate that does not verify aborts the handshake.
    """
    cert_p = _check_readable("certificate", cert)
    key_p = _check_readable("key", key)
    ca_p = _check_readable("CA bundle", ca)
    check_key_permissions(key_p)
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_p)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load CA bundle {ca_p}: {exc}") from exc
    ctx.verify_mode = ssl.CERT_OPTIONAL
    _restrict(ctx)
    _load_chain(ctx, cert_p, key_p)
    return ctx


def client_context(cert: PathLike, key: PathLike, ca: PathLike) -> ssl.SSLContext:
    """Build a client-side TLS context presenting our certificate and verifying the server
    (hostname checked), for callers that use ``ssl`` or ``http.client`` directly."""
    cert_p = _check_readable("certificate", cert)
    key_p = _check_readable("key", key)
    ca_p = _check_readable("CA bundle", ca)
    check_key_permissions(key_p)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _load_ca(ctx, ca_p)
    _restrict(ctx)
    _load_chain(ctx, cert_p, key_p)
    return ctx


@dataclass(frozen=True)
class ClientSettings:
    """Keyword arguments for ``requests``: ``session.verify = s.verify; session.cert = s.cert``.

    ``verify`` is the CA bundle path, so only servers certified by the federation CA are
    trusted; ``cert`` is our (certificate, key) pair for mutual TLS.
    """

    verify: str
    cert: Tuple[str, str]

    def apply(self, session: Any) -> None:
        """Configure a ``requests.Session`` (typed ``Any`` to keep requests out of this
        module's imports).

        Also sets ``trust_env = False``: otherwise ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
        in the environment silently replace ``session.verify`` (a long-standing requests
        behaviour) and ``HTTPS_PROXY`` would route node-to-node traffic through a proxy.
        """
        session.trust_env = False
        session.verify = self.verify
        session.cert = self.cert


def client_settings(cert: PathLike, key: PathLike, ca: PathLike) -> ClientSettings:
    """Validate the client files and return the settings for a ``requests.Session``.

    Loads them once into a throw-away context so that a mismatched key is reported here,
    at start, rather than at the first probe.
    """
    client_context(cert, key, ca)
    return ClientSettings(verify=os.fspath(ca), cert=(os.fspath(cert), os.fspath(key)))


def peer_identity(sock: ssl.SSLSocket) -> Optional[str]:
    """Return the verified identity of the peer on a handshaken TLS socket.

    The identity is the certificate's first DNS subjectAltName, else its commonName; None
    when the peer presented no certificate. ``getpeercert()`` only returns a non-empty dict for
    a certificate that passed verification against our CA, so this is a verified name.
    """
    cert = sock.getpeercert()
    if not cert:
        return None
    # typeshed types every value of this dict as "str or nested tuples": check the shapes.
    sans = cert.get("subjectAltName", ())
    if isinstance(sans, tuple):
        for pair in sans:
            if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == "DNS" and pair[1]:
                return str(pair[1]).lower()
    subject = cert.get("subject", ())
    if isinstance(subject, tuple):
        for rdn in subject:
            if not isinstance(rdn, tuple):
                continue
            for attr in rdn:
                if (
                    isinstance(attr, tuple)
                    and len(attr) == 2
                    and attr[0] == "commonName"
                    and (attr[1])
                ):
                    return str(attr[1]).lower()
    return None
