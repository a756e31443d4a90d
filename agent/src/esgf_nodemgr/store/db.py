"""The agent's durable state in SQLite.

What is stored:

- **sections**: the protocol state as named JSON objects ("roster", "epoch", "entry/3",
  "report/3", "decision", "timeline", ...). Each value carries its own version inside it; the
  store never interprets values, it only keeps them.
- **journal**: an append-only history of section changes (what changed, which version, who
  originated it, when), pruned to the newest ``journal_retention`` entries.
- **meta**: small JSON values local to this node (epoch, counters) plus the reserved
  ``schema_version`` row.
- **properties**: the node properties received from other nodes, with their arrival time.

Durability contract: the database runs in WAL mode with ``synchronous=FULL``, so when
:meth:`Store.commit` returns, the transaction is in the write-ahead log and fsynced. The
runtime relies on this to "persist before acknowledging": it calls ``commit`` and only then
answers the peer or sends effects. A ``kill -9`` at any moment loses nothing that was committed.

Threading: the store has ONE writer, the agent's single loop, which owns the protocol state.
An internal lock serialises calls so that an occasional read from another thread cannot corrupt
the shared ``sqlite3`` connection, but the class does nothing to order writers: it does not look
at versions, so two threads committing concurrently could store an older section over a newer
one. Ordering comes from the loop (read snapshot, decide, commit), not from here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sqlite3
import threading
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

logger = logging.getLogger(__name__)

#: The schema this code writes. Bump it together with a migration in ``_migrate``.
SCHEMA_VERSION = 1

#: Default number of journal entries kept; older ones are pruned inside ``commit``.
DEFAULT_JOURNAL_RETENTION = 10000
#: Upper bound on one ``journal()`` page, so a caller cannot ask for the whole history at once.
MAX_JOURNAL_PAGE = 10000
#: Limits on names and free text; values are bounded by the HTTP body limits upstream.
MAX_NAME_CHARS = 256
MAX_SUMMARY_CHARS = 2000
#: How long to wait for a lock held by another connection (e.g. an operator's sqlite3 shell).
BUSY_TIMEOUT_S = 5.0

_SCHEMA_KEY = "schema_version"

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS meta ( key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sections ( name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # AUTOINCREMENT: sequence numbers are never reused after pruning, so a reader's
    # "after_seq" cursor stays meaningful forever.
    "CREATE TABLE IF NOT EXISTS journal ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " section TEXT NOT NULL, version TEXT NOT NULL, origin TEXT NOT NULL,"
    " summary TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS properties ("
    " hostname TEXT PRIMARY KEY, props TEXT NOT NULL, received_at REAL NOT NULL)",
)

PathLike = Union[str, "os.PathLike[str]"]


class StoreError(Exception):
    """Base class of every error raised by the store."""


class StoreCorruptError(StoreError):
    """The database file is not a readable SQLite database or fails its integrity check."""


class StoreSchemaError(StoreError):
    """The database was written with a schema this agent does not know."""


class StoreIOError(StoreError):
    """The database could not be opened, read or written (permissions, disk full, locked)."""


class StoreClosedError(StoreError):
    """The store was used after :meth:`Store.close`."""


class InvalidValueError(StoreError, ValueError):
    """A caller passed a value the store cannot keep (not JSON, wrong type, too long)."""


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise InvalidValueError(
            f"{kind} must be a non-empty string of at most {MAX_NAME_CHARS} characters,"
            f" got {name!r:.80}"
        )
    return name


def _check_time(kind: str, value: object) -> float:
    # bool is an int subclass; a True timestamp is always a bug.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValueError(f"{kind} must be a finite number, got {value!r:.80}")
    return float(value)


def _dumps(what: str, value: Any) -> str:
    try:
        # Canonical form: equal values give equal text, which keeps diffs and tests stable.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{what} is not JSON-serialisable: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One line of history: ``section`` changed to ``version``, originated by ``origin``.

    ``at`` is the caller's timestamp (seconds); the store has no clock of its own.
    """

    section: str
    version: Any
    origin: str
    summary: str
    at: float

    def __post_init__(self) -> None:
        _check_name("journal section", self.section)
        _check_name("journal origin", self.origin)
        if not isinstance(self.summary, str) or len(self.summary) > MAX_SUMMARY_CHARS:
            raise InvalidValueError(
                f"journal summary must be a string of at most {MAX_SUMMARY_CHARS} characters"
            )
        _check_time("journal timestamp", self.at)
        _dumps(f"journal version of {self.section!r}", self.version)


