# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""Detached processes with a pidfile, for hosts without systemd (``agent_service``).

Linux only (``/proc``). A process counts as "ours" only when ``/proc/<pid>/cmdline`` matches
the command we run (the whole argv: program, options and the config path) and it lives in our
own mount and network namespaces. So a stale pidfile whose pid was reused by another program is
never signalled, and a process of another host sharing this machine's PID namespace (containers
or lab hosts with their own network and mount namespaces; the PID namespace shared) is never
adopted, signalled or taken for ours, even when its command line is the same as ours.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time

#: How long a start may take to report the new pid (the double fork) before it counts as failed.
SPAWN_TIMEOUT_S = 30
#: Poll interval while waiting for a process to come up or go away.
POLL_S = 0.1
#: A process started without ``ready_socket`` must stay up this long (or ``wait``, if shorter).
SETTLE_S = 1.0
#: Longest pidfile we read.
MAX_PIDFILE = 64


def read_pidfile(path):
    """The pid in ``path``; None when the file is missing, empty or holds no positive number."""
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_PIDFILE).decode("ascii", "replace").strip()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    if not text.isdigit() or int(text) <= 0:
        return None
    return int(text)


def proc_cmdline(pid, proc="/proc"):
    """The argv of process ``pid`` (a list), or None when there is no such live process."""
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        # state is the field after the parenthesised command name: Z (zombie) and X (dead) are gone
        state = stat[stat.rindex(")") + 2:].split(" ", 1)[0]
        if state in ("Z", "X", "x"):
            return None
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
            raw = f.read()
    except (OSError, ValueError):
        return None
    if not raw:
        return None  # kernel threads and processes on their way out
    return [part.decode("utf-8", "surrogateescape") for part in raw.rstrip(b"\0").split(b"\0")]


def cmdline_matches(cmdline, command):
    """Whether a process running ``cmdline`` is ``command``.

    Equal, or ``command`` preceded by at most two interpreter words: a script started by its
    shebang line shows as ``/usr/bin/python3 /opt/venv/bin/esgf-nm agent ...``.
    """
    if not cmdline or not command:
        return False
    n = len(command)
    if cmdline == command:
        return True
    return len(cmdline) - n in (1, 2) and cmdline[-n:] == command


#: The namespaces a process must share with us to count as ours: its files (the config, the
#: pidfile, the sockets it serves) and its addresses are where it looks for them.
NAMESPACES = ("mnt", "net")


def proc_namespaces(pid, proc="/proc"):
    """``{kind: "net:[4026531840]", ...}`` for ``NAMESPACES`` of ``pid`` (or ``"self"``).

    Raises ``OSError`` when one cannot be read: the process is gone, or another user's and we may
    not look (``EACCES``: reading ``/proc/<pid>/ns/*`` needs ptrace read access).
    """
    return dict((kind, os.readlink(os.path.join(proc, str(pid), "ns", kind))) for kind in NAMESPACES)


def same_namespaces(pid, proc="/proc"):
    """Whether ``pid`` lives in our own mount and network namespaces.

    True, False, or None when that cannot be known: its namespaces are unreadable (another
    user's process and we are not root), or the kernel has no namespaces at all (no
    ``/proc/self/ns``: then every process shares the one there is, and this returns True).
    """
    try:
        own = proc_namespaces("self", proc)
    except OSError:
        return True
    try:
        theirs = proc_namespaces(pid, proc)
    except OSError:
        return None
    return theirs == own


def find_process(command, proc="/proc"):
    """Pids of live processes running ``command`` in our namespaces (lowest first).

    Only these may be adopted: a process whose namespaces differ from ours, or cannot be read,
    is another host's (or unknown) even when its command line is ours.
    """
    found = []
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for name in names:
        if (name.isdigit() and cmdline_matches(proc_cmdline(int(name), proc), command)
                and same_namespaces(int(name), proc) is True):
            found.append(int(name))
    return sorted(found)


def alive(pid, command):
    """Whether ``pid`` is a live process running ``command`` that is not another host's.

    A process in other mount or network namespaces is not ours (a pid from our pidfile reused by
    another host's agent). When its namespaces cannot be read the pidfile, our own record, is
    trusted as before (a stop may then fail with EPERM, which is reported).
    """
    return pid is not None and cmdline_matches(proc_cmdline(pid), command) and same_namespaces(pid) is not False


