"""Read the node's own ESGF files: ``esgf.properties`` and ``config_type``.

The result is a :class:`NodeProperties` value: what this node tells the federation about itself
(served as ``node-props.json`` and used by supernodes to write ``registration.xml``).

Rules kept here:

- ``esgf.properties`` is parsed like a Java properties file, strictly: a line that is not a
  comment, a blank line, an ini-style ``[section]`` header (the ESGF Python installer writes
  one) or ``key = value`` / ``key: value`` is an error that names its line number.
- What is shared is filtered: values that are absolute filesystem paths and keys that look like
  secrets never leave the node (see :func:`shareable_properties`).
- ``config_type`` is a decimal bit mask (4 data, 8 index, 16 idp, 32 compute); other bits, which
  the ESGF installer uses for its own purposes, are ignored.
- No clock calls: the caller passes ``read_at`` and, to judge freshness, ``now``.
- Properties received from other nodes go through :meth:`NodeProperties.from_json`, which checks
  types and bounds sizes: it is parsing untrusted input.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

logger = logging.getLogger(__name__)

DEFAULT_PROPERTIES_PATH = Path("/esg/config/esgf.properties")
DEFAULT_CONFIG_TYPE_PATH = Path("/esg/config/config_type")

# config_type bits, as the ESGF installer defines them.
NODE_TYPE_BITS: Mapping[str, int] = MappingProxyType(
    {"data": 4, "index": 8, "idp": 16, "compute": 32}
)
NODE_TYPE_NAMES: Tuple[str, ...] = tuple(sorted(NODE_TYPE_BITS))

# Limits. Real esgf.properties files are a few KiB; anything far larger is not one.
MAX_PROPERTIES_FILE_BYTES = 1024 * 1024
MAX_CONFIG_TYPE_FILE_BYTES = 64
MAX_CONFIG_TYPE_VALUE = 2**31 - 1
# Limits on what another node may send us (node-props.json).
MAX_JSON_CHARS = 256 * 1024
MAX_PROPERTIES = 1024
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 4096
MAX_REASON_CHARS = 1024
MAX_HOSTNAME_CHARS = 253
JSON_FORMAT = 1

# Key fragments that mark a secret. esgf.properties holds database and keystore passwords,
# tokens and private-key locations next to harmless settings, and node-props.json is served to
# every node of the federation (and registration.xml to anyone), so anything that smells like a
# credential is dropped, even at the cost of dropping a harmless key now and then.
SECRET_KEY_FRAGMENTS: Tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "private",
    "credential",
    "apikey",
    "api_key",
)

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_SECTION_RE = re.compile(r"^\[[^\]]*\]$")
# C0 controls other than tab and form feed (Java whitespace), and DEL: never part of a real
# properties file.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a\x0b\x0d-\x1f\x7f]")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_OPENSSL_DN_RE = re.compile(r"^(?:/[A-Za-z][A-Za-z0-9.]*=[^/]*)+$")


class NodeStatus(str, enum.Enum):
    """Health of a node's properties, as the prototype reported it."""

    GOOD = "GOOD"
    LAPSED = "LAPSED"  # properties older than the freshness threshold
    ISSUE = "ISSUE"  # the node's files were unreadable or invalid


class EsgfFilesError(Exception):
    """Base class of the errors raised while reading the node's ESGF files."""


class PropertiesSyntaxError(EsgfFilesError):
    """A line of ``esgf.properties`` that cannot be parsed; ``line`` is 1-based."""

    def __init__(self, line: int, message: str, path: Optional[Path] = None) -> None:
        where = f"{path}:{line}" if path is not None else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.path = path


class ConfigTypeError(EsgfFilesError):
    """``config_type`` does not hold a valid node-type bit mask."""


class NodePropertiesFormatError(ValueError):
    """A ``node-props.json`` document (usually from another node) is malformed."""


# --------------------------------------------------------------------------------------------
# esgf.properties


