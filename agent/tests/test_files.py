"""atomic_write: content, mode, and no partial file ever visible, with real processes."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from esgf_nodemgr.store.files import AtomicWriteError, atomic_write, remove_stale_temporaries


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory: str) -> list:
    return [n for n in os.listdir(directory) if n.endswith(".tmp")]


def test_writes_content_and_mode_regardless_of_umask(tmp_path):
    target = str(tmp_path / "registration.xml")
    old_umask = os.umask(0o077)
    try:
        atomic_write(target, b"<registration/>\n")
    finally:
        os.umask(old_umask)
    with open(target, "rb") as handle:
        assert handle.read() == b"<registration/>\n"
    assert _mode(target) == 0o644
    atomic_write(target, b"second", mode=0o600)
    with open(target, "rb") as handle:
        assert handle.read() == b"second"
    assert _mode(target) == 0o600
    assert _leftovers(str(tmp_path)) == []


def test_empty_and_large_content(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"")
    assert target.read_bytes() == b""
    blob = os.urandom(3 * 1024 * 1024 + 7)
    atomic_write(target, blob)
    assert target.read_bytes() == blob


def test_missing_directory_is_a_clear_error(tmp_path):
    target = str(tmp_path / "nope" / "f")
    with pytest.raises(AtomicWriteError, match="nope"):
        atomic_write(target, b"x")


def test_real_write_error_keeps_old_content_and_cleans_tmp(tmp_path):
    """A child process with RLIMIT_FSIZE gets a genuine EFBIG from write(2) mid-file."""
    target = tmp_path / "map.xml"
    target.write_bytes(b"old content")
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from esgf_nodemgr.store.files import AtomicWriteError, atomic_write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            atomic_write(sys.argv[1], b"n" * (1024 * 1024))
        except AtomicWriteError as exc:
            sys.stdout.write("error: %s" % exc)
            sys.exit(3)
        sys.exit(0)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 3, proc.stderr
    assert "map.xml" in proc.stdout
    assert target.read_bytes() == b"old content"
    assert _leftovers(str(tmp_path)) == []


WRITER = textwrap.dedent(
    """
    import sys
    from esgf_nodemgr.store.files import atomic_write
    a = b"a" * int(sys.argv[2])
    b = b"b" * int(sys.argv[2]) * 2
    i = 0
    while True:
        atomic_write(sys.argv[1], a if i % 2 else b)
        i += 1
    """
)


def _intact(data: bytes, size: int) -> bool:
    return data in (b"a" * size, b"b" * size * 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_write_leaves_old_or_new_never_partial(tmp_path, seed):
    """Readers watching the file while a writer is killed at a random moment only ever see a
    whole old or whole new content; stale temporaries are cleaned afterwards."""
    rng = random.Random(seed)
    size = 512 * 1024
    target = str(tmp_path / "registration.xml")
    atomic_write(target, b"a" * size)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, target, str(size)])
    try:
        deadline = time.monotonic() + rng.uniform(0.2, 0.8)
        reads = 0
        while time.monotonic() < deadline:
            with open(target, "rb") as handle:
                assert _intact(handle.read(), size)
            reads += 1
        assert reads > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with open(target, "rb") as handle:
        assert _intact(handle.read(), size)
    remove_stale_temporaries(target)
    assert _leftovers(str(tmp_path)) == []


def test_remove_stale_temporaries_only_touches_ours(tmp_path):
    target = tmp_path / "registration.xml"
    (tmp_path / ".registration.xml.abc123.tmp").write_bytes(b"partial")
    (tmp_path / ".other.xml.abc123.tmp").write_bytes(b"not ours")
    (tmp_path / "registration.xml").write_bytes(b"whole")
    assert remove_stale_temporaries(target) == [".registration.xml.abc123.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".other.xml.abc123.tmp", "registration.xml"]
