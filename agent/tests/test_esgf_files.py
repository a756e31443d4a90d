"""Reading esgf.properties and config_type into NodeProperties."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esgf_nodemgr.runtime.esgf_files import (
    MAX_JSON_CHARS,
    ConfigTypeError,
    NodeProperties,
    NodePropertiesFormatError,
    NodeStatus,
    PropertiesSyntaxError,
    decode_config_type,
    encode_node_types,
    parse_properties,
    read_node_properties,
    shareable_properties,
)

HOST = "esgf-node.example.org"
NOW = 1_764_000_000.0

REAL_LOOKING = """\
#Sat Jan 02 10:00:00 UTC 2016
# written by the ESGF installer
[installer.properties]
esg.root.url=https://esgf.example.org/esgf
esgf.host=esgf-node.example.org
esgf.host.ip = 192.0.2.10
node.short.name : EXAMPLE
node.long.name=Example node: the one & only <test>
node.namespace=org.example
node.peer.group=esgf-test
esgf.index.peer=index.example.org
esgf.default.peer=index.example.org
mail.admin.address=admin@example.org
db.user=dbsuper
db.password=hunter2
db.passwd.file=/esg/config/.esg_pg_pass
security.admin.token=abc123
publisher.secret=s
keystore.private.alias=k
thredds.content.dir=/esg/content/thredds
home.relative=~esg/cfg
node.geolocation.lat=37.68
node.geolocation.lon=-121.76
  ! indented bang comment
\tindented.key\t=\tvalue with  inner  spaces   \n
continued.value = first \\
    second \\
    third
escaped\\=key = a\\tb
unicode.value = caf\\u00e9
trailing.backslash.pair = ends with backslash\\\\
thredds.service.endpoint=http://esgf-node.example.org/thredds
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ parsing


def test_parses_real_looking_file() -> None:
    props = parse_properties(REAL_LOOKING)
    assert props["esgf.host"] == HOST
    assert props["esgf.host.ip"] == "192.0.2.10"
    assert props["node.short.name"] == "EXAMPLE"
    # Only the first separator splits; the rest belongs to the value.
    assert props["node.long.name"] == "Example node: the one & only <test>"
    assert props["indented.key"] == "value with  inner  spaces"
    assert props["continued.value"] == "first second third"
    assert props["escaped=key"] == "a\tb"
    assert props["unicode.value"] == "café"
    assert props["trailing.backslash.pair"] == "ends with backslash\\"
    assert not any(key.startswith(("#", "!", "[")) for key in props)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("\n\n   \n", {}),
        ("a=1\r\nb=2\r\n", {"a": "1", "b": "2"}),
        ("a=1\rb=2", {"a": "1", "b": "2"}),
        ("a=", {"a": ""}),
        ("a = x = y", {"a": "x = y"}),
        ("a: x", {"a": "x"}),
        ("a=1\na=2", {"a": "2"}),  # later keys win, as in Java
        ("a=x\\", {"a": "x"}),  # continuation on the last line
        ("a=x\\\n\nb=2", {"a": "x", "b": "2"}),  # continuation into a blank line ends it
        ("# a=1\\\nb=2", {"b": "2"}),  # comments never continue
        ("a=url=http://h/p?x=1", {"a": "url=http://h/p?x=1"}),
        ("a=\fvalue", {"a": "value"}),  # form feed is whitespace in Java
    ],
)
def test_parse_edge_cases(text: str, expected: Dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a=1\njust some words\n", 2, "no '=' or ':'"),
        ("a=1\n\n# c\n= value\n", 4, "empty key"),
        ("a=1\nmy key = v\n", 2, "contains whitespace"),
        ("a=\\u12G4\n", 1, "bad unicode escape"),
        ("a=1\nb=x\\\n  y\nc d e\n", 4, "no '='"),  # numbering survives continuations
        ("a=1\nb=\x00\n", 2, "control character"),
    ],
)
def test_bad_lines_are_reported_with_line_numbers(text: str, line: int, message: str) -> None:
    with pytest.raises(PropertiesSyntaxError, match=message) as info:
        parse_properties(text)
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)


def test_error_names_the_file(tmp_path: Path) -> None:
    props = write(tmp_path / "esgf.properties", "ok=1\nbroken\n")
    node = read_node_properties(HOST, NOW, props, tmp_path / "config_type")
    assert node.status is NodeStatus.ISSUE
    assert f"{props}:2" in node.reason


# ------------------------------------------------------------------ filtering


def test_secrets_and_absolute_paths_are_dropped() -> None:
    shared = shareable_properties(parse_properties(REAL_LOOKING))
    for dropped in (
        "db.password",  # secret, by name
        "db.passwd.file",  # secret and a path
        "security.admin.token",
        "publisher.secret",
        "keystore.private.alias",
        "thredds.content.dir",  # absolute path
        "home.relative",  # ~ expands to an absolute path
    ):
        assert dropped not in shared, dropped
    assert "hunter2" not in json.dumps(shared)
    assert shared["db.user"] == "dbsuper"
    assert shared["thredds.service.endpoint"].startswith("http://")


