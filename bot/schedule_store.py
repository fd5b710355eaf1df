"""The reminder schedule in Redis: due times in a sorted set, claimed atomically.

Every process polls; a claim moves the member's due time forward by a short lease in the same
script that reads it, so no two processes get the same reminder. Delivery is confirmed after
the message is posted; a process that dies in between leaves the lease to expire, and another
process (or itself after a restart) delivers it then, marked late.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from bot import keys
from bot.models import Claim
from bot.store import QueuedScript, translate_errors

# ARGV holds (member, due, every) triples: several members are (re)scheduled in one call.
_SCHEDULE = """
for i = 1, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[4], ARGV[i])
end
return 1
"""

_CANCEL = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"""

_CLAIM = """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {}
for i = 1, #found, 2 do
  local member, score = found[i], found[i + 1]
  local due = redis.call('HGET', KEYS[4], member)
  if not due then
    due = score
    redis.call('HSET', KEYS[4], member, due)
  end
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), member)
  local missed = tonumber(redis.call('HGET', KEYS[3], member) or '0') + 1
  out[#out + 1] = member
  out[#out + 1] = due
  out[#out + 1] = tostring(missed)
end
return out
"""

_CONFIRM = """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[4], ARGV[1])
local every = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if not every then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local now = tonumber(ARGV[3])
local next_due = tonumber(ARGV[2]) + every
if next_due <= now then next_due = now + every end
redis.call('ZADD', KEYS[1], next_due, ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
return 1
"""


def _ts(at: datetime) -> str:
    return repr(at.timestamp())


class ScheduleStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        lease: timedelta = timedelta(seconds=30),
        *,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.lease = lease
        self.on_failure = on_failure  # told of each operation Redis failed (the metrics)
        self._schedule = redis.register_script(_SCHEDULE)
        self._cancel = redis.register_script(_CANCEL)
        self._claim = redis.register_script(_CLAIM)
        self._confirm = redis.register_script(_CONFIRM)

    async def schedule(self, member: str, due_at: datetime, every: timedelta) -> None:
        """(Re)start a member's reminders: first at `due_at`, then every `every`."""
        await self.schedule_many([(member, due_at, every)])

    @translate_errors
    async def schedule_many(self, entries: list[tuple[str, datetime, timedelta]]) -> None:
        """Several `schedule` calls in one script call: one round trip."""
        call = self.scheduling(entries)
        await self._schedule(keys=call.keys, args=call.args)

    def scheduling(self, entries: list[tuple[str, datetime, timedelta]]) -> QueuedScript:
        """`schedule_many` as a script call, to send in another write's round trip."""
        args: list[Any] = []
        for member, due_at, every in entries:
            args += [member, _ts(due_at), every.total_seconds()]
        return QueuedScript(self._schedule, list(keys.SCHEDULE_KEYS), args)

    @translate_errors
    async def cancel(self, member: str) -> None:
        await self._cancel(keys=keys.SCHEDULE_KEYS, args=[member])

    @translate_errors
    async def ensure(self, member: str, due_at: datetime, every: timedelta) -> None:
        """Keep an existing due time unless `due_at` is sooner (used for the digest at start)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.SCHEDULE_DUE, {member: due_at.timestamp()}, lt=True)
            pipe.hset(keys.SCHEDULE_EVERY, member, every.total_seconds())
            await pipe.execute()

    @translate_errors
    async def claim_due(self, now: datetime, limit: int = 100) -> list[Claim]:
        reply: list[Any] = await self._claim(
            keys=keys.SCHEDULE_KEYS, args=[_ts(now), self.lease.total_seconds(), limit]
        )
        claims = []
        for member, due, missed in zip(reply[0::3], reply[1::3], reply[2::3], strict=True):
            claims.append(
                Claim(
                    member=member,
                    due_at=datetime.fromtimestamp(float(due), UTC),
                    token=due,
                    missed=int(missed),
                )
            )
        return claims

    @translate_errors
    async def confirm(self, claim: Claim, now: datetime) -> bool:
        """Mark a claim delivered and set the next due time; False if it was rescheduled meanwhile."""
        return bool(await self._confirm(keys=keys.SCHEDULE_KEYS, args=[claim.member, claim.token, _ts(now)]))

    @translate_errors
    async def due_at(self, member: str) -> datetime | None:
        score = await self.redis.zscore(keys.SCHEDULE_DUE, member)
        return None if score is None else datetime.fromtimestamp(score, UTC)
