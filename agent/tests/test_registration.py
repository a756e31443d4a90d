"""registration.xml: validated against ESGF's own schema, plus its content."""

from __future__ import annotations

import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from esgf_nodemgr.runtime.esgf_files import NodeProperties, NodeStatus
from esgf_nodemgr.runtime.metrics_pg import DownloadMetrics, MetricsSnapshot
from esgf_nodemgr.runtime.registration import (
    NAMESPACE,
    RegistrationError,
    build_registration,
)

xmlschema = pytest.importorskip("xmlschema", reason="xmlschema validates registration.xml")

# tests/ -> agent/ -> repository root; shared/ sits beside the repository (../shared).
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ESGF_NM_SHARED_DIR", REPO_ROOT.parent / "shared"))
XSD_PATH = SHARED / "esgf" / "registration.xsd"
NS = {"r": NAMESPACE}
XSD_NS = "{http://www.w3.org/2001/XMLSchema}"
NOW = 1_764_000_000.0

# registration.xsd declares PEMCert's <Cert> directly inside <xsd:complexType>, which is not
# valid XSD; ESGF's own documents put a <Cert> there. The repaired copy wraps it in a sequence.
BROKEN_PEMCERT = '<xsd:element name="Cert" type="xsd:string"/>'
REPAIRED_PEMCERT = "<xsd:sequence>" + BROKEN_PEMCERT + "</xsd:sequence>"

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAbCd+/==\n-----END CERTIFICATE-----\n"

FULL = {
    "esgf.host": "full.example.org",
    "esgf.host.ip": "192.0.2.20",
    "esg.org.name": "Example Org",
    "esg.root.id": "example",
    "node.namespace": "org.example",
    "node.peer.group": "esgf-test",
    "node.short.name": "FULL",
    "node.long.name": "The full node",
    "node.dn": "/O=ESGF/OU=ESGF.ORG/CN=full.example.org",
    "mail.admin.address": "admin@example.org",
    "esgf.default.peer": "index.example.org",
    "esgf.index.peer": "other.example.org",
    "version": "1.2.3",
    "release": "Tarsier",
    "esgf.ca.hash": "a1b2c3d4",
    "esgf.ca.endpoint": "https://ca.example.org/",
    "esgf.ca.dn": "/O=ESGF/CN=ESGF CA",
    "node.geolocation.lat": "37.68",
    "node.geolocation.lon": "-121.76",
    "node.geolocation.city": "Livermore",
    "node.manager.service.endpoint": "https://full.example.org/esgf-nm/",
    "idp.service.endpoint": "https://full.example.org/esgf-idp/idp/openidServer.htm",
    "index.service.endpoint": "http://full.example.org/esg-search/search",
    "index.service.port": "8983",
    "orp.security.authorization.service.endpoint": (
        "https://full.example.org/esg-orp/saml/soap/secure/authorizationService.htm"
    ),
    "thredds.service.endpoint": "https://full.example.org/thredds",
    "gridftp.service.endpoint": "gsiftp://full.example.org",
    "gridftp.download.port": "2811",
    "gridftp.replication.port": "2812",
    "orp.service.endpoint": "https://full.example.org/esg-orp/",
}

ESCAPING = {
    "node.short.name": "A&B <\"quoted\"> 'single'",
    "node.long.name": "Météo-France — Zürich 気象 & <co>",
    "esg.org.name": 'R&D <Lab> "Ω"',
    "node.geolocation.lat": "1",
    "node.geolocation.lon": "2",
    "node.geolocation.city": "São Paulo & Ñuñoa",
    "thredds.service.endpoint": "https://esc.example.org/thredds?a=1&b=<2>",
    "mail.admin.address": "bad\x01char@example.org",
}


def node(
    hostname: str,
    props: Optional[Dict[str, str]] = None,
    types: tuple[str, ...] = (),
    read_at: float = NOW,
    status: NodeStatus = NodeStatus.GOOD,
) -> NodeProperties:
    return NodeProperties(hostname, props or {}, types, read_at, status=status)


@pytest.fixture(scope="module")
def xsd_text() -> str:
    if not XSD_PATH.is_file():
        pytest.skip(f"ESGF schema not found at {XSD_PATH} (set ESGF_NM_SHARED_DIR)")
    return XSD_PATH.read_text()


@pytest.fixture(scope="module")
def lax_schema(xsd_text: str) -> Any:
    schema = xmlschema.XMLSchema(str(XSD_PATH), validation="lax")
    # Lax only to get past the one known defect; anything else wrong must still fail.
    assert len(schema.all_errors) == 1, schema.all_errors
    assert "Cert" in str(schema.all_errors[0].elem.find(f"{XSD_NS}element").attrib)
    return schema