@pytest.mark.parametrize(
    ("value", "dropped"),
    [
        ("/esg/config/esgf.properties", True),
        ("/", True),
        ("  /leading/space", True),
        ("~/cfg", True),
        ("/etc/grid-security/O=foo", True),  # a path with '=' in one segment is still a path
        ("/O=ESGF/OU=ESGF.ORG/CN=esgf-node.example.org", False),  # OpenSSL DN, not a path
        ("/CN=host", False),
        ("https://h/esg/config", False),
        ("relative/path", False),
        ("", False),
    ],
)
def test_absolute_path_rule(value: str, dropped: bool) -> None:
    assert (shareable_properties({"k": value}) == {}) is dropped


@pytest.mark.parametrize("key", ["DB.PASSWORD", "x.Token", "myPrivateKey", "api_key", "Passwd"])
def test_secret_key_matching_ignores_case(key: str) -> None:
    assert shareable_properties({key: "v"}) == {}


def test_node_properties_filters_whatever_it_is_given() -> None:
    node = NodeProperties(HOST, {"a": "1", "pw.password": "x", "p": "/etc"}, (), NOW)
    assert dict(node.properties) == {"a": "1"}
    with pytest.raises(TypeError):
        node.properties["b"] = "2"  # type: ignore[index]


# ------------------------------------------------------------------ config_type


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("4", ["data"]),
        ("8\n", ["index"]),
        ("16", ["idp"]),
        ("32", ["compute"]),
        ("28", ["data", "idp", "index"]),
        ("60", ["compute", "data", "idp", "index"]),
        ("  20  \n", ["data", "idp"]),
        ("0", []),
        ("1", []),  # installer-private bits are ignored
        ("97", ["compute"]),  # 64 + 32 + 1
    ],
)
def test_config_type_decoding(text: str, types: list[str]) -> None:
    assert decode_config_type(text) == types


@pytest.mark.parametrize(
    "text", ["", "  \n", "data", "-4", "4.0", "0x1c", "4 8", "\uff12\uff18", "9" * 30]
)
def test_config_type_bad_content(text: str) -> None:
    with pytest.raises(ConfigTypeError, match="config_type"):
        decode_config_type(text)


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_config_type_round_trip(mask: int) -> None:
    names = decode_config_type(str(mask))
    assert names == sorted(names)
    assert encode_node_types(names) == mask & 60


# ------------------------------------------------------------------ reading files


def test_reads_both_files(tmp_path: Path) -> None:
    props = write(tmp_path / "esgf.properties", REAL_LOOKING)
    ctype = write(tmp_path / "config_type", "28\n")
    node = read_node_properties(
        HOST, NOW, props, ctype, agent_properties={"version": "1.2.3", "release": "Tarsier"}
    )
    assert node.status is NodeStatus.GOOD
    assert node.reason == ""
    assert node.node_types == ("data", "idp", "index")
    assert node.config_type == 28
    assert node.read_at == NOW
    assert node.properties["version"] == "1.2.3"
    assert node.properties["node.peer.group"] == "esgf-test"
    assert "db.password" not in node.properties


def test_absent_files_give_good_with_reason(tmp_path: Path) -> None:
    node = read_node_properties(
        HOST, NOW, tmp_path / "esgf.properties", tmp_path / "config_type", {"version": "9"}
    )
    assert node.status is NodeStatus.GOOD
    assert dict(node.properties) == {"esgf.host": HOST, "version": "9"}
    assert node.node_types == ()
    assert "absent" in node.reason
    assert "esgf.properties" in node.reason and "config_type" in node.reason


def test_one_file_absent(tmp_path: Path) -> None:
    ctype = write(tmp_path / "config_type", "4")
    node = read_node_properties(HOST, NOW, tmp_path / "esgf.properties", ctype)
    assert node.status is NodeStatus.GOOD
    assert node.node_types == ("data",)
    assert "esgf.properties" in node.reason and "config_type" not in node.reason


def test_invalid_config_type_is_issue(tmp_path: Path) -> None:
    props = write(tmp_path / "esgf.properties", "a=1\n")
    ctype = write(tmp_path / "config_type", "data node\n")
    node = read_node_properties(HOST, NOW, props, ctype)
    assert node.status is NodeStatus.ISSUE
    assert "config_type" in node.reason
    # Nothing half-read is shared when the files are bad.
    assert dict(node.properties) == {"esgf.host": HOST}


def test_unreadable_file_is_issue(tmp_path: Path) -> None:
    directory = tmp_path / "esgf.properties"
    directory.mkdir()  # reading a directory fails even for root
    node = read_node_properties(HOST, NOW, directory, tmp_path / "config_type")
    assert node.status is NodeStatus.ISSUE
    assert "cannot read" in node.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_issue(tmp_path: Path) -> None:
    props = write(tmp_path / "esgf.properties", "a=1\n")
    props.chmod(0)
    node = read_node_properties(HOST, NOW, props, tmp_path / "config_type")
    assert node.status is NodeStatus.ISSUE


