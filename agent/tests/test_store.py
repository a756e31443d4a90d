"""The SQLite store: round trips, journal retention, meta, properties, schema guard,
corruption, and a real kill -9 test of "committed means durable"."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from esgf_nodemgr.store.db import (
    SCHEMA_VERSION,
    InvalidValueError,
    JournalEntry,
    Store,
    StoreClosedError,
    StoreCorruptError,
    StoreIOError,
    StoreSchemaError,
)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "state.db")


def entry(section: str, version, at: float = 1.0) -> JournalEntry:
    return JournalEntry(section=section, version=version, origin="sn1", summary="s", at=at)


def test_sections_round_trip_across_reopen(db_path):
    with Store.open(db_path) as store:
        assert store.load_sections() == {}
        store.commit({"roster": {"version": 3, "nodes": [{"id": 1, "hostname": "a"}]}})
        store.commit({"entry/3": {"v": [5, 1], "members": ["m1"]}, "epoch": {"t": 1.5}})
        store.commit({"entry/3": {"v": [6, 1], "members": []}})
    with Store.open(db_path) as store:
        assert store.load_sections() == {
            "roster": {"version": 3, "nodes": [{"id": 1, "hostname": "a"}]},
            "entry/3": {"v": [6, 1], "members": []},
            "epoch": {"t": 1.5},
        }
        store.commit({"epoch": None})
        assert "epoch" not in store.load_sections()


def test_file_modes_are_private(db_path):
    old = os.umask(0o022)
    try:
        with Store.open(db_path) as store:
            store.commit({"a": {}})
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db_path + suffix):
                    assert stat.S_IMODE(os.stat(db_path + suffix).st_mode) == 0o600, suffix
    finally:
        os.umask(old)


def test_pragmas(db_path):
    with Store.open(db_path) as store:
        conn = store._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_commit_is_all_or_nothing(db_path):
    with Store.open(db_path) as store:
        store.commit({"a": {"v": 1}}, meta={"x": 1})
        with pytest.raises(InvalidValueError, match="'b'"):
            store.commit({"a": {"v": 2}, "b": {"bad": {1, 2}}}, meta={"x": 2})
        with pytest.raises(InvalidValueError):
            store.commit({"a": [1, 2]})  # not an object
        with pytest.raises(InvalidValueError):
            store.commit({"a": {"n": float("nan")}})
        with pytest.raises(InvalidValueError, match="reserved"):
            store.commit({}, meta={"schema_version": 99})
        assert store.load_sections() == {"a": {"v": 1}}
        assert store.get_meta("x") == 1


def test_journal_and_meta(db_path):
    with Store.open(db_path) as store:
        assert store.get_meta("epoch") is None
        assert store.get_meta("epoch", 7) == 7
        store.commit(
            {"decision": {"v": [1, 2]}},
            journal=[entry("decision", [1, 2], 10.0), entry("entry/2", {"r": 4}, 10.5)],
            meta={"epoch": 1700000000.25, "counters": {"sent": 3}},
        )
        assert store.get_meta("epoch") == 1700000000.25
        assert store.get_meta("counters") == {"sent": 3}
        assert store.get_meta("schema_version") == SCHEMA_VERSION
        got = store.journal()
        assert [seq for seq, _ in got] == [1, 2]
        assert got[0][1] == entry("decision", [1, 2], 10.0)
        assert got[1][1].version == {"r": 4}
        assert store.journal(after_seq=1) == [got[1]]
        assert store.journal(after_seq=2) == []
        assert store.last_journal_seq() == 2
        with pytest.raises(InvalidValueError):
            store.journal(limit=0)


def test_journal_entry_validates():
    with pytest.raises(InvalidValueError):
        JournalEntry("", 1, "sn1", "s", 1.0)
    with pytest.raises(InvalidValueError):
        JournalEntry("a", 1, "sn1", "s", float("inf"))
    with pytest.raises(InvalidValueError):
        JournalEntry("a", object(), "sn1", "s", 1.0)


def test_journal_retention_keeps_newest_and_never_reuses_seq(db_path):
    with Store.open(db_path, journal_retention=5) as store:
        for i in range(1, 13):
            store.commit({}, journal=[entry(f"s{i}", i, float(i))])
        got = store.journal(limit=100)
        assert [seq for seq, _ in got] == [8, 9, 10, 11, 12]
        assert [e.version for _, e in got] == [8, 9, 10, 11, 12]
        store.commit({}, journal=[entry("x", i, 0.0) for i in range(7)])
        assert [seq for seq, _ in store.journal()] == [15, 16, 17, 18, 19]
    with Store.open(db_path, journal_retention=5) as store:
        store.commit({}, journal=[entry("y", 0, 0.0)])
        assert store.journal()[-1][0] == 20


def test_properties(db_path):
    with Store.open(db_path) as store:
        assert store.properties() == {}
        store.put_properties("sn2.test", {"version": "5.0", "projects": ["CMIP6"]}, 100.0)
        store.put_properties("sn3.test", {"version": "4.9"}, 101.0)
        store.put_properties("sn2.test", {"version": "5.1"}, 102.5)
    with Store.open(db_path) as store:
        assert store.properties() == {
            "sn2.test": ({"version": "5.1"}, 102.5),
            "sn3.test": ({"version": "4.9"}, 101.0),
        }
        assert store.delete_properties("sn3.test") is True
        assert store.delete_properties("sn3.test") is False
        assert list(store.properties()) == ["sn2.test"]


def test_newer_schema_is_refused_untouched(db_path):
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreSchemaError, match=r"schema version 99.*upgrade the agent"):
        Store.open(db_path)


def test_foreign_sqlite_database_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE something_else (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreSchemaError, match="not an esgf-nodemgr state database"):
        Store.open(db_path)


def test_garbage_file_is_a_clear_corruption_error(db_path):
    with open(db_path, "wb") as handle:
        handle.write(b"this is not sqlite" * 1000)
    with pytest.raises(StoreCorruptError) as info:
        Store.open(db_path)
    assert db_path in str(info.value)


def test_damaged_pages_are_detected(db_path):
    with Store.open(db_path) as store:
        store.commit({f"s{i}": {"pad": "x" * 500} for i in range(200)})
    # Overwrite a page in the middle of the file (after the checkpoint that close() does).
    size = os.path.getsize(db_path)
    assert size > 4 * 4096
    with open(db_path, "r+b") as handle:
        handle.seek(2 * 4096)
        handle.write(b"\xff" * 4096)
    with pytest.raises(StoreCorruptError, match=r"state\.db"), Store.open(db_path) as store:
        store.load_sections()


def test_unopenable_path(tmp_path):
    with pytest.raises(StoreIOError, match="missing-dir"):
        Store.open(str(tmp_path / "missing-dir" / "state.db"))


def test_closed_store(db_path):
    store = Store.open(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreClosedError):
        store.load_sections()


CHILD = textwrap.dedent(
    """
    import os, sys
    from esgf_nodemgr.store.db import JournalEntry, Store
    path, ack_path = sys.argv[1], sys.argv[2]
    store = Store.open(path, journal_retention=50)
    acks = open(ack_path, "a", buffering=1)
    start = (store.get_meta("last") or 0) + 1
    for i in range(start, start + 100000):
        store.commit(
            {"n/%d" % i: {"i": i, "pad": "p" * (i % 300)}, "counter": {"i": i}},
            journal=[JournalEntry("n/%d" % i, i, "child", "set %d" % i, float(i))],
            meta={"last": i},
        )
        # The acknowledgement: written only after commit() returned.
        acks.write("%d\\n" % i)
    """
)


def _acked(ack_path: str) -> list:
    with open(ack_path) as handle:
        text = handle.read()
    # Only whole lines count: a line cut by the kill was never acknowledged.
    return [int(line) for line in text.split("\n")[:-1]]


def _check_consistent(db_path: str, acked: list) -> int:
    with Store.open(db_path, journal_retention=50) as store:
        conn = store._connection()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sections = store.load_sections()
        last = store.get_meta("last")
        counter = sections["counter"]["i"]
        assert last == counter
        numbered = sorted(v["i"] for k, v in sections.items() if k.startswith("n/"))
        # Every acknowledged number is there; at most the one in flight beyond.
        assert numbered == list(range(1, counter + 1))
        assert set(acked) <= set(numbered)
        assert counter in (acked[-1] if acked else 0, (acked[-1] if acked else 0) + 1)
        journal = store.journal(limit=100)
        assert 1 <= len(journal) <= 50
        seqs = [seq for seq, _ in journal]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert journal[-1][1].version == counter
        return counter


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged(tmp_path):
    """A child commits numbered sections and acknowledges each after commit() returns; it is
    SIGKILLed at random moments (seeded), restarted on the same database, killed again.

    SIGKILL exercises the process-crash half of durability (nothing buffered in the process
    is lost); synchronous=FULL covers the power-loss half, which a test cannot cause here.
    """
    rng = random.Random(20261125)
    db_path = str(tmp_path / "state.db")
    ack_path = str(tmp_path / "acks")
    open(ack_path, "w").close()
    previous = 0
    for _round in range(5):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, db_path, ack_path])
        try:
            # Wait until it made progress, then kill at a random moment after that.
            deadline = time.monotonic() + 30
            while len(_acked(ack_path)) <= previous and time.monotonic() < deadline:
                assert proc.poll() is None, "child exited early"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        acked = _acked(ack_path)
        assert len(acked) > previous
        counter = _check_consistent(db_path, acked)
        assert counter >= acked[-1]
        previous = len(acked)
