"""A real, throw-away PostgreSQL server for tests, and the ESGF tables the agent reads.

Usage in a test module (pytest's default import mode puts ``tests/`` on ``sys.path``)::

    from support.postgres import esgf_db, pg_server  # noqa: F401

``pg_server`` (session scope) runs ``initdb`` into a fresh temp dir and starts the server with
``pg_ctl``, listening only on a Unix socket inside that dir (``listen_addresses = ''``), with
password (scram-sha-256) authentication. PostgreSQL refuses to run as root, so as root the
server runs as the unprivileged ``nobody`` user (through ``setpriv``, else ``runuser``) and the
temp dir is handed to it. The server is always stopped (``pg_ctl stop -m immediate``) and the
dir removed at teardown, including after failures. Missing binaries skip the tests with the
path that was looked for; ``ESGF_NM_PG_BIN`` points at another ``bin`` directory.

``esgf_db`` (function scope) creates a new database holding ``esgf_security."user"`` and
``esgf_node_manager.access_logging`` (empty), readable by a least-privilege role.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "esgf_test_admin"
READER = "esgf_metrics"
PORT = 5432  # only names the socket file (.s.PGSQL.5432) in our own dir: no TCP at all
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120
UNPRIVILEGED_USER = "nobody"

# Written for these tests from the column names ESGF uses; only what the agent reads matters.
ESGF_DDL = """
CREATE SCHEMA esgf_security;
CREATE TABLE esgf_security."user" (
    id serial PRIMARY KEY,
    firstname varchar(100) NOT NULL,
    middlename varchar(100),
    lastname varchar(100) NOT NULL,
    email varchar(100),
    username varchar(100) NOT NULL UNIQUE,
    openid varchar(200) NOT NULL UNIQUE,
    organization varchar(200),
    city varchar(100),
    country varchar(100),
    status_code integer,
    last_updated timestamp DEFAULT now()
);
CREATE SCHEMA esgf_node_manager;
CREATE TABLE esgf_node_manager.access_logging (
    id serial PRIMARY KEY,
    user_id varchar NOT NULL,
    email varchar,
    url varchar NOT NULL,
    file_id varchar,
    remote_addr varchar NOT NULL,
    user_agent varchar,
    service_type varchar,
    date_fetched double precision NOT NULL,
    success boolean,
    duration double precision,
    data_size bigint DEFAULT -1,
    xfer_size bigint DEFAULT -1
);
"""


@dataclass(frozen=True)
class PgServer:
    """A running test server: connect through ``socket_dir``/``port`` with a password."""

    base_dir: Path
    socket_dir: Path
    port: int
    superuser: str
    superuser_password: str
    reader: str
    reader_password: str
    reader_password_file: Path

    def connect(
        self, dbname: str = "postgres", user: Optional[str] = None, password: Optional[str] = None
    ) -> Any:
        """An autocommit psycopg2 connection (as the superuser unless told otherwise)."""
        import psycopg2

        conn = psycopg2.connect(
            host=str(self.socket_dir),
            port=self.port,
            dbname=dbname,
            user=user or self.superuser,
            password=password if password is not None else self.superuser_password,
            connect_timeout=10,
        )
        conn.autocommit = True
        return conn


@dataclass(frozen=True)
class EsgfDatabase:
    """A database with the ESGF tables, and how the metrics reader logs in."""

    server: PgServer
    dbname: str

    def connect(self) -> Any:
        """An autocommit superuser connection to this database (to insert test rows)."""
        return self.server.connect(self.dbname)


def _pg_bin() -> Path:
    override = os.environ.get("ESGF_NM_PG_BIN")
    if override:
        return Path(override)
    return DEFAULT_PG_BIN


def _run_as_prefix() -> List[str]:
    """Command prefix that drops root to an unprivileged user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no {UNPRIVILEGED_USER!r} user to run postgres")
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
        ]
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", UNPRIVILEGED_USER, "--"]
    pytest.skip("running as root and neither setpriv nor runuser is available to drop privileges")