def write_pidfile(module, path, pid):
    """Write ``pid`` to ``path`` atomically (a temp file in the same directory, renamed)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)


def remove_pidfile(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _drop_privileges(user):
    """A ``preexec_fn`` that becomes ``user`` (name or uid) with its groups; None for no change."""
    if user is None:
        return None
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    if os.geteuid() == entry.pw_uid:
        return None
    if os.geteuid() != 0:
        raise ValueError(f"running as uid {os.geteuid()}, which cannot switch to user {entry.pw_name} "
                         "(become root first)")

    def become():
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return become, entry


def spawn_detached(command, logfile, chdir=None, env=None, user=None, umask=0o022):
    """Start ``command`` detached from us; return its pid (``OSError``/``ValueError`` on failure).

    A double fork: an intermediate child starts the process in a new session (stdin from
    /dev/null, stdout and stderr appended to ``logfile``) and exits at once, so the process is
    never our child (no zombie, no SIGHUP when the Ansible connection goes) and is adopted by init.
    """
    drop = _drop_privileges(user)
    environ = dict(os.environ)
    environ.update(env or {})
    if drop is not None:
        entry = drop[1]
        environ.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    log_fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    if drop is not None:
        os.fchown(log_fd, drop[1].pw_uid, drop[1].pw_gid)
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # the intermediate child: only spawn, report, _exit
            code = 1
            try:
                os.close(read_end)
                os.umask(umask)
                proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, cwd=chdir, env=environ,
                    close_fds=True, start_new_session=True, preexec_fn=drop[0] if drop else None)
                os.write(write_end, str(proc.pid).encode())
                code = 0
            except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent
                os.write(write_end, (f"error:{exc}").encode("utf-8", "replace")[:4000])
            finally:
                os._exit(code)
        os.close(write_end)
        write_end = None
        chunks = []
        deadline = time.time() + SPAWN_TIMEOUT_S
        while time.time() < deadline:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.waitpid(child, 0)
    finally:
        os.close(log_fd)
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
    text = b"".join(chunks).decode("utf-8", "replace")
    if text.startswith("error:") or not text.isdigit():
        raise OSError("cannot start {}: {}".format(command[0], text[len("error:"):] or "no pid reported"))
    return int(text)


def socket_accepts(path, timeout=1.0):
    """Whether the Unix socket at ``path`` accepts a connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True


def wait_started(pid, command, wait, ready_socket=None):
    """Wait until the process is up: alive for SETTLE_S (or ``wait``), or ``ready_socket`` accepts.

    Returns None when it is up, else why not ("exited", or "not ready after N s").
    """
    start = time.time()
    deadline = start + wait
    settle = min(SETTLE_S, wait)
    while True:
        if not alive(pid, command):
            return "exited"
        now = time.time()
        if ready_socket is None and now - start >= settle:
            return None
        if ready_socket is not None and socket_accepts(ready_socket):
            return None
        if now >= deadline:
            return f"not ready after {wait:g} s ({ready_socket} does not accept connections)"
        time.sleep(POLL_S)


def signal_process(pid, sig):
    """Send ``sig`` to ``pid``'s process group when it leads one (ours do), else to ``pid``."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def stop_process(pid, command, wait):
    """SIGTERM, wait up to ``wait`` seconds, then SIGKILL. Returns True if it had to be killed.

    Raises ``OSError`` when the process is still there after SIGKILL (or cannot be signalled).
    """
    signal_process(pid, signal.SIGTERM)
    if _wait_gone(pid, command, wait):
        return False
    signal_process(pid, signal.SIGKILL)
    if _wait_gone(pid, command, 5.0):
        return True
    raise OSError(f"process {pid} is still running after SIGKILL")


def _wait_gone(pid, command, wait):
    deadline = time.time() + wait
    while alive(pid, command):
        if time.time() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def log_tail(path, lines=15, max_bytes=8192):
    """The last ``lines`` lines of ``path`` (for a failure message), or an empty string."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
