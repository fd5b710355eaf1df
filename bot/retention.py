"""Retention: a resolved incident is kept INCIDENT_RETENTION after it was resolved, then it leaves
Redis, its index entries included.

The incident's own keys expire by themselves: the write that resolves it sets their expiry (see
the store). The global indexes can't expire entry by entry, so the resolved index
(`incidents:resolved`, scored by expiry) tells a sweep which entries to remove once an incident
is due. Every process sweeps once a minute; each step is idempotent and touches one Cluster
slot, so any number of processes may sweep at once.

The sweep also repairs what a process that died mid-resolution left (an incident resolved but
still in the open index), and gives an expiry to incidents resolved before retention existed:
counted from the first sweep that sees them, so upgrading never deletes anything at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot import keys
from bot.errors import StoreUnavailable
from bot.logs import Throttled
from bot.models import Incident, Status, incident_id_for, utcnow
from bot.store import IncidentStore, expiry_ms, expiry_score, translate_errors

log = logging.getLogger(__name__)

SWEEP_BATCH = 100  # due incidents forgotten per step
CHECK_BATCH = 200  # incident numbers checked per sweep for a missing expiry
MAX_BATCHES = 10  # steps per sweep; the next sweep goes on from there

# Delete every key of an incident that is due, unless its record is there and not resolved
# (never happens, unless a number was reused after a data loss: then the index entry goes alone),
# or its record expires after ARGV[2] (unix ms): the index was scored by a process with a shorter
# INCIDENT_RETENTION than the one that resolved it. Then the record's own expiry (unix ms) is
# returned, and the index is scored again by it.
_FORGET = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['status'] ~= ARGV[1] then return 0 end
if raw then
  local expires = redis.pcall('PEXPIRETIME', KEYS[1])
  if type(expires) == 'number' and expires > tonumber(ARGV[2]) then return expires end
end
redis.call('DEL', unpack(KEYS))
return 1
"""
# How much later than its index entry a record may expire and still be taken for due.
EXPIRY_SLACK_MS = 60_000

# Give a resolved incident without an expiry one (ARGV[1], ms); 0 if it has one or is not resolved.
_ADOPT = """
local raw = redis.call('GET', KEYS[1])
if not raw or cjson.decode(raw)['status'] ~= ARGV[2] then return 0 end
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
for i = 1, #KEYS do redis.call('PEXPIREAT', KEYS[i], ARGV[1]) end
return 1
"""

# Drop due members (ARGV[2..]) from the resolved index, unless one was given a later expiry since.
_DROP_DUE = """
local dropped = 0
for i = 2, #ARGV do
  local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '')
  if score and score <= tonumber(ARGV[1]) then dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return dropped
"""

