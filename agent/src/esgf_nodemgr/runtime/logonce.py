"""Log a failing destination once, not once per attempt.

While a peer is down, every round tries to send to it, probe it and fetch from it; one log
line per attempt buries everything else. :class:`FailureLog` logs the first failure of a
key (a peer and what was tried) at INFO, later ones at DEBUG, and at INFO again once the key
succeeds ("... again"). Thread-safe: the agent's workers call it concurrently.
"""

from __future__ import annotations

import logging
import threading
from typing import Dict, Hashable, Optional


class FailureLog:
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        #: key -> failures since the last success
        self._failing: Dict[Hashable, int] = {}

    def failed(self, key: Hashable, message: str, *args: object) -> None:
        """Record a failure of ``key``; log it at INFO when it is the first in a row."""
        with self._lock:
            count = self._failing.get(key, 0) + 1
            self._failing[key] = count
        if count == 1:
            self._logger.info(message + " (repeats logged at DEBUG until it works again)",
                              *args)
        else:
            self._logger.debug(message + " (failure %d in a row)", *args, count)

    def succeeded(self, key: Hashable, message: Optional[str] = None, *args: object) -> None:
        """Record a success of ``key``; log ``message`` (if any) at INFO if it had been failing."""
        with self._lock:
            count = self._failing.pop(key, 0)
        if count and message is not None:
            self._logger.info(message + " (after %d failure%s)", *args, count,
                              "" if count == 1 else "s")

    def failing(self) -> Dict[Hashable, int]:
        """A copy of the keys failing now and their counts."""
        with self._lock:
            return dict(self._failing)
