"""Atomic file writes for files that other ESGF components read.

``registration.xml`` and the legacy node-map file are read by other processes at arbitrary
moments, and the machine may lose power at any moment. A reader must therefore see either the
old content or the new content, never a mix or a truncated file; and once ``atomic_write``
returns, the new content must survive a crash.

The recipe: write a temporary file in the same directory (``rename`` is only atomic within one
file system), ``fsync`` it, ``rename`` it over the target, then ``fsync`` the directory so the
rename itself is durable.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import List, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class AtomicWriteError(OSError):
    """Writing a file atomically failed; the previous content (if any) is unchanged."""


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: PathLike, data: bytes, mode: int = 0o644) -> None:
    """Replace the file at ``path`` with ``data`` atomically and durably.

    The file gets permission bits ``mode`` (set explicitly, so the umask does not weaken or
    widen them). On any error the temporary file is removed, the target keeps its previous
    content, and :class:`AtomicWriteError` is raised naming the path.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    try:
        # The leading dot and the suffix keep readers that glob for "*.xml" from seeing it.
        fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise AtomicWriteError(
            exc.errno, f"cannot create a temporary file next to {target}: {exc.strerror}"
        ) from exc
    try:
        try:
            # mkstemp creates 0600; set the final mode before the content becomes visible.
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        # BaseException too: a KeyboardInterrupt must not leave a stray temporary file.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            logger.debug("temporary file %s already gone", tmp)
        if isinstance(exc, OSError):
            raise AtomicWriteError(
                exc.errno, f"cannot write {target}: {exc.strerror or exc}"
            ) from exc
        raise
    try:
        _fsync_dir(directory)
    except OSError as exc:
        # The new content is in place but its rename may not survive a power loss yet.
        raise AtomicWriteError(
            exc.errno, f"wrote {target} but could not sync its directory: {exc.strerror}"
        ) from exc


def remove_stale_temporaries(path: PathLike) -> List[str]:
    """Delete temporary files that an earlier ``atomic_write(path, …)`` left behind when its
    process was killed mid-write (a SIGKILL runs no cleanup). Call it at agent start, before
    writing ``path`` again; returns the names removed."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    prefix = "." + os.path.basename(target) + "."
    removed: List[str] = []
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            removed.append(name)
    if removed:
        logger.info("removed %d stale temporary file(s) of %s", len(removed), target)
    return removed