# Move the checked-up-to number forward, never back.
_CHECKED_UP_TO = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class Retention:
    def __init__(self, store: IncidentStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.redis = store.redis
        self.clock = clock
        self._forget = self.redis.register_script(_FORGET)
        self._adopt = self.redis.register_script(_ADOPT)
        self._drop_due = self.redis.register_script(_DROP_DUE)
        self._checked_up_to = self.redis.register_script(_CHECKED_UP_TO)
        self._warn = Throttled(log)

    async def run(self) -> int:
        """One sweep, for the clock: a store that does not answer is logged once a minute."""
        try:
            forgotten = await self.sweep()
        except StoreUnavailable as exc:
            self._warn.warn("store", "retention sweep skipped, store unavailable: %s", exc)
            return 0
        if forgotten:
            log.info("%d resolved incident(s) past their retention left Redis", forgotten)
        return forgotten

    async def sweep(self) -> int:
        """Remove what is left of every incident past its retention; returns how many."""
        now = self.clock()
        await self.close_strays(now)
        await self.adopt_unexpiring(now)
        forgotten = 0
        for _ in range(MAX_BATCHES):
            done = await self.forget_due(now)
            forgotten += done
            if done < SWEEP_BATCH:
                break
        return forgotten

    @translate_errors
    async def close_strays(self, now: datetime) -> None:
        """Open-index entries of incidents resolved (a process died before it closed them) or
        gone (expired meanwhile): closed, or forgotten."""
        ids = await self.store.open_incident_ids()
        found = await self.store.get_incidents(ids)
        for incident in found.values():
            if incident.is_resolved:
                await self._give_expiry(incident, now)  # if it was resolved before retention
                await self.store.close_incident(incident)
        await self._unindex([i for i in ids if i not in found])

    @translate_errors
    async def adopt_unexpiring(self, now: datetime) -> None:
        """Resolved incidents without an expiry (resolved before retention existed): the next
        CHECK_BATCH incident numbers are checked, once each. (Those resolved while
        INCIDENT_RETENTION was 0 are kept forever, as they were when resolved.)"""
        checked = int(await self.redis.get(keys.RETENTION_CHECKED) or 0)
        last = int(await self.redis.get(keys.SEQUENCE) or 0)
        if checked >= last:
            return
        upto = min(checked + CHECK_BATCH, last)
        found = await self.store.get_incidents([incident_id_for(n) for n in range(checked + 1, upto + 1)])
        for incident in found.values():
            if incident.is_resolved:
                await self._give_expiry(incident, now)
        await self._checked_up_to(keys=[keys.RETENTION_CHECKED], args=[upto])

    async def _give_expiry(self, incident: Incident, now: datetime) -> None:
        retention = self.store.retention
        if not retention:
            # Kept forever: listed for export all the same.
            await self.redis.zadd(keys.RESOLVED, {incident.id: math.inf}, nx=True)
            return
        expires = now + retention
        adopt: list[str | int] = [expiry_ms(expires), Status.RESOLVED.value]
        if await self._adopt(keys=keys.incident_keys(incident.id), args=adopt):
            await self.redis.zadd(keys.RESOLVED, {incident.id: expiry_score(expires)})

    @translate_errors
    async def forget_due(self, now: datetime) -> int:
        """Up to SWEEP_BATCH incidents due by `now`: their keys (whatever did not expire by
        itself), their index entries, then their resolved-index entry. Returns how many were due."""
        found: list[Any] = await self.redis.zrangebyscore(
            keys.RESOLVED, "-inf", expiry_score(now), start=0, num=SWEEP_BATCH, withscores=True
        )
        listed = [(str(i), float(score)) for i, score in found]
        due = [i for i, _ in listed]
        if not due:
            return 0

        def forget(incident_id: str, score: float) -> Awaitable[Any]:
            latest = int(score * 1000) + EXPIRY_SLACK_MS
            return self._forget(keys=keys.incident_keys(incident_id), args=[Status.RESOLVED.value, latest])

        results = [int(r) for r in await asyncio.gather(*(forget(i, score) for i, score in listed))]
        later = {i: r for i, r in zip(due, results, strict=True) if r > 1}
        if later:
            # Still kept: due when its record expires, not before.
            await self.redis.zadd(keys.RESOLVED, {i: ms / 1000 for i, ms in later.items()}, xx=True)
        await self._unindex([i for i, r in zip(due, results, strict=True) if r == 1])
        # Last, so a sweep that stops halfway leaves the entry for the next one.
        await self._drop_due(keys=[keys.RESOLVED], args=[expiry_score(now), *due])
        return len(due)

    @translate_errors
    async def _unindex(self, incident_ids: list[str]) -> None:
        """Drop the global index entries of incidents that are gone."""
        if not incident_ids:
            return
        gone = set(incident_ids)
        async for channel, holder in self.redis.hscan_iter(keys.BY_CHANNEL, count=500):
            if holder in gone:
                await self.store.release_channel(str(channel), str(holder))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.OPEN, *incident_ids)
            pipe.zrem(keys.OUTBOX_DUE, *incident_ids)
            await pipe.execute()
