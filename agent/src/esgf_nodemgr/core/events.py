"""Events into a node's core and the effects it returns.

The runtime (or the simulator) feeds events and executes effects in the order given: every
``Persist`` comes before the ``Send`` effects that depend on it, so a node never tells anyone
about state it could lose in a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple, Union

from esgf_nodemgr.core.messages import Message


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tick:
    """Time passes: ``now`` is the node's own clock (seconds since the Unix epoch)."""

    now: float


@dataclass(frozen=True)
class Received:
    """A message arrived from ``sender`` (a hostname the transport authenticated)."""

    sender: str
    message: Message
    now: float


@dataclass(frozen=True)
class ProbeDone:
    """The outcome of a ``Probe`` effect (``rtt_ms`` None: no answer in time)."""

    target: str
    round: int
    rtt_ms: Optional[float]
    props: Optional[str] = None
    digest: Optional[str] = None
    now: float = 0.0


@dataclass(frozen=True)
class Probed:
    """This node answered a probe from ``sender`` (so ``sender`` is alive and reaches us)."""

    sender: str
    now: float


@dataclass(frozen=True)
class AdminRoster:
    """The administrator installs a roster (accepted only if newer than the current one)."""

    roster: Mapping[str, Any]
    now: float


@dataclass(frozen=True)
class AdminSeedEpoch:
    """Bootstrap: seed the epoch on supernode #1 (a no-op when one exists, unless forced)."""

    value: float
    now: float
    force: bool = False


@dataclass(frozen=True)
class AdminJoin:
    """Member side: join the federation (or re-join, a no-op when nothing changed)."""

    project: str
    standby: bool
    now: float


@dataclass(frozen=True)
class AdminLeave:
    """Member side: leave the federation."""

    now: float


Event = Union[Tick, Received, ProbeDone, Probed, AdminRoster, AdminSeedEpoch, AdminJoin,
              AdminLeave]


# -- effects ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send ``message`` to the node ``to`` (hostname) at ``address:port``."""

    to: str
    address: str
    port: int
    message: Message


@dataclass(frozen=True)
class Probe:
    """Probe ``target`` (health check) and report a ``ProbeDone`` for ``round``."""

    target: str
    address: str
    port: int
    round: int
    timeout_s: float


@dataclass(frozen=True)
class Persist:
    """Durably store these sections (and journal lines) before executing later effects."""

    sections: Mapping[str, Any]
    journal: Tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """A sentence worth logging (one per decision, join, leave...)."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class Answer:
    """The outcome of an admin event or a received message, for whoever submitted it.

    ``status`` is ``ok`` (done), ``unchanged`` (nothing to do), ``ignored`` (stale input) or
    ``refused`` (not allowed; ``detail`` says why). The runtime turns it into the HTTP or
    admin-socket response; the simulator ignores it.
    """

    status: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


Effect = Union[Send, Probe, Persist, Note, Answer]