def _logical_lines(text: str) -> Iterable[Tuple[int, str]]:
    """Yield ``(first physical line number, logical line)``, joining continuation lines."""
    parts: List[str] = []
    start = 0
    # Only CR/LF end lines: str.splitlines() would also split on form feeds and other
    # characters that Java treats as ordinary whitespace or content.
    for number, raw in enumerate(_LINE_BREAK_RE.split(text), start=1):
        line = raw.lstrip(" \t\f") if parts else raw
        if not parts:
            start = number
            stripped = line.lstrip(" \t\f")
            # Comments never continue, whatever they end with (as in Java).
            if not stripped or stripped[0] in "#!":
                yield number, stripped
                continue
        # An odd number of trailing backslashes continues the line; an even number is
        # escaped backslashes.
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, "".join(parts)
        parts = []
    if parts:  # a continuation on the last line: keep what we have, as Java does
        yield start, "".join(parts)


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str, line: int, path: Optional[Path]) -> str:
    out: List[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(text):
            i += 1  # a lone trailing backslash means nothing
            continue
        nxt = text[i + 1]
        if nxt == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise PropertiesSyntaxError(line, f"bad unicode escape \\u{digits!s}", path)
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def _split_key_value(logical: str, line: int, path: Optional[Path]) -> Tuple[str, str]:
    i = 0
    while i < len(logical):
        ch = logical[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=:":
            break
        i += 1
    else:
        raise PropertiesSyntaxError(line, "expected 'key = value' (no '=' or ':' found)", path)
    raw_key = logical[:i].strip(" \t\f")
    raw_value = logical[i + 1 :].strip(" \t\f")
    if not raw_key:
        raise PropertiesSyntaxError(line, "empty key", path)
    if any(c in raw_key for c in " \t\f"):
        raise PropertiesSyntaxError(line, f"key {raw_key[:40]!r} contains whitespace", path)
    return _unescape(raw_key, line, path), _unescape(raw_value, line, path)


def parse_properties(text: str, path: Optional[Path] = None) -> Dict[str, str]:
    """Parse the text of an ``esgf.properties`` file into a dict (later keys win).

    Accepts ``#``/``!`` comments, blank lines, ``[section]`` headers (skipped), whitespace around
    ``=``/``:``, backslash continuations and Java escapes. Raises :class:`PropertiesSyntaxError`
    naming the line of anything else.
    """
    result: Dict[str, str] = {}
    for number, logical in _logical_lines(text):
        stripped = logical.strip(" \t\f")
        if not stripped or stripped[0] in "#!":
            continue
        if _CONTROL_RE.search(logical):
            raise PropertiesSyntaxError(number, "control character in line", path)
        if _SECTION_RE.match(stripped):
            continue
        key, value = _split_key_value(stripped, number, path)
        result[key] = value
    return result


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise EsgfFilesError(f"{path}: larger than {limit} bytes")
    return data


def read_properties_file(path: Path = DEFAULT_PROPERTIES_PATH) -> Dict[str, str]:
    """Read and parse ``esgf.properties``; raises ``OSError`` or :class:`EsgfFilesError`."""
    data = _read_limited(path, MAX_PROPERTIES_FILE_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Java reads .properties files as ISO-8859-1; old nodes wrote them that way.
        text = data.decode("latin-1")
    return parse_properties(text, path)


def is_secret_key(key: str) -> bool:
    """True when ``key`` looks like it names a secret (see ``SECRET_KEY_FRAGMENTS``)."""
    lowered = key.lower()
    return any(fragment in lowered for fragment in SECRET_KEY_FRAGMENTS)


def is_absolute_path(value: str) -> bool:
    """True when ``value`` is an absolute filesystem path: ``/…``, or ``~…`` (expands to one).

    OpenSSL-style distinguished names (``/O=ESGF/OU=ESGF.ORG/CN=host``) start with ``/`` too,
    but every segment is an ``ATTR=value`` pair; they are identities, not paths, and
    registration.xml needs them.
    """
    stripped = value.strip()
    if stripped.startswith("~"):
        return True
    return stripped.startswith("/") and not _OPENSSL_DN_RE.match(stripped)


def shareable_properties(properties: Mapping[str, str]) -> Dict[str, str]:
    """The subset of ``properties`` that may leave the node.

    Absolute paths are dropped because they describe the node's private layout and are useless
    to other nodes; secret-looking keys are dropped because the result is published.
    """
    return {
        key: value
        for key, value in properties.items()
        if not is_secret_key(key) and not is_absolute_path(value)
    }


# --------------------------------------------------------------------------------------------
# config_type


def decode_config_type(text: str) -> List[str]:
    """Decode the ``config_type`` bit mask into sorted node type names.

    Bits other than data/index/idp/compute are ignored (the installer keeps its own flags
    there). Raises :class:`ConfigTypeError` when the content is not one non-negative integer.
    """
    stripped = text.strip()
    if not stripped:
        raise ConfigTypeError("config_type is empty (expected an integer bit mask, e.g. 28)")
    if not stripped.isdigit() or not stripped.isascii():
        shown = stripped[:40]
        raise ConfigTypeError(
            f"config_type holds {shown!r}, expected a non-negative integer bit mask"
        )
    mask = int(stripped)
    if mask > MAX_CONFIG_TYPE_VALUE:
        raise ConfigTypeError(f"config_type value {mask} is out of range")
    return sorted(name for name, bit in NODE_TYPE_BITS.items() if mask & bit)


def encode_node_types(node_types: Iterable[str]) -> int:
    """The ``config_type`` bit mask of ``node_types`` (unknown names raise ``ValueError``)."""
    mask = 0
    for name in node_types:
        if name not in NODE_TYPE_BITS:
            raise ValueError(f"unknown node type {name!r}")
        mask |= NODE_TYPE_BITS[name]
    return mask


def read_config_type_file(path: Path = DEFAULT_CONFIG_TYPE_PATH) -> List[str]:
    """Read and decode ``config_type``; raises ``OSError`` or :class:`EsgfFilesError`."""
    data = _read_limited(path, MAX_CONFIG_TYPE_FILE_BYTES)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigTypeError(f"{path}: not ASCII text") from None
    try:
        return decode_config_type(text)
    except ConfigTypeError as exc:
        raise ConfigTypeError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------------
# NodeProperties


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True)
class NodeProperties:
    """What a node says about itself. Immutable; ``properties`` is already safe to share."""

    hostname: str
    properties: Mapping[str, str] = field(hash=False)
    node_types: Tuple[str, ...]
    read_at: float
    status: NodeStatus = NodeStatus.GOOD
    reason: str = ""

    def __post_init__(self) -> None:
        # Normalise so that equal content gives equal values, and nobody can mutate a shared
        # instance through its dict.
        object.__setattr__(self, "properties", _frozen(shareable_properties(self.properties)))
        object.__setattr__(self, "node_types", tuple(sorted(set(self.node_types))))

    @property
    def config_type(self) -> int:
        """The node types as a ``config_type`` bit mask."""
        return encode_node_types(self.node_types)

    def evaluate(self, now: float, max_age: float) -> NodeProperties:
        """A copy whose status says whether these properties are still fresh at ``now``.

        ``ISSUE`` stays ``ISSUE``; otherwise properties read more than ``max_age`` seconds
        before ``now`` are ``LAPSED``, else ``GOOD``.
        """
        if self.status is NodeStatus.ISSUE:
            return self
        status = NodeStatus.LAPSED if now - self.read_at > max_age else NodeStatus.GOOD
        return self if status is self.status else replace(self, status=status)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (the ``node-props.json`` document)."""
        return {
            "format": JSON_FORMAT,
            "hostname": self.hostname,
            "status": self.status.value,
            "reason": self.reason,
            "read_at": self.read_at,
            "node_types": list(self.node_types),
            "properties": dict(self.properties),
        }

    def to_json(self) -> str:
        """Serialise to JSON text (keys sorted, so equal values give equal text)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    def to_legacy_dict(self) -> Dict[str, str]:
        """The prototype's flat shape: properties plus timestamp (ms), node.type and status."""
        legacy = dict(self.properties)
        legacy["timestamp"] = str(int(self.read_at * 1000))
        legacy["node.type"] = str(self.config_type)
        legacy["status"] = self.status.value
        return legacy

    @classmethod
    def from_dict(cls, obj: Any) -> NodeProperties:
        """Build from a parsed ``node-props.json`` document, checking every field.

        Raises :class:`NodePropertiesFormatError` naming the offending field.
        """
        if not isinstance(obj, dict):
            raise NodePropertiesFormatError("node properties must be a JSON object")
        expected = {"format", "hostname", "status", "reason", "read_at", "node_types", "properties"}
        unknown = sorted(set(obj) - expected)
        if unknown:
            raise NodePropertiesFormatError(f"unknown field(s): {', '.join(unknown[:10])}")
        missing = sorted(expected - set(obj))
        if missing:
            raise NodePropertiesFormatError(f"missing field(s): {', '.join(missing)}")
        if type(obj["format"]) is not int or obj["format"] != JSON_FORMAT:
            raise NodePropertiesFormatError(f"format: expected {JSON_FORMAT}")
        hostname = _check_hostname(obj["hostname"])
        status_text = obj["status"]
        if not isinstance(status_text, str) or status_text not in NodeStatus.__members__:
            raise NodePropertiesFormatError(
                f"status: expected one of {', '.join(NodeStatus.__members__)}"
            )
        reason = _check_str("reason", obj["reason"], MAX_REASON_CHARS)
        read_at = obj["read_at"]
        if type(read_at) not in (int, float) or not math.isfinite(read_at) or read_at < 0:
            raise NodePropertiesFormatError("read_at: expected a non-negative finite number")
        node_types = _check_node_types(obj["node_types"])
        properties = _check_properties(obj["properties"])
        return cls(
            hostname=hostname,
            properties=properties,
            node_types=node_types,
            read_at=float(read_at),
            status=NodeStatus(status_text),
            reason=reason,
        )

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> NodeProperties:
        """Parse ``node-props.json`` text from another node (size-bounded, strict)."""
        if len(text) > MAX_JSON_CHARS:
            raise NodePropertiesFormatError(
                f"node properties document larger than {MAX_JSON_CHARS} characters"
            )
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NodePropertiesFormatError(f"not UTF-8: {exc.reason}") from None
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise NodePropertiesFormatError(f"not valid JSON: {exc}") from None
        return cls.from_dict(obj)


def _reject_constant(name: str) -> Any:
    raise NodePropertiesFormatError(f"not valid JSON: {name} is not allowed")


def _check_str(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise NodePropertiesFormatError(f"{name}: expected a string")
    if len(value) > limit:
        raise NodePropertiesFormatError(f"{name}: longer than {limit} characters")
    return value


def _check_hostname(value: Any) -> str:
    hostname = _check_str("hostname", value, MAX_HOSTNAME_CHARS)
    if not _HOSTNAME_RE.match(hostname):
        raise NodePropertiesFormatError(f"hostname: {hostname[:60]!r} is not a valid hostname")
    return hostname


def _check_node_types(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list):
        raise NodePropertiesFormatError("node_types: expected a list")
    if len(value) > len(NODE_TYPE_NAMES):
        raise NodePropertiesFormatError("node_types: too many entries")
    for item in value:
        if not isinstance(item, str) or item not in NODE_TYPE_BITS:
            raise NodePropertiesFormatError(
                f"node_types: expected names among {', '.join(NODE_TYPE_NAMES)}"
            )
    if len(set(value)) != len(value):
        raise NodePropertiesFormatError("node_types: duplicate entries")
    return tuple(sorted(value))


def _check_properties(value: Any) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise NodePropertiesFormatError("properties: expected an object")
    if len(value) > MAX_PROPERTIES:
        raise NodePropertiesFormatError(f"properties: more than {MAX_PROPERTIES} entries")
    checked: Dict[str, str] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise NodePropertiesFormatError(
                f"properties: key length must be 1..{MAX_KEY_CHARS} characters"
            )
        if not isinstance(item, str):
            raise NodePropertiesFormatError(f"properties[{key[:60]!r}]: expected a string")
        if len(item) > MAX_VALUE_CHARS:
            raise NodePropertiesFormatError(
                f"properties[{key[:60]!r}]: longer than {MAX_VALUE_CHARS} characters"
            )
        checked[key] = item
    # A well-behaved node never sends secrets or paths; NodeProperties drops them anyway.
    return checked


# --------------------------------------------------------------------------------------------
# Reading the node's own files


def read_node_properties(
    hostname: str,
    read_at: float,
    properties_path: Path = DEFAULT_PROPERTIES_PATH,
    config_type_path: Path = DEFAULT_CONFIG_TYPE_PATH,
    agent_properties: Optional[Mapping[str, str]] = None,
) -> NodeProperties:
    """Read this node's ESGF files into a :class:`NodeProperties` (never raises for bad files).

    ``hostname`` comes from the agent's config (it is the node's identity in the federation,
    whatever ``esgf.host`` says). ``agent_properties`` (e.g. ``version``, ``release``) are added
    on top of the file's values. Absent files are normal on a node without an ESGF install:
    the result is GOOD with a reason naming what was absent. Unreadable or invalid files give
    ISSUE with the error in ``reason``, and only the agent-provided properties.
    """
    if not _HOSTNAME_RE.match(hostname):
        raise ValueError(f"hostname {hostname!r} is not a valid hostname")
    base: Dict[str, str] = {"esgf.host": hostname}
    base.update(agent_properties or {})
    absent: List[str] = []
    file_properties: Dict[str, str] = {}
    node_types: List[str] = []
    try:
        try:
            file_properties = read_properties_file(properties_path)
        except FileNotFoundError:
            absent.append(str(properties_path))
        try:
            node_types = read_config_type_file(config_type_path)
        except FileNotFoundError:
            absent.append(str(config_type_path))
    except (OSError, EsgfFilesError) as exc:
        reason = _describe_error(exc)
        logger.warning("node properties: %s", reason)
        return NodeProperties(
            hostname=hostname,
            properties=base,
            node_types=(),
            read_at=read_at,
            status=NodeStatus.ISSUE,
            reason=reason,
        )
    merged = dict(file_properties)
    if "esgf.host" not in merged:
        merged["esgf.host"] = hostname
    merged.update(agent_properties or {})
    reason = f"absent: {', '.join(absent)}" if absent else ""
    return NodeProperties(
        hostname=hostname,
        properties=merged,
        node_types=tuple(node_types),
        read_at=read_at,
        status=NodeStatus.GOOD,
        reason=reason,
    )


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"cannot read {exc.filename}: {exc.strerror or exc}"
    else:
        text = str(exc)
    return text[:MAX_REASON_CHARS]
