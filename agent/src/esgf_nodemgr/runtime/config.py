"""The agent's configuration: one YAML file, validated once at start, immutable afterwards.

Every problem is reported with its key path (``federation.round_s: must be > 0``) and nothing
starts until the file is valid (``esgf-nm config check FILE``). Every path, address, port and
interval is configurable so that several agents can run on one machine.

Example (all keys; only ``node.hostname``, ``node.role`` and ``tls`` are required)::

    node:
      hostname: sn1.example.org     # the name in the roster and in the node's certificate
      role: supernode               # supernode | member
      listen: 0.0.0.0               # address the HTTPS server binds
      port: 7443
      advertise: sn1.example.org    # address others use to reach it (members: sent on join)
    federation:
      map: /etc/esgf-nm/map.json    # initial map (roster) installed at first start
      round_s: 2.0
      probe_timeout_s: 1.0
      skew_s: 1.0
      down_after: 2
      up_after: 2
    tls: {cert: ..., key: ..., ca: ...}
    paths:
      state_dir: /var/lib/esgf-nm
      admin_socket: /run/esgf-nm/admin.sock
      registration_xml: /var/lib/esgf-nm/registration.xml
      legacy_map: null               # also write the prototype's map format here
      esgf_properties: /esg/config/esgf.properties
      config_type: /esg/config/config_type
    properties: {refresh_s: 60, max_age_s: 600}
    metrics:
      enabled: false
      interval_s: 240
      db: {host: /var/run/postgresql, port: 5432, dbname: esgcet, user: dbsuper,
           password_file: null}
    http: {max_body: 1048576, max_connections: 64, workers: 16,
           metrics_auth: public}        # /metrics: public | node (client certificate needed)
    logging: {level: INFO}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from esgf_nodemgr.core.config import CoreConfig
from esgf_nodemgr.core.parse import Reader


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` names each bad key."""

    def __init__(self, problems: List[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class TLSFiles:
    cert: str
    key: str
    ca: str


@dataclass(frozen=True)
class DBSettings:
    host: str = "/var/run/postgresql"
    port: int = 5432
    dbname: str = "esgcet"
    user: str = "dbsuper"
    password_file: Optional[str] = None


@dataclass(frozen=True)
class AgentConfig:
    hostname: str
    role: str
    listen: str
    port: int
    advertise: str
    tls: TLSFiles
    core: CoreConfig
    initial_map: Optional[str]
    state_dir: str
    admin_socket: str
    registration_xml: str
    legacy_map: Optional[str]
    esgf_properties: str
    config_type: str
    properties_refresh_s: float
    properties_max_age_s: float
    metrics_enabled: bool
    metrics_interval_s: float
    db: DBSettings
    max_body: int
    max_connections: int
    workers: int
    log_level: str
    tick_s: float
    source: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Who may read ``/metrics``: ``public`` (scrapers without a client certificate) or
    #: ``node`` (a certificate from the federation CA).
    metrics_auth: str = "public"

    @property
    def db_path(self) -> str:
        return str(Path(self.state_dir) / "state.db")


_SECTIONS: Dict[str, Tuple[str, ...]] = {
    "node": ("hostname", "role", "listen", "port", "advertise"),
    "federation": ("map", "round_s", "probe_timeout_s", "skew_s", "down_after", "up_after",
                   "member_down_after", "reply_timeout_s", "retry_s", "orphan_rounds",
                   "tick_s"),
    "tls": ("cert", "key", "ca"),
    "paths": ("state_dir", "admin_socket", "registration_xml", "legacy_map",
              "esgf_properties", "config_type"),
    "properties": ("refresh_s", "max_age_s"),
    "metrics": ("enabled", "interval_s", "db"),
    "http": ("max_body", "max_connections", "workers", "metrics_auth"),
    "logging": ("level",),
}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _section(r: Reader, doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if value is None:
        value = {}
    sec = r.obj(value, name)
    for key in sec:
        if key not in _SECTIONS[name]:
            r.problem(f"{name}.{key}", f"unknown key (known: {', '.join(_SECTIONS[name])})")
    return sec


def _path(r: Reader, sec: Mapping[str, Any], where: str, key: str, default: Optional[str]
          ) -> Optional[str]:
    value = sec.get(key, default)
    if value is None:
        return None
    text = r.string(value, f"{where}.{key}", max_len=4096)
    if text and not text.startswith("/"):
        r.problem(f"{where}.{key}", f"must be an absolute path, got {text!r}")
    return text


def _positive(r: Reader, sec: Mapping[str, Any], where: str, key: str, default: float) -> float:
    value = r.number(sec.get(key, default), f"{where}.{key}")
    if value <= 0:
        r.problem(f"{where}.{key}", f"must be > 0, got {value}")
    return value


def _count(r: Reader, sec: Mapping[str, Any], where: str, key: str, default: int,
           maximum: int = 1 << 30) -> int:
    return r.integer(sec.get(key, default), f"{where}.{key}", minimum=1, maximum=maximum)


def parse_config(doc: Any, source: Optional[str] = None) -> AgentConfig:
    """Validate a decoded YAML document; raise ``ConfigError`` listing every problem."""
    r = Reader()
    top = r.obj(doc, "config")
    for key in top:
        if key not in _SECTIONS:
            r.problem(key, f"unknown section (known: {', '.join(_SECTIONS)})")
    node = _section(r, top, "node")
    fed = _section(r, top, "federation")
    tls = _section(r, top, "tls")
    paths = _section(r, top, "paths")
    props = _section(r, top, "properties")
    metrics = _section(r, top, "metrics")
    http = _section(r, top, "http")
    logging_ = _section(r, top, "logging")

    if "hostname" not in node:
        r.problem("node.hostname", "is required")
    hostname = r.string(node.get("hostname", ""), "node.hostname", allow_empty=True)
    role = r.choice(node.get("role", "supernode"), "node.role", ("supernode", "member"))
    listen = r.string(node.get("listen", "0.0.0.0"), "node.listen")
    port = r.integer(node.get("port", 7443), "node.port", minimum=0, maximum=65535)
    advertise = r.string(node.get("advertise", hostname or "localhost"), "node.advertise")

    tls_files = TLSFiles(
        cert=_path(r, tls, "tls", "cert", None) or "",
        key=_path(r, tls, "tls", "key", None) or "",
        ca=_path(r, tls, "tls", "ca", None) or "",
    )
    for key in ("cert", "key", "ca"):
        if key not in tls:
            r.problem(f"tls.{key}", "is required")

    core: Optional[CoreConfig] = None
    core_values = {
        "round_s": _positive(r, fed, "federation", "round_s", 2.0),
        "probe_timeout_s": _positive(r, fed, "federation", "probe_timeout_s", 1.0),
        "skew_s": r.number(fed.get("skew_s", 1.0), "federation.skew_s", minimum=0),
        "down_after": _count(r, fed, "federation", "down_after", 2, 100),
        "up_after": _count(r, fed, "federation", "up_after", 2, 100),
        "member_down_after": _count(r, fed, "federation", "member_down_after", 3, 100),
        "reply_timeout_s": _positive(r, fed, "federation", "reply_timeout_s", 5.0),
        "retry_s": _positive(r, fed, "federation", "retry_s", 2.0),
        "orphan_rounds": _count(r, fed, "federation", "orphan_rounds", 10, 10_000),
    }
    tick_s = _positive(r, fed, "federation", "tick_s", 0.2)
    if not r.problems:
        try:
            core = CoreConfig(**core_values)  # type: ignore[arg-type]
        except ValueError as exc:
            r.problem("federation", str(exc))

    state_dir = _path(r, paths, "paths", "state_dir", "/var/lib/esgf-nm") or ""
    db = metrics.get("db", {}) or {}
    dbo = r.obj(db, "metrics.db")
    for key in dbo:
        if key not in ("host", "port", "dbname", "user", "password_file"):
            r.problem(f"metrics.db.{key}", "unknown key")
    db_settings = DBSettings(
        host=r.string(dbo.get("host", "/var/run/postgresql"), "metrics.db.host"),
        port=r.integer(dbo.get("port", 5432), "metrics.db.port", minimum=1, maximum=65535),
        dbname=r.string(dbo.get("dbname", "esgcet"), "metrics.db.dbname"),
        user=r.string(dbo.get("user", "dbsuper"), "metrics.db.user"),
        password_file=_path(r, dbo, "metrics.db", "password_file", None),
    )
    level = r.choice(str(logging_.get("level", "INFO")).upper(), "logging.level", _LEVELS)
    cfg_values: Dict[str, Any] = dict(
        hostname=hostname, role=role, listen=listen, port=port, advertise=advertise,
        tls=tls_files, initial_map=_path(r, fed, "federation", "map", None),
        state_dir=state_dir,
        admin_socket=_path(r, paths, "paths", "admin_socket",
                           str(Path(state_dir or "/var/lib/esgf-nm") / "admin.sock")) or "",
        registration_xml=_path(r, paths, "paths", "registration_xml",
                               str(Path(state_dir or "/var/lib/esgf-nm") / "registration.xml"))
        or "",
        legacy_map=_path(r, paths, "paths", "legacy_map", None),
        esgf_properties=_path(r, paths, "paths", "esgf_properties",
                              "/esg/config/esgf.properties") or "",
        config_type=_path(r, paths, "paths", "config_type", "/esg/config/config_type") or "",
        properties_refresh_s=_positive(r, props, "properties", "refresh_s", 60.0),
        properties_max_age_s=_positive(r, props, "properties", "max_age_s", 600.0),
        metrics_enabled=r.boolean(metrics.get("enabled", False), "metrics.enabled"),
        metrics_interval_s=_positive(r, metrics, "metrics", "interval_s", 240.0),
        db=db_settings,
        max_body=_count(r, http, "http", "max_body", 1 << 20, 64 << 20),
        max_connections=_count(r, http, "http", "max_connections", 64, 10_000),
        workers=_count(r, http, "http", "workers", 16, 256),
        metrics_auth=r.choice(http.get("metrics_auth", "public"), "http.metrics_auth",
                              ("public", "node")),
        log_level=level, tick_s=tick_s, source=source,
    )
    if r.problems or core is None:
        raise ConfigError(r.problems or ["federation: invalid protocol settings"])
    return AgentConfig(core=core, **cfg_values)


def load_config(path: str) -> AgentConfig:
    """Read and validate the YAML file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse_config(doc if doc is not None else {}, source=path)