@pytest.fixture(scope="module")
def strict_schema(xsd_text: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert xsd_text.count(BROKEN_PEMCERT) == 1
    repaired = tmp_path_factory.mktemp("xsd") / "registration.xsd"
    repaired.write_text(xsd_text.replace(BROKEN_PEMCERT, REPAIRED_PEMCERT))
    return xmlschema.XMLSchema(str(repaired))


@pytest.fixture(scope="module")
def schema_order(xsd_text: str) -> List[str]:
    """The child order that registration.xsd lists for Node."""
    root = ET.fromstring(xsd_text)
    node_type = root.find(f"{XSD_NS}complexType[@name='Node']")
    assert node_type is not None
    return [e.attrib["ref"].split(":")[1] for e in node_type.iter(f"{XSD_NS}element")]


def validate(xml: bytes, lax_schema: Any, strict_schema: Any) -> ET.Element:
    lax_schema.validate(xml)
    strict_schema.validate(xml)
    return ET.fromstring(xml)


def local(tag: str) -> str:
    assert tag.startswith("{" + NAMESPACE + "}"), tag
    return tag.split("}", 1)[1]


def nodes_of(root: ET.Element) -> Dict[str, ET.Element]:
    return {n.attrib["hostname"]: n for n in root.findall("r:Node", NS)}


FEDERATION = [
    node("minimal.example.org"),
    node("full.example.org", FULL, ("data", "idp", "index")),
    node("esc.example.org", ESCAPING, ("idp",)),
    node("lapsed.example.org", {"node.short.name": "L"}, ("data",), status=NodeStatus.LAPSED),
    node("issue.example.org", {}, (), status=NodeStatus.ISSUE),
    node("single"),
]
METRICS = {
    "full.example.org": MetricsSnapshot(
        NOW, True, registered_users=42, download=DownloadMetrics(count=7, bytes=2**45, users=3)
    ),
    "esc.example.org": MetricsSnapshot(NOW, True, registered_users=5),
    "lapsed.example.org": MetricsSnapshot(NOW, False, reason="database down"),
}
CERTS = {"full.example.org": CERT}
ADMIN_PEERS = {"full.example.org": "super1.example.org"}


@pytest.mark.parametrize("one", FEDERATION, ids=lambda n: n.hostname)
def test_each_node_alone_validates(
    one: NodeProperties, lax_schema: Any, strict_schema: Any
) -> None:
    xml = build_registration([one], NOW, METRICS, CERTS, ADMIN_PEERS)
    root = validate(xml, lax_schema, strict_schema)
    assert list(nodes_of(root)) == [one.hostname]


def test_federation_validates_sorted_one_node_each(
    lax_schema: Any, strict_schema: Any, schema_order: List[str]
) -> None:
    xml = build_registration(FEDERATION, NOW + 5, METRICS, CERTS, ADMIN_PEERS, "9.9")
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = validate(xml, lax_schema, strict_schema)
    assert local(root.tag) == "Registration"
    assert root.attrib == {"timeStamp": str(int((NOW + 5) * 1000)), "version": "9.9"}
    hostnames = [n.attrib["hostname"] for n in root.findall("r:Node", NS)]
    assert hostnames == sorted(n.hostname for n in FEDERATION)
    assert len(root) == len(FEDERATION)
    for element in root:
        children = [local(child.tag) for child in element]
        positions = [schema_order.index(name) for name in children]
        assert positions == sorted(positions), children


def test_full_node_content(lax_schema: Any, strict_schema: Any) -> None:
    xml = build_registration(FEDERATION, NOW, METRICS, CERTS, ADMIN_PEERS)
    full = nodes_of(validate(xml, lax_schema, strict_schema))["full.example.org"]
    assert full.attrib == {
        "organization": "Example Org",
        "namespace": "org.example",
        "nodePeerGroup": "esgf-test",
        "supportEmail": "admin@example.org",
        "hostname": "full.example.org",
        "ip": "192.0.2.20",
        "dn": "/O=ESGF/OU=ESGF.ORG/CN=full.example.org",
        "shortName": "FULL",
        "longName": "The full node",
        "timeStamp": str(int(NOW * 1000)),
        "version": "1.2.3",
        "release": "Tarsier",
        "nodeType": "28",
        "adminPeer": "super1.example.org",
        "defaultPeer": "index.example.org",
    }
    assert [local(c.tag) for c in full] == [
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
    ]
    ca = full.find("r:CA", NS)
    assert ca is not None and ca.attrib == {
        "endpoint": "https://ca.example.org/",
        "dn": "/O=ESGF/CN=ESGF CA",
        "hash": "a1b2c3d4",
    }
    geo = full.find("r:GeoLocation", NS)
    assert geo is not None and (geo.attrib["lat"], geo.attrib["lon"], geo.attrib["city"]) == (
        "37.68",
        "-121.76",
        "Livermore",
    )
    index = full.find("r:IndexService", NS)
    assert index is not None and index.attrib["port"] == "8983"
    configs = full.findall("r:GridFTPService/r:Configuration", NS)
    assert [(c.attrib["serviceType"], c.attrib["port"]) for c in configs] == [
        ("Download", "2811"),
        ("Replication", "2812"),
    ]
    downloaded = full.find("r:Metrics/r:DownloadedData", NS)
    assert downloaded is not None
    assert downloaded.attrib == {"count": "7", "size": str(2**45), "users": "3"}
    users = full.find("r:Metrics/r:RegisteredUsers", NS)
    assert users is not None and users.attrib == {"count": "42"}
    cert = full.find("r:PEMCert/r:Cert", NS)
    assert cert is not None and cert.text == CERT.strip()


def test_minimal_node_gets_documented_defaults(lax_schema: Any, strict_schema: Any) -> None:
    xml = build_registration([node("esgf-data1.llnl.gov")], NOW)
    minimal = nodes_of(validate(xml, lax_schema, strict_schema))["esgf-data1.llnl.gov"]
    assert minimal.attrib == {
        "organization": "llnl.gov",
        "namespace": "gov.llnl",
        "nodePeerGroup": "esgf-prod",
        "hostname": "esgf-data1.llnl.gov",
        "ip": "",
        "dn": "CN=esgf-data1.llnl.gov",
        "shortName": "esgf-data1",
        "timeStamp": str(int(NOW * 1000)),
        "version": "unknown",
        "defaultPeer": "esgf-data1.llnl.gov",
    }
    assert list(minimal) == []


def test_default_peer_falls_back_to_index_peer() -> None:
    xml = build_registration([node("a.example.org", {"esgf.index.peer": "idx.example.org"})], NOW)
    assert nodes_of(ET.fromstring(xml))["a.example.org"].attrib["defaultPeer"] == "idx.example.org"


def test_escaping_and_non_ascii_round_trip(lax_schema: Any, strict_schema: Any) -> None:
    xml = build_registration([node("esc.example.org", ESCAPING, ("idp",))], NOW)
    assert b"&amp;" in xml and b"&lt;" in xml and b"&quot;" in xml
    assert "気象".encode() in xml  # UTF-8, not character references
    esc = nodes_of(validate(xml, lax_schema, strict_schema))["esc.example.org"]
    assert esc.attrib["shortName"] == ESCAPING["node.short.name"]
    assert esc.attrib["longName"] == ESCAPING["node.long.name"]
    assert esc.attrib["organization"] == ESCAPING["esg.org.name"]
    # A character XML cannot carry is replaced, not allowed to break the document.
    assert esc.attrib["supportEmail"] == "bad\ufffdchar@example.org"
    thredds = esc.find("r:ThreddsService", NS)
    assert thredds is not None
    assert thredds.attrib["endpoint"] == ESCAPING["thredds.service.endpoint"]
    geo = esc.find("r:GeoLocation", NS)
    assert geo is not None and geo.attrib["city"] == "São Paulo & Ñuñoa"


def test_metrics_rules(lax_schema: Any, strict_schema: Any) -> None:
    xml = build_registration(FEDERATION, NOW, METRICS, CERTS)
    nodes = nodes_of(validate(xml, lax_schema, strict_schema))
    # idp-only: DownloadedData is required by the schema, and the node served nothing.
    esc_downloads = nodes["esc.example.org"].find("r:Metrics/r:DownloadedData", NS)
    assert esc_downloads is not None
    assert esc_downloads.attrib == {"count": "0", "size": "0", "users": "0"}
    # Unavailable or missing metrics: no Metrics element at all.
    assert nodes["lapsed.example.org"].find("r:Metrics", NS) is None
    assert nodes["minimal.example.org"].find("r:Metrics", NS) is None
    # A data-only snapshot has no RegisteredUsers.
    data_only = {"full.example.org": MetricsSnapshot(NOW, True, download=DownloadMetrics(1, 2, 3))}
    full = nodes_of(ET.fromstring(build_registration(FEDERATION, NOW, data_only)))[
        "full.example.org"
    ]
    assert full.find("r:Metrics/r:RegisteredUsers", NS) is None
    assert full.find("r:Metrics/r:DownloadedData", NS) is not None


def test_pem_cert_only_when_known() -> None:
    xml = build_registration(FEDERATION, NOW, certificates={"single": "  \n"})
    nodes = nodes_of(ET.fromstring(xml))
    assert all(n.find("r:PEMCert", NS) is None for n in nodes.values())


def test_output_is_deterministic() -> None:
    expected = build_registration(FEDERATION, NOW, METRICS, CERTS, ADMIN_PEERS)
    rng = random.Random(4)
    for _ in range(5):
        shuffled = list(FEDERATION)
        rng.shuffle(shuffled)
        assert build_registration(shuffled, NOW, METRICS, CERTS, ADMIN_PEERS) == expected


def test_duplicate_hostname_keeps_newest() -> None:
    old = node("dup.example.org", {"node.short.name": "OLD"}, read_at=NOW - 60)
    new = node("dup.example.org", {"node.short.name": "NEW"}, read_at=NOW)
    for order in ([old, new], [new, old]):
        root = ET.fromstring(build_registration(order, NOW))
        assert [n.attrib["shortName"] for n in root.findall("r:Node", NS)] == ["NEW"]


def test_no_nodes_is_an_error() -> None:
    with pytest.raises(RegistrationError, match="at least one node"):
        build_registration([], NOW)
