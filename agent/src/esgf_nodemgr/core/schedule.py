"""Rounds: the epoch and the round length give every supernode the same schedule.

Round ``r`` starts at ``epoch + r * round_s``. Its leader is the supernode at position
``r mod n`` of the roster restricted to the supernodes believed alive, so consecutive rounds
have different leaders and a leader that died unnoticed costs at most one round.

Clocks are assumed NTP-synchronised but may be off by ``skew_s``: messages carry the round
they belong to, and a leader accepts observations for its round until ``decide_by(r)``, which
leaves room for that skew (see ``docs/protocol.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import AbstractSet, Optional, Sequence


@dataclass(frozen=True)
class Schedule:
    """Round arithmetic for one federation."""

    epoch: float
    round_s: float
    probe_timeout_s: float
    skew_s: float = 1.0

    def __post_init__(self) -> None:
        if self.round_s <= 0:
            raise ValueError(f"round length must be positive, got {self.round_s}")
        if not 0 < self.probe_timeout_s < self.round_s:
            raise ValueError(f"probe timeout must be positive and shorter than the round "
                             f"({self.probe_timeout_s} vs {self.round_s})")

    def round_at(self, now: float) -> int:
        """The round running at ``now`` (-1 before the epoch)."""
        if now < self.epoch:
            return -1
        r = math.floor((now - self.epoch) / self.round_s)
        # The division can land a hair off an exact boundary; ``start`` is the definition.
        if self.start(r + 1) <= now:
            return r + 1
        if self.start(r) > now:
            return r - 1
        return r

    def start(self, r: int) -> float:
        return self.epoch + r * self.round_s

    def report_at(self, r: int) -> float:
        """When observers send their observations for round ``r``: probes have timed out."""
        return self.start(r) + self.probe_timeout_s

    def decide_by(self, r: int) -> float:
        """The leader's deadline for round ``r``: reports later than this are not waited for.

        ``skew_s`` is how far apart two nodes' clocks may be: an observer whose clock runs
        ``skew_s`` behind the leader's sends its report that much later in the leader's time;
        the leader waits for it, plus a margin for transit (one probe timeout).
        """
        return self.report_at(r) + self.skew_s + self.probe_timeout_s


def leader(roster_ids: Sequence[str], alive: AbstractSet[str], r: int) -> Optional[str]:
    """Leader of round ``r``: position ``r mod n`` among the supernodes believed alive."""
    candidates = [i for i in roster_ids if i in alive]
    if not candidates or r < 0:
        return None
    return candidates[r % len(candidates)]
