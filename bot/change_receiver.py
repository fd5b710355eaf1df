"""`POST /events/change`: a deploy, a config change or a flag flip reported by a CI pipeline,
kept seven days for Recent changes, `/incident changes` and the chart markers.

The token and the size limit are checked before (`bot.intake`). A body that is not a change, or
one older than the seven days kept, gets 400 with what is wrong; one Redis does not take gets
503, so the pipeline retries; a stored one gets 200 with what was stored. A retry is stored once:
the same body is the same event, and one without `at` is the first one sent within
`RETRY_WINDOW` (answered with that event, its time included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.change_log import ChangeLog
from bot.changes import MAX_BODY_BYTES, InvalidChange, read_change
from bot.errors import StoreUnavailable
from bot.intake import Answer
from bot.logs import Throttled

log = logging.getLogger(__name__)


class ChangeReceiver:
    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, changes: ChangeLog, clock: Callable[[], datetime]) -> None:
        self.changes = changes
        self.clock = clock
        self._warn = Throttled(log)

    async def receive(self, body: bytes) -> Answer:
        now = self.clock()
        received = read_change(body, now=now)
        if isinstance(received, InvalidChange):
            return Answer(400, {"error": received.message})
        try:
            change = await self.changes.record(received.event, now, retry_key=received.retry_key)
        except StoreUnavailable as exc:
            self._warn.warn("store", "a change event was not stored, Redis is unavailable: %s", exc)
            return Answer(503, {"error": "the bot's Redis is unavailable, so nothing was stored; retry"})
        log.info("change event: %s %s %s", change.service, change.kind.value, change.label)
        return Answer(200, {"stored": change.model_dump(mode="json", exclude_none=True)})