def _chown_for_server(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _run(prefix: List[str], argv: List[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    return subprocess.run(
        prefix + argv,
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no server log: {exc})"


def _stop(prefix: List[str], pg_bin: Path, base: Path) -> None:
    data = base / "data"
    if (data / "postmaster.pid").exists():
        result = _run(
            prefix, [str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], base
        )
        if result.returncode != 0 and (data / "postmaster.pid").exists():
            # pg_ctl could not stop it: signal the postmaster we started, by its pid.
            pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(base, ignore_errors=True)


def start_server() -> Iterator[PgServer]:
    """Start a server, yield it, stop it and remove its files (generator for fixtures)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to talk to the test PostgreSQL")
    pg_bin = _pg_bin()
    for binary in ("initdb", "pg_ctl", "postgres"):
        if not (pg_bin / binary).is_file():
            pytest.skip(f"PostgreSQL server binary not found: {pg_bin / binary}")
    prefix = _run_as_prefix()
    # /tmp rather than pytest's tmp_path: the unprivileged server user must be able to reach
    # it (pytest's dirs are private to root), and the socket path must stay short (< 108 bytes).
    base = Path(tempfile.mkdtemp(prefix="esgfnm-pg-", dir="/tmp" if prefix else None))
    try:
        _chown_for_server(base)
        superuser_password = secrets.token_urlsafe(18)
        pwfile = base / "superuser.pw"
        pwfile.write_text(superuser_password + "\n")
        pwfile.chmod(0o600)
        _chown_for_server(pwfile)
        data = base / "data"
        init = _run(
            prefix,
            [
                str(pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            base,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# esgf-nodemgr tests: Unix socket in our own dir only, no TCP at all\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{base}'\n"
                f"port = {PORT}\n"
                "fsync = off\n"
                "max_connections = 30\n"
                "shared_buffers = 16MB\n"
            )
        log = base / "postgres.log"
        start = _run(
            prefix,
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            base,
        )
        if start.returncode != 0:
            pytest.fail(f"pg_ctl start failed:\n{start.stderr}\n{_log_tail(log)}")
        reader_password = secrets.token_urlsafe(18)
        reader_pwfile = base / "reader.pw"
        reader_pwfile.write_text(reader_password + "\n")
        reader_pwfile.chmod(0o600)
        server = PgServer(
            base_dir=base,
            socket_dir=base,
            port=PORT,
            superuser=SUPERUSER,
            superuser_password=superuser_password,
            reader=READER,
            reader_password=reader_password,
            reader_password_file=reader_pwfile,
        )
        from psycopg2 import sql

        conn = server.connect()
        try:
            with conn.cursor() as cur:
                # Utility statements take no bind parameters: compose with a quoted literal.
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(READER), sql.Literal(reader_password)
                    )
                )
        finally:
            conn.close()
        yield server
    finally:
        _stop(prefix, pg_bin, base)


_db_counter = itertools.count(1)


def create_esgf_database(server: PgServer, with_tables: bool = True) -> EsgfDatabase:
    """Create a new database (with the ESGF tables unless told not to) the reader can query."""
    dbname = f"esgcet_{next(_db_counter)}"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {dbname}")
    finally:
        conn.close()
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(f"GRANT CONNECT ON DATABASE {dbname} TO {server.reader}")
            if with_tables:
                cur.execute(ESGF_DDL)
                for schema in ("esgf_security", "esgf_node_manager"):
                    cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {server.reader}")
                    cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {server.reader}")
    finally:
        conn.close()
    return EsgfDatabase(server=server, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole test session (see the module docstring)."""
    yield from start_server()


@pytest.fixture()
def esgf_db(pg_server: PgServer) -> EsgfDatabase:
    """A fresh database with empty ESGF tables, on the session's server."""
    return create_esgf_database(pg_server)
