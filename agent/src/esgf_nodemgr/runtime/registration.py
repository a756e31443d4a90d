"""Build ``registration.xml``, ESGF's legacy node registry, from the federation's node properties.

A pure function: values in, bytes out; writing the file is someone else's job. The output
validates against ESGF's ``registration.xsd`` (namespace ``http://www.esgf.org/registry``):
one ``<Registration>`` holding one ``<Node>`` per federation node, sorted by hostname.

Node attributes (``*`` = required by the schema; the default applies when the data is missing):

=============== ===================================== ==========================================
attribute       source                                default when missing
=============== ===================================== ==========================================
organization*   ``esg.org.name``, else ``esg.root.id`` the hostname's domain (``llnl.gov``)
namespace*      ``node.namespace``                    reversed domain (``gov.llnl``)
nodePeerGroup*  ``node.peer.group``                   ``esgf-prod``
supportEmail    ``mail.admin.address``                omitted
hostname*       the node's hostname (agent config)    —
ip*             ``esgf.host.ip``                      empty string (an address is never guessed)
dn*             ``node.dn``                           ``CN=<hostname>``
shortName*      ``node.short.name``                   first label of the hostname
longName        ``node.long.name``                    omitted
timeStamp*      when the properties were read (ms)    —
version*        ``version`` (agent-provided)          ``unknown``
release         ``release`` (agent-provided)          omitted
nodeType        config_type bit mask, as the          omitted when no node type is known
                prototype wrote it (e.g. ``28``)
adminPeer       ``admin_peers[hostname]`` (the        omitted
                supernode serving the node)
defaultPeer*    ``esgf.default.peer``, else           the node's own hostname
                ``esgf.index.peer``
=============== ===================================== ==========================================

Child elements, each written only when its data is present, in the order the schema lists
them (the schema uses ``xsd:all``, so order is not required, but a fixed order keeps the output
deterministic and diff-friendly):

- ``CA``: needs ``esgf.ca.hash``; ``endpoint`` from ``esgf.ca.endpoint`` (else the hostname),
  ``dn`` from ``esgf.ca.dn``.
- ``GeoLocation``: needs ``node.geolocation.lat`` and ``.lon``; ``city`` from ``.city``. The
  schema requires an ``endpoint`` on it too; we write the hostname.
- ``NodeManager``, ``OpenIDProvider``, ``IndexService``, ``AuthorizationService``,
  ``ThreddsService``, ``GridFTPService``, ``RelyingPartyService``: ``endpoint`` from
  ``node.manager.service.endpoint``, ``idp.service.endpoint``, ``index.service.endpoint``,
  ``orp.security.authorization.service.endpoint``, ``thredds.service.endpoint``,
  ``gridftp.service.endpoint``, ``orp.service.endpoint``. ``IndexService@port`` from
  ``index.service.port``, else the endpoint URL's explicit port. ``GridFTPService`` gets a
  ``Configuration`` for ``gridftp.download.port`` (Download) and ``gridftp.replication.port``
  (Replication) when set.
- ``Metrics``: from the node's metrics snapshot when it is available and holds numbers.
  ``DownloadedData`` (count, size = bytes, users) is required inside ``Metrics``: an idp-only
  node, which serves no downloads, gets zeros there. ``RegisteredUsers`` only on idp nodes.
- ``PEMCert``/``Cert``: the node's certificate (PEM text), when known.

Characters that XML 1.0 cannot carry (most C0 controls) are replaced by U+FFFD; everything
else is escaped by ElementTree. If the same hostname appears twice, the most recently read
properties win.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from esgf_nodemgr import __version__
from esgf_nodemgr.runtime.esgf_files import NodeProperties
from esgf_nodemgr.runtime.metrics_pg import MetricsSnapshot

NAMESPACE = "http://www.esgf.org/registry"
DEFAULT_PEER_GROUP = "esgf-prod"
UNKNOWN_VERSION = "unknown"

# Simple service elements: (element, property key holding its endpoint), in schema order.
# CA, GeoLocation, IndexService, GridFTPService, Metrics and PEMCert need more than an endpoint
# and are built by their own functions; _ELEMENT_ORDER says where each one goes.
_ENDPOINT_KEYS: Mapping[str, str] = {
    "NodeManager": "node.manager.service.endpoint",
    "OpenIDProvider": "idp.service.endpoint",
    "IndexService": "index.service.endpoint",
    "AuthorizationService": "orp.security.authorization.service.endpoint",
    "ThreddsService": "thredds.service.endpoint",
    "GridFTPService": "gridftp.service.endpoint",
    "RelyingPartyService": "orp.service.endpoint",
}

# The order of registration.xsd's Node/xsd:all, restricted to the elements we write.
ELEMENT_ORDER: Tuple[str, ...] = (
    "CA",
    "GeoLocation",
    "NodeManager",
    "OpenIDProvider",
    "IndexService",
    "AuthorizationService",
    "ThreddsService",
    "GridFTPService",
    "Metrics",
    "RelyingPartyService",
    "PEMCert",
)

# XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates, U+FFFE and U+FFFF.
_NOT_XML_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class RegistrationError(ValueError):
    """The input cannot make a valid ``registration.xml`` (e.g. no nodes at all)."""


def _clean(text: str) -> str:
    return _NOT_XML_RE.sub("\ufffd", text)


def _first(props: Mapping[str, str], *keys: str) -> Optional[str]:
    for key in keys:
        value = props.get(key, "").strip()
        if value:
            return value
    return None


def _domain_labels(hostname: str) -> List[str]:
    labels = hostname.lower().split(".")
    return labels[1:] if len(labels) > 1 else labels


def _node_attributes(
    node: NodeProperties, admin_peer: Optional[str]
) -> List[Tuple[str, Optional[str]]]:
    props = node.properties
    domain = _domain_labels(node.hostname)
    return [
        ("organization", _first(props, "esg.org.name", "esg.root.id") or ".".join(domain)),
        ("namespace", _first(props, "node.namespace") or ".".join(reversed(domain))),
        ("nodePeerGroup", _first(props, "node.peer.group") or DEFAULT_PEER_GROUP),
        ("supportEmail", _first(props, "mail.admin.address")),
        ("hostname", node.hostname),
        ("ip", _first(props, "esgf.host.ip") or ""),
        ("dn", _first(props, "node.dn") or f"CN={node.hostname}"),
        ("shortName", _first(props, "node.short.name") or node.hostname.split(".")[0]),
        ("longName", _first(props, "node.long.name")),
        ("timeStamp", str(int(node.read_at * 1000))),
        ("version", _first(props, "version") or UNKNOWN_VERSION),
        ("release", _first(props, "release")),
        ("nodeType", str(node.config_type) if node.node_types else None),
        ("adminPeer", admin_peer),
        (
            "defaultPeer",
            _first(props, "esgf.default.peer", "esgf.index.peer") or node.hostname,
        ),
    ]


def _element(name: str, attributes: Sequence[Tuple[str, Optional[str]]]) -> ET.Element:
    element = ET.Element(name)
    for key, value in attributes:
        if value is not None:
            element.set(key, _clean(value))
    return element


def _ca(node: NodeProperties) -> Optional[ET.Element]:
    props = node.properties
    ca_hash = _first(props, "esgf.ca.hash")
    if ca_hash is None:
        return None
    return _element(
        "CA",
        [
            ("endpoint", _first(props, "esgf.ca.endpoint") or node.hostname),
            ("dn", _first(props, "esgf.ca.dn")),
            ("hash", ca_hash),
        ],
    )


def _geolocation(node: NodeProperties) -> Optional[ET.Element]:
    props = node.properties
    lat = _first(props, "node.geolocation.lat")
    lon = _first(props, "node.geolocation.lon")
    if lat is None or lon is None:
        return None
    return _element(
        "GeoLocation",
        [
            ("endpoint", node.hostname),
            ("lat", lat),
            ("lon", lon),
            ("city", _first(props, "node.geolocation.city")),
        ],
    )


def _index_port(props: Mapping[str, str], endpoint: str) -> Optional[str]:
    explicit = _first(props, "index.service.port")
    if explicit is not None:
        return explicit
    try:
        port = urlsplit(endpoint).port
    except ValueError:  # a malformed port in the URL: leave the attribute out
        return None
    return str(port) if port is not None else None


def _service(name: str, node: NodeProperties) -> Optional[ET.Element]:
    endpoint = _first(node.properties, _ENDPOINT_KEYS[name])
    if endpoint is None:
        return None
    attributes: List[Tuple[str, Optional[str]]] = [("endpoint", endpoint)]
    if name == "IndexService":
        attributes.append(("port", _index_port(node.properties, endpoint)))
    element = _element(name, attributes)
    if name == "GridFTPService":
        for service_type, key in (
            ("Download", "gridftp.download.port"),
            ("Replication", "gridftp.replication.port"),
        ):
            port = _first(node.properties, key)
            if port is not None:
                element.append(
                    _element("Configuration", [("serviceType", service_type), ("port", port)])
                )
    return element


def _metrics(node: NodeProperties, snapshot: Optional[MetricsSnapshot]) -> Optional[ET.Element]:
    if snapshot is None or not snapshot.available:
        return None
    if snapshot.download is None and snapshot.registered_users is None:
        return None
    element = ET.Element("Metrics")
    download = snapshot.download
    element.append(
        _element(
            "DownloadedData",
            [
                ("count", str(download.count if download else 0)),
                ("size", str(download.bytes if download else 0)),
                ("users", str(download.users if download else 0)),
            ],
        )
    )
    if snapshot.registered_users is not None:
        element.append(_element("RegisteredUsers", [("count", str(snapshot.registered_users))]))
    return element


def _pem(certificate: Optional[str]) -> Optional[ET.Element]:
    if certificate is None or not certificate.strip():
        return None
    element = ET.Element("PEMCert")
    cert = ET.SubElement(element, "Cert")
    cert.text = _clean(certificate.strip())
    return element


def _node(
    node: NodeProperties,
    snapshot: Optional[MetricsSnapshot],
    certificate: Optional[str],
    admin_peer: Optional[str],
) -> ET.Element:
    element = _element("Node", _node_attributes(node, admin_peer))
    builders: Dict[str, Callable[[], Optional[ET.Element]]] = {
        "CA": lambda: _ca(node),
        "GeoLocation": lambda: _geolocation(node),
        "Metrics": lambda: _metrics(node, snapshot),
        "PEMCert": lambda: _pem(certificate),
    }
    for name in ELEMENT_ORDER:
        builder = builders.get(name)
        child = builder() if builder is not None else _service(name, node)
        if child is not None:
            element.append(child)
    return element


def _latest_per_host(nodes: Sequence[NodeProperties]) -> List[NodeProperties]:
    latest: Dict[str, NodeProperties] = {}
    for node in nodes:
        current = latest.get(node.hostname)
        # Ties on read_at are broken by content so the result never depends on input order.
        if current is None or (node.read_at, node.to_json()) > (
            current.read_at,
            current.to_json(),
        ):
            latest[node.hostname] = node
    return [latest[hostname] for hostname in sorted(latest)]


def build_registration(
    nodes: Sequence[NodeProperties],
    generated_at: float,
    metrics: Optional[Mapping[str, MetricsSnapshot]] = None,
    certificates: Optional[Mapping[str, str]] = None,
    admin_peers: Optional[Mapping[str, str]] = None,
    registry_version: str = __version__,
) -> bytes:
    """Return ``registration.xml`` (UTF-8 bytes) for ``nodes``, one ``<Node>`` per hostname.

    ``generated_at`` (seconds since the epoch) becomes the root's ``timeStamp`` in ms;
    ``metrics``, ``certificates`` (PEM text) and ``admin_peers`` are keyed by hostname and
    optional per node; ``registry_version`` fills the root's required ``version``. Raises
    :class:`RegistrationError` when ``nodes`` is empty (the schema needs at least one Node).
    """
    if not nodes:
        raise RegistrationError("registration.xml needs at least one node")
    metrics = metrics or {}
    certificates = certificates or {}
    admin_peers = admin_peers or {}
    # Tags stay unqualified in the tree and the root declares the default namespace:
    # ElementTree's default_namespace option refuses the unqualified attribute names the schema
    # wants, and the serialised document is the same.
    root = ET.Element(
        "Registration",
        {
            "xmlns": NAMESPACE,
            "timeStamp": str(int(generated_at * 1000)),
            "version": _clean(registry_version),
        },
    )
    for node in _latest_per_host(nodes):
        root.append(
            _node(
                node,
                metrics.get(node.hostname),
                certificates.get(node.hostname),
                admin_peers.get(node.hostname),
            )
        )
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return body + b"\n"