def test_oversized_file_is_issue(tmp_path: Path) -> None:
    props = write(tmp_path / "esgf.properties", "a=" + "x" * (1024 * 1024) + "\n")
    node = read_node_properties(HOST, NOW, props, tmp_path / "config_type")
    assert node.status is NodeStatus.ISSUE
    assert "larger than" in node.reason


def test_latin1_file_is_accepted(tmp_path: Path) -> None:
    props = tmp_path / "esgf.properties"
    props.write_bytes("node.long.name=Météo\n".encode("latin-1"))
    node = read_node_properties(HOST, NOW, props, tmp_path / "config_type")
    assert node.properties["node.long.name"] == "Météo"


def test_bad_hostname_is_a_caller_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hostname"):
        read_node_properties("bad host", NOW, tmp_path / "p", tmp_path / "c")


# ------------------------------------------------------------------ status by time


def test_status_by_age() -> None:
    node = NodeProperties(HOST, {}, (), read_at=NOW)
    assert node.evaluate(now=NOW + 100, max_age=300).status is NodeStatus.GOOD
    assert node.evaluate(now=NOW + 300, max_age=300).status is NodeStatus.GOOD
    lapsed = node.evaluate(now=NOW + 301, max_age=300)
    assert lapsed.status is NodeStatus.LAPSED
    # Fresh properties again make it GOOD; ISSUE is never hidden by age.
    assert lapsed.evaluate(now=NOW + 1, max_age=300).status is NodeStatus.GOOD
    issue = NodeProperties(HOST, {}, (), read_at=NOW, status=NodeStatus.ISSUE, reason="x")
    assert issue.evaluate(now=NOW + 10_000, max_age=300).status is NodeStatus.ISSUE


# ------------------------------------------------------------------ JSON


def sample() -> NodeProperties:
    return NodeProperties(
        hostname=HOST,
        properties={"node.long.name": "Zoë & <co>", "esgf.host.ip": "192.0.2.1"},
        node_types=("idp", "data"),
        read_at=NOW,
    )


def test_json_round_trip() -> None:
    node = sample()
    assert node.node_types == ("data", "idp")
    text = node.to_json()
    assert NodeProperties.from_json(text) == node
    assert NodeProperties.from_json(text.encode("utf-8")) == node
    assert json.loads(text)["status"] == "GOOD"


def test_legacy_shape() -> None:
    legacy = sample().to_legacy_dict()
    assert legacy["node.type"] == "20"
    assert legacy["timestamp"] == str(int(NOW * 1000))
    assert legacy["esgf.host.ip"] == "192.0.2.1"


def good_doc() -> Dict[str, Any]:
    doc: Dict[str, Any] = json.loads(sample().to_json())
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hostname": 5}, "hostname: expected a string"),
        ({"hostname": "not a host"}, "not a valid hostname"),
        ({"hostname": "a" * 300}, "hostname: longer than"),
        ({"status": "FINE"}, "status: expected one of"),
        ({"read_at": "yesterday"}, "read_at"),
        ({"read_at": True}, "read_at"),
        ({"read_at": -5}, "read_at"),
        ({"node_types": "data"}, "node_types: expected a list"),
        ({"node_types": ["data", "data"]}, "duplicate"),
        ({"node_types": ["storage"]}, "node_types: expected names"),
        ({"properties": []}, "properties: expected an object"),
        ({"properties": {"a": 1}}, "expected a string"),
        ({"properties": {"a": "x" * 5000}}, "longer than"),
        ({"properties": {"k" * 300: "v"}}, "key length"),
        ({"properties": {str(i): "v" for i in range(2000)}}, "more than"),
        ({"reason": None}, "reason: expected a string"),
        ({"format": 2}, "format"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_from_json_rejects_bad_fields(change: Dict[str, Any], message: str) -> None:
    doc = good_doc()
    doc.update(change)
    with pytest.raises(NodePropertiesFormatError, match=message):
        NodeProperties.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
        ('{"read_at": NaN}', "NaN is not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (" " * (MAX_JSON_CHARS + 1), "larger than"),
    ],
)
def test_from_json_rejects_bad_documents(text: Any, message: str) -> None:
    with pytest.raises(NodePropertiesFormatError, match=message):
        NodeProperties.from_json(text)


def test_from_json_reports_missing_fields() -> None:
    doc = good_doc()
    del doc["read_at"]
    with pytest.raises(NodePropertiesFormatError, match=r"missing field.*read_at"):
        NodeProperties.from_json(json.dumps(doc))


def test_from_json_drops_secrets_a_peer_sent() -> None:
    doc = good_doc()
    doc["properties"]["db.password"] = "oops"
    doc["properties"]["data.dir"] = "/esg/data"
    node = NodeProperties.from_json(json.dumps(doc))
    assert "db.password" not in node.properties
    assert "data.dir" not in node.properties


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda k: "=" not in k),
        st.text(max_size=40),
        max_size=10,
    )
)
def test_json_round_trip_any_properties(props: Dict[str, str]) -> None:
    node = NodeProperties(HOST, props, ("data",), NOW)
    assert NodeProperties.from_json(node.to_json()) == node
