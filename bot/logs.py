"""Warnings that would repeat every poll (Redis down, Slack down) are logged at most once a
minute per kind, with how many were held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

QUIET_SECONDS = 60.0


class Throttled:
    """`warn(kind, message, *args)`: the first of a kind now, then at most one per minute."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> bool:
        """Log it (True) or count it for the next one of its kind (False)."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < QUIET_SECONDS:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        if held:
            message += f" ({held} more like this in the last {int(now - (last or now))} s)"
        self.logger.warning(message, *args)
        self._last[kind] = now
        return True
