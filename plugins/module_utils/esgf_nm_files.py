# Copyright (c) 2026, ESGF node manager maintainers
# Apache License 2.0 (see LICENSE)
"""File attributes as the modules take them: owners and groups by name or number, modes as
octal strings. Shared by node_files (which sets them) and node_tls (which checks them)."""

from __future__ import annotations

import grp
import pwd


def parse_mode(mode):
    """``"0640"``, ``"640"`` or an int -> the int; None stays None. ValueError names the value."""
    if mode is None or isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise ValueError(f"mode must be an octal string such as '0644', got {mode!r}") from None


def uid_of(owner):
    """A user name or number -> its uid; None when no such user exists."""
    try:
        return int(owner)
    except ValueError:
        pass
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        return None


def gid_of(group):
    """A group name or number -> its gid; None when no such group exists."""
    try:
        return int(group)
    except ValueError:
        pass
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None
