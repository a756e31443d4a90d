"""Metrics from a real PostgreSQL server holding the ESGF tables."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import pytest
from support.postgres import EsgfDatabase, PgServer, create_esgf_database, esgf_db, pg_server  # noqa: F401

from esgf_nodemgr.runtime.metrics_pg import (
    DownloadMetrics,
    MetricsCollector,
    MetricsFormatError,
    MetricsSnapshot,
    PgSettings,
    collect_metrics,
)

LOGGER = "esgf_nodemgr.runtime.metrics_pg"
NOW = 1_764_000_000.0

# (firstname, middlename, lastname, username): duplicate names with different accounts, a
# missing middle name (twice, same person), same first/last with different middle names.
USERS: List[Tuple[str, Optional[str], str, str]] = [
    ("Ada", "M", "Lovelace", "ada1"),
    ("Ada", "M", "Lovelace", "ada2"),
    ("Ada", None, "Lovelace", "ada3"),
    ("Ada", None, "Lovelace", "ada4"),
    ("Ada", "K", "Lovelace", "ada5"),
    ("Grace", None, "Hopper", "grace"),
    ("Émile", "", "Zoë", "emile"),
]

# (user_id, data_size, xfer_size): complete transfers, partial ones (xfer < data), zero-size
# files, failed rows (-1/-1 as ESGF logs them before a transfer finishes), huge files.
DOWNLOADS: List[Tuple[str, int, int]] = [
    ("https://idp/openid/ada", 1000, 1000),
    ("https://idp/openid/ada", 1000, 400),
    ("https://idp/openid/ada", 2000, 2000),
    ("https://idp/openid/grace", 0, 0),
    ("https://idp/openid/grace", 5 * 2**40, 5 * 2**40),
    ("https://idp/openid/grace", 5 * 2**40, 2**40),
    ("https://idp/openid/emile", -1, -1),
    ("https://idp/openid/zed", 300, 10),
]


def expected_registered_users(users: Sequence[Tuple[str, Optional[str], str, str]]) -> int:
    """Distinct (first, middle, last); two missing middle names are the same value."""
    return len({(first, middle, last) for first, middle, last, _ in users})


def expected_downloads(rows: Sequence[Tuple[str, int, int]]) -> DownloadMetrics:
    complete = [(user, data, xfer) for user, data, xfer in rows if data == xfer]
    return DownloadMetrics(
        count=len(complete),
        bytes=sum(xfer for _, _, xfer in complete if xfer > 0),
        users=len({user for user, _, _ in rows}),
    )


def fill(db: EsgfDatabase) -> None:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for first, middle, last, username in USERS:
                cur.execute(
                    'INSERT INTO esgf_security."user"'
                    " (firstname, middlename, lastname, username, openid)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (first, middle, last, username, f"https://idp/openid/{username}"),
                )
            for n, (user, data, xfer) in enumerate(DOWNLOADS):
                cur.execute(
                    "INSERT INTO esgf_node_manager.access_logging"
                    " (user_id, url, remote_addr, date_fetched, success, data_size, xfer_size)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (user, f"https://data/file{n}.nc", "192.0.2.7", NOW + n, xfer > 0, data, xfer),
                )
    finally:
        conn.close()


def reader_settings(db: EsgfDatabase, **overrides: Any) -> PgSettings:
    values: dict[str, Any] = {
        "host": str(db.server.socket_dir),
        "port": db.server.port,
        "dbname": db.dbname,
        "user": db.server.reader,
        "password_file": db.server.reader_password_file,
        "connect_timeout_s": 5,
        "statement_timeout_ms": 5000,
    }
    values.update(overrides)
    return PgSettings(**values)


def warnings_of(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_expected_values_are_not_trivial() -> None:
    # The data must exercise every rule, or the database tests below prove little.
    assert expected_registered_users(USERS) == 5
    assert expected_downloads(DOWNLOADS) == DownloadMetrics(
        count=5, bytes=3000 + 5 * 2**40, users=4
    )


@pytest.mark.parametrize(
    ("node_types", "want_users", "want_downloads"),
    [
        (["idp"], True, False),
        (["data"], False, True),
        (["data", "idp"], True, True),
        (["compute", "data", "idp", "index"], True, True),
    ],
)
def test_counts_match_independent_computation(
    esgf_db: EsgfDatabase,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    node_types: List[str],
    want_users: bool,
    want_downloads: bool,
) -> None:
    fill(esgf_db)
    snapshot = collect_metrics(reader_settings(esgf_db), node_types, collected_at=NOW)
    assert snapshot.available, snapshot.reason
    assert snapshot.reason == ""
    assert snapshot.collected_at == NOW
    assert snapshot.registered_users == (expected_registered_users(USERS) if want_users else None)
    assert snapshot.download == (expected_downloads(DOWNLOADS) if want_downloads else None)
    assert warnings_of(caplog) == []


def test_empty_tables_give_zeros(esgf_db: EsgfDatabase) -> None:  # noqa: F811
    snapshot = collect_metrics(reader_settings(esgf_db), ["data", "idp"], collected_at=NOW)
    assert snapshot.available
    assert snapshot.registered_users == 0
    assert snapshot.download == DownloadMetrics(count=0, bytes=0, users=0)


def test_json_shape_and_round_trip(esgf_db: EsgfDatabase) -> None:  # noqa: F811
    fill(esgf_db)
    snapshot = collect_metrics(reader_settings(esgf_db), ["data", "idp"], collected_at=NOW)
    doc = json.loads(snapshot.to_json())
    assert doc == {
        "available": True,
        "reason": "",
        "collected_at": NOW,
        "registered_users": 5,
        "download": {"count": 5, "bytes": 3000 + 5 * 2**40, "users": 4},
    }
    assert MetricsSnapshot.from_json(snapshot.to_json()) == snapshot


def test_server_down_is_unavailable_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = PgSettings(host=str(tmp_path / "no-such-socket-dir"), connect_timeout_s=2)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    snapshot = collect_metrics(settings, ["data"], collected_at=NOW)
    assert not snapshot.available
    assert snapshot.download is None and snapshot.registered_users is None
    assert "cannot connect to" in snapshot.reason
    assert "no-such-socket-dir" in snapshot.reason
    assert "\n" not in snapshot.reason
    assert len(warnings_of(caplog)) == 1


def test_wrong_password_is_unavailable_and_never_logged(
    esgf_db: EsgfDatabase,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password-4711\n")
    caplog.set_level(logging.DEBUG)
    snapshot = collect_metrics(
        reader_settings(esgf_db, password_file=wrong), ["idp"], collected_at=NOW
    )
    assert not snapshot.available
    assert "password authentication failed" in snapshot.reason
    assert len(warnings_of(caplog)) == 1
    assert "not-the-password-4711" not in caplog.text
    assert "not-the-password-4711" not in snapshot.to_json()


def test_unknown_user_is_unavailable(esgf_db: EsgfDatabase) -> None:  # noqa: F811
    snapshot = collect_metrics(
        reader_settings(esgf_db, user="nobody_here"), ["data"], collected_at=NOW
    )
    assert not snapshot.available
    assert "nobody_here" in snapshot.reason


def test_missing_password_file_is_unavailable(esgf_db: EsgfDatabase, tmp_path: Path) -> None:  # noqa: F811
    missing = tmp_path / "absent.pw"
    snapshot = collect_metrics(
        reader_settings(esgf_db, password_file=missing), ["data"], collected_at=NOW
    )
    assert not snapshot.available
    assert str(missing) in snapshot.reason


def test_missing_tables_is_unavailable(pg_server: PgServer) -> None:  # noqa: F811
    bare = create_esgf_database(pg_server, with_tables=False)
    snapshot = collect_metrics(reader_settings(bare), ["data", "idp"], collected_at=NOW)
    assert not snapshot.available
    assert "query failed" in snapshot.reason
    assert "does not exist" in snapshot.reason


def test_node_without_data_or_idp_does_not_connect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The settings point nowhere: had it connected, the reason would say so.
    settings = PgSettings(host=str(tmp_path / "nowhere"))
    snapshot = collect_metrics(settings, ["index", "compute"], collected_at=NOW)
    assert not snapshot.available
    assert "neither data nor idp" in snapshot.reason
    assert warnings_of(caplog) == []


def test_collector_warns_once_per_reason_and_reports_recovery(
    esgf_db: EsgfDatabase,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("wrong\n")
    collector = MetricsCollector(reader_settings(esgf_db, password_file=pwfile), ["data"])
    assert collector.last is None
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    first = collector.collect(NOW)
    second = collector.collect(NOW + 240)
    assert not first.available and not second.available
    assert len(warnings_of(caplog)) == 1
    pwfile.write_text(esgf_db.server.reader_password + "\n")
    third = collector.collect(NOW + 480)
    assert third.available and collector.last == third
    assert third.collected_at == NOW + 480
    assert any(r.levelno == logging.INFO and "again" in r.message for r in caplog.records)
    assert len(warnings_of(caplog)) == 1


def test_settings_bounds() -> None:
    with pytest.raises(ValueError, match="connect_timeout_s"):
        PgSettings(host="/run/postgresql", connect_timeout_s=0)
    with pytest.raises(ValueError, match="connect_timeout_s"):
        PgSettings(host="/run/postgresql", connect_timeout_s=3600)
    with pytest.raises(ValueError, match="statement_timeout_ms"):
        PgSettings(host="/run/postgresql", statement_timeout_ms=0)
    with pytest.raises(ValueError, match="port"):
        PgSettings(host="/run/postgresql", port=70000)
    assert PgSettings(host="/run/postgresql").dbname == "esgcet"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "JSON object"),
        ("{", "not valid JSON"),
        ('{"available": true}', "fields"),
        (
            '{"available": 1, "reason": "", "collected_at": 1, "registered_users": null,'
            ' "download": null}',
            "available",
        ),
        (
            '{"available": true, "reason": "", "collected_at": -1, "registered_users": null,'
            ' "download": null}',
            "collected_at",
        ),
        (
            '{"available": true, "reason": "", "collected_at": 1, "registered_users": -3,'
            ' "download": null}',
            "registered_users",
        ),
        (
            '{"available": true, "reason": "", "collected_at": 1, "registered_users": true,'
            ' "download": null}',
            "registered_users",
        ),
        (
            '{"available": true, "reason": "", "collected_at": 1, "registered_users": null,'
            ' "download": {"count": 1, "bytes": 2}}',
            "download",
        ),
        (
            '{"available": true, "reason": "", "collected_at": 1, "registered_users": null,'
            ' "download": {"count": 1, "bytes": "2", "users": 3}}',
            "download.bytes",
        ),
        ("x" * 5000, "larger than"),
    ],
)
def test_from_json_rejects_bad_documents(text: str, message: str) -> None:
    with pytest.raises(MetricsFormatError, match=message):
        MetricsSnapshot.from_json(text)


def test_importing_the_module_does_not_import_psycopg2() -> None:
    code = (
        "import sys, esgf_nodemgr.runtime.metrics_pg, esgf_nodemgr.runtime.registration;"
        " sys.exit(1 if 'psycopg2' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
