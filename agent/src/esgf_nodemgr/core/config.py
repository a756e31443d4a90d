"""Protocol parameters shared by every core (and checked once, at construction)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoreConfig:
    """Timing and thresholds of the protocol. All durations in seconds."""

    #: Round length R: every supernode probes every other once per round.
    round_s: float = 2.0
    #: A probe without an answer after this long counts as a miss.
    probe_timeout_s: float = 1.0
    #: Clock skew between nodes that the schedule tolerates.
    skew_s: float = 1.0
    #: Consecutive failed probes before an observer calls a link down (k).
    down_after: int = 2
    #: Consecutive successful probes before a down link is up again (j).
    up_after: int = 2
    #: Consecutive failed probes before a member is unreachable.
    member_down_after: int = 3
    #: Relative latency change that is worth republishing in the node's report.
    rtt_change: float = 0.3
    #: Latency alone is republished at most once every this many rounds (reachability
    #: changes go out at once): latency is information, not a decision input.
    rtt_publish_rounds: int = 15
    #: Member side: how long to wait for a join/leave answer before trying the next supernode.
    reply_timeout_s: float = 5.0
    #: Member side: how long to wait before asking again after a "delayed" answer.
    retry_s: float = 2.0
    #: Member side: how many "delayed" answers from one supernode before trying the next.
    max_delays: int = 10
    #: Member side: rounds without hearing from its server before it re-joins elsewhere.
    orphan_rounds: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.round_s <= 0:
            problems.append(f"round_s must be positive, got {self.round_s}")
        if not 0 < self.probe_timeout_s < self.round_s:
            problems.append(f"probe_timeout_s must be positive and below round_s "
                            f"({self.probe_timeout_s} vs {self.round_s})")
        if self.skew_s < 0:
            problems.append(f"skew_s must not be negative, got {self.skew_s}")
        for name in ("down_after", "up_after", "member_down_after", "max_delays",
                     "orphan_rounds", "rtt_publish_rounds"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if problems:
            raise ValueError("; ".join(problems))
