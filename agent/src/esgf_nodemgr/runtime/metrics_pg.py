"""Metrics from the node's ESGF PostgreSQL database (``esgcet``).

What is counted (as the prototype's metrics thread did):

- idp nodes: registered users = distinct (firstname, middlename, lastname) in
  ``esgf_security."user"``;
- data nodes, from ``esgf_node_manager.access_logging``: ``download.users`` = distinct
  ``user_id``; ``download.count`` = rows whose whole file was sent (``data_size = xfer_size``);
  ``download.bytes`` = sum of ``xfer_size`` over those rows with ``xfer_size > 0``.

A node that is both gets both. Operational database trouble (server down, bad credentials,
missing tables, timeouts) never raises: the snapshot says ``available: false`` with a reason,
and one WARNING line is logged. psycopg2 is imported only when a collection runs, so the agent
works without it when metrics are disabled. The database password is read from a file at each
collection and is never logged.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

logger = logging.getLogger(__name__)

DEFAULT_DBNAME = "esgcet"
DEFAULT_USER = "dbsuper"  # the role the ESGF installer creates for its own services
MAX_CONNECT_TIMEOUT_S = 60
MAX_STATEMENT_TIMEOUT_MS = 10 * 60 * 1000
MAX_PASSWORD_FILE_BYTES = 4096
MAX_REASON_CHARS = 500
MAX_JSON_CHARS = 4096
# Largest value a PostgreSQL bigint (and a sum of them we accept) can take.
_MAX_COUNT = 2**63 - 1

REGISTERED_USERS_SQL = (
    'SELECT count(DISTINCT (firstname, middlename, lastname)) FROM esgf_security."user"'
)
DOWNLOADS_SQL = (
    "SELECT count(DISTINCT user_id),"
    " count(*) FILTER (WHERE data_size = xfer_size),"
    " coalesce(sum(xfer_size) FILTER (WHERE data_size = xfer_size AND xfer_size > 0), 0)"
    " FROM esgf_node_manager.access_logging"
)


class MetricsFormatError(ValueError):
    """A ``metrics.json`` document (usually from another node) is malformed."""


@dataclass(frozen=True)
class PgSettings:
    """How to reach the node's database.

    ``host`` is a hostname or, when it starts with ``/``, the directory of the server's Unix
    socket. ``password_file`` holds the password on its first line (ESGF keeps it in
    ``/esg/config/.esg_pg_pass``); ``None`` connects without one.
    """

    host: str
    port: int = 5432
    dbname: str = DEFAULT_DBNAME
    user: str = DEFAULT_USER
    password_file: Optional[Path] = None
    connect_timeout_s: int = 5
    statement_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host: must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not in 1..65535")
        if not self.dbname or not self.user:
            raise ValueError("dbname and user must not be empty")
        # Bounded so that a collection can never hang the agent's metrics thread for long.
        if not 1 <= self.connect_timeout_s <= MAX_CONNECT_TIMEOUT_S:
            raise ValueError(f"connect_timeout_s: must be in 1..{MAX_CONNECT_TIMEOUT_S}")
        if not 1 <= self.statement_timeout_ms <= MAX_STATEMENT_TIMEOUT_MS:
            raise ValueError(f"statement_timeout_ms: must be in 1..{MAX_STATEMENT_TIMEOUT_MS}")

    def describe(self) -> str:
        """Where we connect, for messages (never includes the password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class DownloadMetrics:
    """Download counters of a data node."""

    count: int
    bytes: int
    users: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """One collection's result; ``registered_users``/``download`` are None when not applicable."""

    collected_at: float
    available: bool
    reason: str = ""
    registered_users: Optional[int] = None
    download: Optional[DownloadMetrics] = None

    def to_dict(self) -> Dict[str, Any]:
        """The ``metrics.json`` document."""
        download: Optional[Dict[str, int]] = None
        if self.download is not None:
            download = {
                "count": self.download.count,
                "bytes": self.download.bytes,
                "users": self.download.users,
            }
        return {
            "available": self.available,
            "reason": self.reason,
            "collected_at": self.collected_at,
            "registered_users": self.registered_users,
            "download": download,
        }

    def to_json(self) -> str:
        """Serialise to JSON text (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, obj: Any) -> MetricsSnapshot:
        """Build from a parsed ``metrics.json`` document; raises :class:`MetricsFormatError`."""
        if not isinstance(obj, dict):
            raise MetricsFormatError("metrics must be a JSON object")
        expected = {"available", "reason", "collected_at", "registered_users", "download"}
        if set(obj) != expected:
            extra = sorted(set(obj) - expected)
            missing = sorted(expected - set(obj))
            raise MetricsFormatError(f"fields: unknown {extra}, missing {missing}")
        if not isinstance(obj["available"], bool):
            raise MetricsFormatError("available: expected true or false")
        reason = obj["reason"]
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise MetricsFormatError(f"reason: expected a string of at most {MAX_REASON_CHARS}")
        collected_at = obj["collected_at"]
        if (
            type(collected_at) not in (int, float)
            or not math.isfinite(collected_at)
            or collected_at < 0
        ):
            raise MetricsFormatError("collected_at: expected a non-negative finite number")
        registered = obj["registered_users"]
        if registered is not None:
            registered = _check_count("registered_users", registered)
        download: Optional[DownloadMetrics] = None
        if obj["download"] is not None:
            raw = obj["download"]
            if not isinstance(raw, dict) or set(raw) != {"count", "bytes", "users"}:
                raise MetricsFormatError("download: expected {count, bytes, users}")
            download = DownloadMetrics(
                count=_check_count("download.count", raw["count"]),
                bytes=_check_count("download.bytes", raw["bytes"]),
                users=_check_count("download.users", raw["users"]),
            )
        return cls(
            collected_at=float(collected_at),
            available=obj["available"],
            reason=reason,
            registered_users=registered,
            download=download,
        )

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> MetricsSnapshot:
        """Parse ``metrics.json`` text from another node (size-bounded, strict)."""
        if len(text) > MAX_JSON_CHARS:
            raise MetricsFormatError(f"metrics document larger than {MAX_JSON_CHARS} characters")
        try:
            obj = json.loads(text)
        except ValueError as exc:  # also covers UnicodeDecodeError on bytes
            raise MetricsFormatError(f"not valid JSON: {exc}") from None
        return cls.from_dict(obj)


def _check_count(name: str, value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise MetricsFormatError(f"{name}: expected a non-negative integer")
    return value


class _Unavailable(Exception):
    """Internal: why a collection could not complete (the message is the reason)."""


def _one_line(exc: BaseException) -> str:
    # psycopg2 messages span lines ("FATAL: …\nDETAIL: …"); keep log lines single.
    text = " ".join(str(exc).split())
    return text[:MAX_REASON_CHARS] or type(exc).__name__


def _read_password(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as exc:
        raise _Unavailable(
            f"cannot read database password file {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise _Unavailable(f"database password file {path} is too large")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise _Unavailable(f"database password file {path} is not UTF-8") from None
    return lines[0] if lines else ""


def _as_int(value: Any) -> int:
    # sum(bigint) comes back as Decimal; counts as int; coalesce makes None impossible.
    if isinstance(value, (int, Decimal)):
        return int(value)
    raise _Unavailable(f"unexpected value from database: {type(value).__name__}")


def _collect(
    settings: PgSettings, node_types: Sequence[str], collected_at: float
) -> MetricsSnapshot:
    wants_users = "idp" in node_types
    wants_downloads = "data" in node_types
    if not (wants_users or wants_downloads):
        return MetricsSnapshot(
            collected_at=collected_at,
            available=False,
            reason="no metrics for a node that is neither data nor idp",
        )
    try:
        # Imported here: psycopg2 is optional and only needed when metrics are enabled.
        import psycopg2
    except ImportError:
        return MetricsSnapshot(
            collected_at=collected_at,
            available=False,
            reason="psycopg2 is not installed (pip install 'esgf-nodemgr-agent[metrics]')",
        )
    try:
        kwargs: Dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "dbname": settings.dbname,
            "user": settings.user,
            "connect_timeout": settings.connect_timeout_s,
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "application_name": "esgf-nm-metrics",
        }
        if settings.password_file is not None:
            kwargs["password"] = _read_password(settings.password_file)
        registered: Optional[int] = None
        download: Optional[DownloadMetrics] = None
        try:
            conn = psycopg2.connect(**kwargs)
        except psycopg2.Error as exc:
            raise _Unavailable(
                f"cannot connect to {settings.describe()}: {_one_line(exc)}"
            ) from None
        try:
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                if wants_users:
                    cur.execute(REGISTERED_USERS_SQL)
                    registered = _as_int(cur.fetchone()[0])
                if wants_downloads:
                    cur.execute(DOWNLOADS_SQL)
                    users, count, total = cur.fetchone()
                    download = DownloadMetrics(
                        count=_as_int(count), bytes=_as_int(total), users=_as_int(users)
                    )
            conn.rollback()
        except psycopg2.Error as exc:
            raise _Unavailable(f"query failed on {settings.describe()}: {_one_line(exc)}") from None
        finally:
            conn.close()
    except _Unavailable as exc:
        return MetricsSnapshot(collected_at=collected_at, available=False, reason=str(exc))
    return MetricsSnapshot(
        collected_at=collected_at,
        available=True,
        registered_users=registered,
        download=download,
    )


def collect_metrics(
    settings: PgSettings, node_types: Sequence[str], collected_at: float
) -> MetricsSnapshot:
    """Collect the metrics that apply to ``node_types`` (``idp`` and/or ``data``).

    Never raises for database trouble: the snapshot is unavailable with a reason and one
    WARNING is logged. A node that is neither idp nor data gets an unavailable snapshot
    without a warning (there is nothing to collect).
    """
    snapshot = _collect(settings, node_types, collected_at)
    if not snapshot.available and _applies(node_types):
        logger.warning("metrics unavailable: %s", snapshot.reason)
    return snapshot


def _applies(node_types: Sequence[str]) -> bool:
    return "idp" in node_types or "data" in node_types


class MetricsCollector:
    """Holds the latest snapshot for the runtime, which calls :meth:`collect` on its interval.

    Logs a WARNING when collections start failing or fail for a new reason, DEBUG when they
    keep failing the same way (so a database down for a day does not flood the log), and INFO
    when they recover.
    """

    def __init__(self, settings: PgSettings, node_types: Sequence[str]) -> None:
        self._settings = settings
        self._node_types = tuple(node_types)
        self._last: Optional[MetricsSnapshot] = None

    @property
    def last(self) -> Optional[MetricsSnapshot]:
        """The most recent snapshot, or None before the first collection."""
        return self._last

    def collect(self, now: float) -> MetricsSnapshot:
        """Run one collection at time ``now`` (seconds since the epoch) and keep its result."""
        snapshot = _collect(self._settings, self._node_types, now)
        previous = self._last
        if _applies(self._node_types):
            if not snapshot.available:
                if previous is not None and previous.reason == snapshot.reason:
                    logger.debug("metrics still unavailable: %s", snapshot.reason)
                else:
                    logger.warning("metrics unavailable: %s", snapshot.reason)
            elif previous is not None and not previous.available:
                logger.info("metrics available again from %s", self._settings.describe())
        self._last = snapshot
        return snapshot
