"""Errors raised by the federation core.

Every error the core raises is either the input's fault (a map, message or request that does not
follow the format: ``MapFormatError``, ``ProtocolError``), an operation the state does not allow
(``RosterError``), or a bug. Callers catch the specific class where they have a decision to make.
"""

from __future__ import annotations

from typing import Sequence


class CoreError(Exception):
    """Base class of every error raised by ``esgf_nodemgr.core``."""


class MapFormatError(CoreError):
    """A node map (ours or the prototype's) does not follow its format.

    ``problems`` lists every problem found, each starting with the JSON path it concerns
    (``$.roster.supernodes[2].port: expected an integer, got 'x'``).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid node map")


class ProtocolError(CoreError):
    """A message from a peer is malformed or not allowed (the peer's fault, never ours)."""


class RosterError(CoreError):
    """A roster change that cannot be made (duplicate hostname, supernode still has members…)."""
