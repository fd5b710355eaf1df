"""The shared reminder schedule: claims are exclusive, confirmations move the clock on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from bot.schedule_store import ScheduleStore

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
EVERY = timedelta(seconds=4)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_nothing_is_claimed_before_it_is_due(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.schedule("INC-1", at(4), EVERY)
    assert await schedule.claim_due(at(3.9)) == []
    [claim] = await schedule.claim_due(at(4))
    assert (claim.member, claim.due_at, claim.missed) == ("INC-1", at(4), 1)


async def test_a_claim_is_exclusive_until_its_lease_expires(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis, lease=timedelta(seconds=30))
    await schedule.schedule("INC-1", at(4), EVERY)
    first = await schedule.claim_due(at(5))
    assert [c.member for c in first] == ["INC-1"]
    assert await schedule.claim_due(at(6)) == []
    # Never confirmed (the process died): after the lease it is claimed again, same due time.
    [again] = await schedule.claim_due(at(36))
    assert again.due_at == at(4) and again.token == first[0].token


async def test_confirm_sets_the_next_due_time_and_counts_missed(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.schedule("INC-1", at(4), EVERY)
    [claim] = await schedule.claim_due(at(4.2))
    assert await schedule.confirm(claim, at(4.3))
    assert await schedule.due_at("INC-1") == at(8)
    [second] = await schedule.claim_due(at(8))
    assert second.missed == 2


async def test_a_long_outage_fires_once_then_resumes_from_now(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.schedule("INC-1", at(4), EVERY)
    claims = await schedule.claim_due(at(100))  # down for 25 intervals
    assert len(claims) == 1 and claims[0].lateness(at(100)) == timedelta(seconds=96)
    await schedule.confirm(claims[0], at(100))
    assert await schedule.due_at("INC-1") == at(104)


async def test_rescheduling_during_delivery_voids_the_claim(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.schedule("INC-1", at(4), EVERY)
    [claim] = await schedule.claim_due(at(4))
    await schedule.schedule("INC-1", at(20), EVERY)  # an update arrived meanwhile
    assert not await schedule.confirm(claim, at(5))
    assert await schedule.due_at("INC-1") == at(20)
    [fresh] = await schedule.claim_due(at(20))
    assert fresh.missed == 1


async def test_cancel_stops_reminders(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.schedule("INC-1", at(4), EVERY)
    await schedule.cancel("INC-1")
    assert await schedule.claim_due(at(1000)) == []
    assert await schedule.due_at("INC-1") is None


async def test_ensure_keeps_an_earlier_due_time(any_redis: aioredis.Redis) -> None:
    schedule = ScheduleStore(any_redis)
    await schedule.ensure("digest", at(60), timedelta(seconds=60))
    await schedule.ensure("digest", at(90), timedelta(seconds=60))  # a later restart
    assert await schedule.due_at("digest") == at(60)
    await schedule.ensure("digest", at(30), timedelta(seconds=30))  # a shorter interval
    assert await schedule.due_at("digest") == at(30)


async def test_concurrent_claimers_get_each_reminder_exactly_once(any_redis: aioredis.Redis) -> None:
    """Eight claimers race over 200 due reminders: every one is claimed by exactly one."""
    schedule = ScheduleStore(any_redis)
    for n in range(200):
        await schedule.schedule(f"INC-{n}", at(n % 10), EVERY)
    stores = [ScheduleStore(any_redis) for _ in range(8)]
    results = await asyncio.gather(*(s.claim_due(at(10), limit=7) for s in stores for _ in range(5)))
    claimed = [c.member for batch in results for c in batch]
    assert len(claimed) == len(set(claimed)) == 200
