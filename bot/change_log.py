"""The change events the bot was told of (`POST /events/change`), kept seven days in Redis.

One ZSET (`keys.CHANGES`): member = the event as `ChangeEvent.stored()` writes it, score = its
time. The same body posted twice (a CI retry) is one member; one sent without `at` (its time is
when it arrived, so each retry differs) is kept once by `keys.change_retry` for `RETRY_WINDOW`.
Each write trims what is older than `KEEP_FOR` and keeps at most `KEEP_AT_MOST`, in the same
script, so a runaway pipeline cannot fill Redis; and it is answered once a replica has it, as
REDIS_WAIT_REPLICAS asks, like the incident writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot import keys
from bot.changes import (
    KEEP_AT_MOST,
    KEEP_FOR,
    RECENT_WINDOW,
    RETRY_WINDOW,
    ChangeEvent,
    recent_changes,
)
from bot.store import IncidentStore, QueuedScript, translate_errors

# KEYS[1]: the change log; KEYS[2], for an event sent without `at`: its retry key.
# ARGV: the event as stored, its score, the oldest score kept (excluded), how many are kept, and
# how long the retry key lasts (ms). Returns the event first stored under KEYS[2], if one was.
_RECORD = """
if KEYS[2] then
  local first = redis.call('GET', KEYS[2])
  if first then return first end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
return false
"""


class ChangeLog:
    def __init__(self, store: IncidentStore) -> None:
        self.store = store  # its round trips wait for a replica; its failures count in the metrics
        self._record = store.redis.register_script(_RECORD)

    async def record(
        self, change: ChangeEvent, now: datetime, *, retry_key: str | None = None
    ) -> ChangeEvent:
        """Keep `change` (StoreUnavailable if Redis does not take it). `retry_key`: for an event
        sent without `at` (`ReceivedChange.retry_key`); when the same key was recorded within
        RETRY_WINDOW, nothing is written and the event stored then is returned."""
        key_names = [keys.CHANGES] if retry_key is None else [keys.CHANGES, keys.change_retry(retry_key)]
        args = [
            change.stored(),
            change.at.timestamp(),
            (now - KEEP_FOR).timestamp(),
            KEEP_AT_MOST,
            int(RETRY_WINDOW.total_seconds() * 1000),
        ]
        first = await self.store.run_script_waiting(QueuedScript(self._record, key_names, args))
        return change if first is None else ChangeEvent.model_validate_json(str(first))

    @translate_errors
    async def between(self, since: datetime, until: datetime) -> list[ChangeEvent]:
        """The changes from `since` to `until`, both included, oldest first."""
        found = await self.store.redis.zrangebyscore(keys.CHANGES, since.timestamp(), until.timestamp())
        return [ChangeEvent.model_validate_json(str(raw)) for raw in found]

    async def recent(
        self, *, before: datetime, window: timedelta = RECENT_WINDOW, service: str | None = None
    ) -> list[ChangeEvent]:
        """The changes of `window` before `before`, `service`'s first, newest first: as shown."""
        changes = await self.between(before - window, before)
        return recent_changes(changes, before=before, window=window, service=service)