class Store:
    """Durable agent state in one SQLite file. Create with :meth:`Store.open`."""

    def __init__(self, path: str, conn: sqlite3.Connection, journal_retention: int) -> None:
        """Wrap an already-prepared connection; use :meth:`Store.open` instead."""
        self._path = path
        self._conn: Optional[sqlite3.Connection] = conn
        self._retention = journal_retention
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def open(cls, path: PathLike, journal_retention: int = DEFAULT_JOURNAL_RETENTION) -> Store:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        The file is given mode 0600. Raises :class:`StoreCorruptError` when the file is not a
        usable database, :class:`StoreSchemaError` when it was written by a newer agent and
        :class:`StoreIOError` when it cannot be opened.
        """
        if (
            isinstance(journal_retention, bool)
            or not isinstance(journal_retention, int)
            or (journal_retention < 1)
        ):
            raise InvalidValueError(
                f"journal_retention must be a positive integer, got {journal_retention!r}"
            )
        fspath = os.fspath(path)
        try:
            # Create the file ourselves so that it never exists with umask-derived permissions;
            # SQLite gives the -wal and -shm files the mode of the main file.
            fd = os.open(fspath, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(fspath, 0o600)
        except OSError as exc:
            raise StoreIOError(f"cannot open state database {fspath}: {exc.strerror}") from exc
        try:
            conn = sqlite3.connect(
                fspath,
                timeout=BUSY_TIMEOUT_S,
                # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE so
                # the module never starts or ends one behind our back.
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreIOError(f"cannot open state database {fspath}: {exc}") from exc
        try:
            cls._prepare(fspath, conn)
        except BaseException:
            conn.close()
            raise
        return cls(fspath, conn, journal_retention)

    @staticmethod
    def _prepare(path: str, conn: sqlite3.Connection) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreIOError(f"{path}: cannot switch the database to WAL mode ({mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            check = conn.execute("PRAGMA quick_check").fetchall()
            if [tuple(r) for r in check] != [("ok",)]:
                detail = "; ".join(str(r[0]) for r in check[:5])
                raise StoreCorruptError(f"state database {path} is corrupt: {detail}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = _read_schema_version(path, conn)
                if found is not None and found > SCHEMA_VERSION:
                    raise StoreSchemaError(
                        f"state database {path} has schema version {found}, newer than the"
                        f" {SCHEMA_VERSION} this agent understands; upgrade the agent or"
                        " restore a matching backup"
                    )
                for stmt in _SCHEMA_SQL:
                    conn.execute(stmt)
                if found is None:
                    conn.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)",
                        (_SCHEMA_KEY, json.dumps(SCHEMA_VERSION)),
                    )
                elif found < SCHEMA_VERSION:
                    _migrate(conn, found)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise _translate(path, "open", exc) from exc
        for suffix in ("-wal", "-shm"):
            try:
                os.chmod(path + suffix, 0o600)
            except FileNotFoundError:
                logger.debug("%s%s not present yet", path, suffix)
            except OSError as exc:
                logger.warning("cannot set mode 0600 on %s%s: %s", path, suffix, exc.strerror)

    def close(self) -> None:
        """Close the database. Further calls raise :class:`StoreClosedError`; idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._path

    @property
    def journal_retention(self) -> int:
        """How many journal entries are kept."""
        return self._retention

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"state database {self._path} is closed")
        return self._conn

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        sections: Mapping[str, Any],
        journal: Sequence[JournalEntry] = (),
        meta: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Durably apply one change in a single transaction.

        Upserts ``sections`` (a value of ``None`` deletes that section; any other value must be
        a JSON object), appends ``journal`` entries (then prunes the journal to the retention
        bound) and sets ``meta`` keys. Either everything is stored or nothing is; when this
        returns, the change survives a crash.
        """
        section_rows: List[Tuple[str, Optional[str]]] = []
        for name, value in sections.items():
            _check_name("section name", name)
            if value is None:
                section_rows.append((name, None))
            elif isinstance(value, dict):
                section_rows.append((name, _dumps(f"section {name!r}", value)))
            else:
                raise InvalidValueError(
                    f"section {name!r} must be a JSON object (dict) or None,"
                    f" got {type(value).__name__}"
                )
        journal_rows = []
        for entry in journal:
            if not isinstance(entry, JournalEntry):
                raise InvalidValueError(f"journal entries must be JournalEntry, got {entry!r:.80}")
            journal_rows.append(
                (
                    entry.section,
                    _dumps("journal version", entry.version),
                    entry.origin,
                    entry.summary,
                    entry.at,
                )
            )
        meta_rows = []
        for key, value in (meta or {}).items():
            _check_name("meta key", key)
            if key == _SCHEMA_KEY:
                raise InvalidValueError(f"meta key {_SCHEMA_KEY!r} is reserved for the store")
            meta_rows.append((key, _dumps(f"meta {key!r}", value)))

        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for name, text in section_rows:
                        if text is None:
                            conn.execute("DELETE FROM sections WHERE name = ?", (name,))
                        else:
                            conn.execute(
                                "INSERT INTO sections(name, value) VALUES (?, ?)"
                                " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                                (name, text),
                            )
                    if journal_rows:
                        conn.executemany(
                            "INSERT INTO journal(section, version, origin, summary, at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            journal_rows,
                        )
                        self._prune_journal(conn)
                    for key, text in meta_rows:
                        conn.execute(
                            "INSERT INTO meta(key, value) VALUES (?, ?)"
                            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            (key, text),
                        )
                    # With synchronous=FULL the WAL is fsynced before COMMIT returns.
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                raise _translate(self._path, "commit to", exc) from exc

    def _prune_journal(self, conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (self._retention - 1,),
        ).fetchone()
        if row is not None:
            conn.execute("DELETE FROM journal WHERE seq < ?", (row[0],))

    def put_properties(self, hostname: str, props: Mapping[str, Any], received_at: float) -> None:
        """Durably store the properties another node published, replacing earlier ones."""
        _check_name("hostname", hostname)
        if not isinstance(props, Mapping):
            raise InvalidValueError(f"properties of {hostname} must be a JSON object")
        text = _dumps(f"properties of {hostname}", dict(props))
        when = _check_time("received_at", received_at)
        with self._lock:
            conn = self._connection()
            try:
                # A single statement in autocommit mode is its own durable transaction.
                conn.execute(
                    "INSERT INTO properties(hostname, props, received_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(hostname) DO UPDATE SET"
                    " props = excluded.props, received_at = excluded.received_at",
                    (hostname, text, when),
                )
            except sqlite3.DatabaseError as exc:
                raise _translate(self._path, "write properties to", exc) from exc

    def delete_properties(self, hostname: str) -> bool:
        """Forget a node's properties (it left the federation); True if there were any."""
        with self._lock:
            conn = self._connection()
            try:
                cur = conn.execute("DELETE FROM properties WHERE hostname = ?", (hostname,))
            except sqlite3.DatabaseError as exc:
                raise _translate(self._path, "delete properties from", exc) from exc
            return cur.rowcount > 0

    # ------------------------------------------------------------------ reading

    def load_sections(self) -> Dict[str, Any]:
        """Return every section as ``{name: value}``."""
        rows = self._query("SELECT name, value FROM sections ORDER BY name", ())
        return {name: self._loads(f"section {name!r}", text) for name, text in rows}

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return the JSON value of meta ``key``, or ``default`` when it was never set."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return default
        return self._loads(f"meta {key!r}", rows[0][0])

    def journal(self, after_seq: int = 0, limit: int = 100) -> List[Tuple[int, JournalEntry]]:
        """Return up to ``limit`` journal entries with sequence number > ``after_seq``, oldest
        first, as ``(seq, entry)`` pairs. ``limit`` is capped by :data:`MAX_JOURNAL_PAGE`."""
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not (1 <= limit <= MAX_JOURNAL_PAGE)
        ):
            raise InvalidValueError(f"limit must be an integer in 1..{MAX_JOURNAL_PAGE}")
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            raise InvalidValueError("after_seq must be an integer")
        rows = self._query(
            "SELECT seq, section, version, origin, summary, at FROM journal"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            (
                int(seq),
                JournalEntry(
                    section=section,
                    version=self._loads(f"journal entry {seq}", version),
                    origin=origin,
                    summary=summary,
                    at=float(at),
                ),
            )
            for seq, section, version, origin, summary, at in rows
        ]

    def last_journal_seq(self) -> int:
        """The newest journal sequence number ever assigned (0 when none)."""
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'journal'", ())
        return int(rows[0][0]) if rows else 0

    def properties(self) -> Dict[str, Tuple[Dict[str, Any], float]]:
        """Return ``{hostname: (properties, received_at)}`` for every known node."""
        rows = self._query(
            "SELECT hostname, props, received_at FROM properties ORDER BY hostname", ()
        )
        return {
            host: (self._loads(f"properties of {host}", text), float(at)) for host, text, at in rows
        }

    def _query(self, sql: str, params: Tuple[Any, ...]) -> List[Tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                return [tuple(r) for r in conn.execute(sql, params).fetchall()]
            except sqlite3.DatabaseError as exc:
                raise _translate(self._path, "read", exc) from exc

    def _loads(self, what: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreCorruptError(
                f"state database {self._path}: {what} holds invalid JSON ({exc})"
            ) from exc


def _read_schema_version(path: str, conn: sqlite3.Connection) -> Optional[int]:
    """The stored schema version, or None for a fresh (empty) database."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        other = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        if other is not None:
            raise StoreSchemaError(
                f"{path} is an SQLite database but not an esgf-nodemgr state database"
                f" (it has table {other[0]!r} and no meta table)"
            )
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SCHEMA_KEY,)).fetchone()
    if row is None:
        raise StoreSchemaError(f"state database {path} has no {_SCHEMA_KEY} row")
    try:
        version = json.loads(row[0])
    except ValueError as exc:
        raise StoreCorruptError(f"state database {path}: unreadable {_SCHEMA_KEY}") from exc
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StoreCorruptError(f"state database {path}: bad {_SCHEMA_KEY} {version!r}")
    return version


def _migrate(conn: sqlite3.Connection, found: int) -> None:
    """Upgrade an older schema in place, one step at a time (none exist yet)."""
    raise StoreSchemaError(f"no migration from schema version {found} to {SCHEMA_VERSION}")


def _translate(path: str, action: str, exc: sqlite3.DatabaseError) -> StoreError:
    """Map an sqlite3 error onto the store's hierarchy, naming the file."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.OperationalError) and not (
        "malformed" in lowered or "not a database" in lowered
    ):
        return StoreIOError(f"cannot {action} state database {path}: {text}")
    return StoreCorruptError(
        f"state database {path} is corrupt or not an SQLite database ({text}); restore it"
        " from a backup or move it aside to start afresh"
    )
