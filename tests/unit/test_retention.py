"""Retention: a resolved incident expires from Redis INCIDENT_RETENTION after it was resolved, its
index entries included; an open one never does. On fakeredis and a real Redis (one test on a
Cluster), with a controllable clock that starts at the real time, since Redis expires keys by
its own clock."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.app import create_app
from bot.effects import Reminder, reminder_effects
from bot.models import ChecklistMessage, Incident, Phase, Severity, Status
from bot.playbook import load_playbook
from bot.retention import Retention
from bot.schedule_store import ScheduleStore
from bot.scheduler import ReminderClock
from bot.service import IncidentService
from bot.settings import Settings
from bot.store import Change, IncidentStore, expiry_ms
from tests.conftest import FakeClock

RETENTION = timedelta(hours=1)
TS = "1764079200.000100"

# fakeredis and a real server; a Cluster costs a few seconds to start, so one test runs there.
ON_REDIS = pytest.mark.parametrize(
    "any_redis", ["fakeredis", pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)
ON_CLUSTER = pytest.mark.parametrize(
    "any_redis", [pytest.param("cluster", marks=pytest.mark.redis)], indirect=True
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def build(redis: aioredis.Redis, clock: FakeClock, retention: timedelta = RETENTION) -> IncidentService:
    store = IncidentStore(redis, retention=retention)
    return IncidentService(store, ScheduleStore(redis), load_playbook(), clock)


async def declare(
    service: IncidentService, request: str, channel: str | None = None, *, borrowed: bool = False
) -> Incident:
    """An incident declared, running in a channel of its own or borrowing the one it was declared
    in (as the delivery loop records it)."""
    origin = channel or "C0"
    incident = await service.declare_incident(
        Severity.SEV2, "Checkout failing", "U1", origin, request_id=request, create_channel=not borrowed
    )
    if channel is None:
        return incident
    now = service.clock()
    if not borrowed:
        await service.store.index_channel(channel, incident.id)
    name = None if borrowed else f"inc-{incident.number}"
    changed, _ = await service.store.update_incident(
        incident.id, lambda i: Change(i.in_channel(channel, name, not borrowed, now))
    )
    return changed


async def work_it(service: IncidentService, incident: Incident) -> None:
    """A checklist posted and ticked, and a reminder queued: every per-incident key exists."""
    sections = service.checklists_for(incident.severity)[Phase.ASSESS]
    posted = ChecklistMessage(
        channel=incident.channel_id or "C0", ts=TS, phase=Phase.ASSESS, sections=tuple(sections)
    )
    await service.store.update_incident(incident.id, lambda i: Change(i, checklist=posted))
    item = posted.item_ids()[0]
    await service.checklists.tick_item(incident.id, incident.uid, TS, item, "U2", checked=True)
    reminder = Reminder(missed=1, due_at=service.clock(), late=False)
    effects = reminder_effects(incident.revision, "1.5", [reminder])
    await service.store.add_effects(incident.id, effects, service.clock(), once="1.5")


async def expiries(redis: aioredis.Redis, incident_id: str) -> dict[str, int]:
    """Key -> PEXPIRETIME (-1: no expiry) for each key of the incident that exists."""
    found = {}
    for key in keys.incident_keys(incident_id):
        if await redis.exists(key):
            found[key] = int(await redis.pexpiretime(key))
    return found


async def leftovers(redis: aioredis.Redis, incident_id: str) -> list[str]:
    return sorted(str(k) for k in await redis.keys(keys.incident(incident_id) + "*"))


@ON_REDIS
async def test_resolving_sets_every_key_to_expire_retention_after_the_resolution(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    service = build(any_redis, clock)
    incident = await declare(service, "r1", channel="C1")
    await work_it(service, incident)
    assert set(await expiries(any_redis, incident.id)) == set(keys.incident_keys(incident.id))
    assert set((await expiries(any_redis, incident.id)).values()) == {-1}  # open: kept

    resolved_at = clock.advance(600)
    await service.resolve(incident.id, "U1", "r-resolve")

    expected = expiry_ms(resolved_at + RETENTION)
    assert await expiries(any_redis, incident.id) == {k: expected for k in keys.incident_keys(incident.id)}
    assert await any_redis.zscore(keys.RESOLVED, incident.id) == expected / 1000
    assert await service.store.open_incident_ids() == []
    assert await service.store.resolved_incident_ids() == [incident.id]

    # Later writes keep the expiry; keys made since (the outbox, emptied by delivery) inherit it.
    for effect in await service.store.outbox(incident.id):
        await service.store.complete_effect(incident.id, effect.id)
    assert not await any_redis.exists(keys.outbox(incident.id))
    clock.advance(600)
    await service.investigation.add_followup(incident.id, "Alert on pool saturation", "U2", "r-follow")
    assert set((await expiries(any_redis, incident.id)).values()) == {expected}
    assert keys.outbox(incident.id) in await expiries(any_redis, incident.id)


@ON_REDIS
async def test_the_sweep_forgets_an_expired_incident_with_its_index_entries(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    await sweep_after_expiry(any_redis, clock)


@ON_CLUSTER
async def test_the_sweep_on_a_cluster(any_redis: aioredis.Redis, clock: FakeClock) -> None:
    """Each step touches one slot: the incident's keys, the channel index, the open index and
    the resolved index live on different masters."""
    await sweep_after_expiry(any_redis, clock)


async def sweep_after_expiry(any_redis: aioredis.Redis, clock: FakeClock) -> None:
    service = build(any_redis, clock)
    dedicated = await declare(service, "r1", channel="C1")
    await work_it(service, dedicated)
    borrowed = await declare(service, "r2", channel="C7", borrowed=True)
    assert await any_redis.hgetall(keys.CLAIMED_AT) != {}
    still_open = await declare(service, "r3", channel="C3")
    await service.resolve(dedicated.id, "U1", "r-resolve-1")
    await service.resolve(borrowed.id, "U2", "r-resolve-2")
    # A borrowed channel is let go at once, its claim time with it; a dedicated one stays indexed
    # (its channel still finds the incident) until the incident expires.
    assert await any_redis.hgetall(keys.BY_CHANNEL) == {"C1": dedicated.id, "C3": still_open.id}
    assert await any_redis.hgetall(keys.CLAIMED_AT) == {}

    sweeps = [Retention(service.store, clock), Retention(build(any_redis, clock).store, clock)]
    assert await sweeps[0].sweep() == 0
    clock.advance(RETENTION.total_seconds() - 1)
    assert await sweeps[0].sweep() == 0
    assert await leftovers(any_redis, dedicated.id)

    clock.advance(2)
    # Two processes sweeping at once: each step is idempotent.
    await asyncio.gather(*(s.sweep() for s in sweeps))

    assert await leftovers(any_redis, dedicated.id) == []
    assert await leftovers(any_redis, borrowed.id) == []
    assert await any_redis.hgetall(keys.BY_CHANNEL) == {"C3": still_open.id}
    assert await any_redis.zrange(keys.RESOLVED, 0, -1) == []
    assert await any_redis.zrange(keys.OPEN, 0, -1) == [still_open.id]
    assert set(await any_redis.zrange(keys.OUTBOX_DUE, 0, -1)) <= {still_open.id}
    # The open incident is untouched, and never expires.
    assert await service.store.get_incident(still_open.id) == still_open
    assert set((await expiries(any_redis, still_open.id)).values()) == {-1}
    assert await service.store.incident_for_channel("C3") == still_open


@ON_REDIS
async def test_keys_redis_expired_itself_leave_index_entries_for_the_sweep(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    # Resolved longer ago than the retention: Redis drops the keys at once.
    now = clock.now
    clock.now = now - RETENTION - timedelta(minutes=10)
    service = build(any_redis, clock)
    incident = await declare(service, "r1", channel="C1")
    clock.advance(60)
    await service.resolve(incident.id, "U1", "r-resolve")
    clock.now = now

    assert await leftovers(any_redis, incident.id) == []
    assert await any_redis.hget(keys.BY_CHANNEL, "C1") == incident.id
    assert await service.store.incident_for_channel("C1") is None

    assert await Retention(service.store, clock).sweep() == 1
    assert await any_redis.hgetall(keys.BY_CHANNEL) == {}
    assert await any_redis.zcard(keys.RESOLVED) == 0


@ON_REDIS
async def test_retention_zero_keeps_resolved_incidents_forever(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    service = build(any_redis, clock, retention=timedelta(0))
    incident = await declare(service, "r1", channel="C1")
    await work_it(service, incident)
    await service.resolve(incident.id, "U1", "r-resolve")

    assert set((await expiries(any_redis, incident.id)).values()) == {-1}
    assert await any_redis.zscore(keys.RESOLVED, incident.id) == math.inf
    clock.advance(timedelta(days=3650).total_seconds())
    assert await Retention(service.store, clock).sweep() == 0
    assert len(await leftovers(any_redis, incident.id)) == len(keys.incident_keys(incident.id))
    assert await service.store.resolved_incident_ids() == [incident.id]
    assert await service.store.incident_for_channel("C1") is not None


@ON_REDIS
async def test_incidents_resolved_before_retention_get_a_full_period_from_the_first_sweep(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    # As a bot before retention left them: no expiry, not in the resolved index.
    old = build(any_redis, clock, retention=timedelta(0))
    incident = await declare(old, "r1", channel="C1")
    await work_it(old, incident)
    await old.resolve(incident.id, "U1", "r-resolve")
    still_open = await declare(old, "r2")
    # And one whose process died before it left the open index.
    stuck = await declare(old, "r3")
    await old.store.update_incident(stuck.id, lambda i: Change(i.resolved(clock.now)))
    await any_redis.delete(keys.RESOLVED)

    clock.advance(timedelta(days=400).total_seconds())
    service = build(any_redis, clock)
    sweep = Retention(service.store, clock)
    assert await sweep.sweep() == 0
    expected = expiry_ms(clock.now + RETENTION)
    assert await expiries(any_redis, incident.id) == {k: expected for k in keys.incident_keys(incident.id)}
    assert await any_redis.zscore(keys.RESOLVED, incident.id) == expected / 1000
    assert set((await expiries(any_redis, stuck.id)).values()) == {expected}
    assert await any_redis.zscore(keys.RESOLVED, stuck.id) == expected / 1000
    assert await service.store.open_incident_ids() == [still_open.id]
    assert set((await expiries(any_redis, still_open.id)).values()) == {-1}

    clock.advance(60)
    await sweep.sweep()  # checked once: the expiry does not move
    assert set((await expiries(any_redis, incident.id)).values()) == {expected}

    clock.advance(RETENTION.total_seconds())
    assert await sweep.sweep() == 2
    assert await leftovers(any_redis, incident.id) == []
    assert await leftovers(any_redis, stuck.id) == []
    assert await any_redis.hgetall(keys.BY_CHANNEL) == {}


@ON_REDIS
async def test_the_sweep_closes_an_incident_a_dead_process_left_open(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    service = build(any_redis, clock)
    incident = await declare(service, "r1")
    resolved_at = clock.advance(60)
    # The resolution stored, then the process died before it updated the indexes.
    await service.store.update_incident(incident.id, lambda i: Change(i.resolved(resolved_at)))
    assert await service.store.open_incident_ids() == [incident.id]

    await Retention(service.store, clock).sweep()

    assert await service.store.open_incident_ids() == []
    assert await any_redis.zscore(keys.RESOLVED, incident.id) == expiry_ms(resolved_at + RETENTION) / 1000


@ON_REDIS
async def test_a_process_with_a_shorter_retention_never_deletes_an_incident_early(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    """Resolved under 90 days by a process that died before it listed it; a process set to one hour
    lists it by its own setting, but the sweep goes by when the record itself expires."""
    long = build(any_redis, clock, retention=timedelta(days=90))
    incident = await declare(long, "r1")
    resolved_at = clock.advance(60)
    await long.store.update_incident(incident.id, lambda i: Change(i.resolved(resolved_at)))

    short = build(any_redis, clock)  # RETENTION, one hour
    await Retention(short.store, clock).sweep()  # closes it, scored an hour after the resolution
    clock.advance(RETENTION.total_seconds() + 120)
    assert await Retention(short.store, clock).sweep() == 1  # due by the index...

    assert await short.store.get_incident(incident.id) == await long.store.get_incident(incident.id)
    kept_until = expiry_ms(resolved_at + timedelta(days=90)) / 1000
    assert await any_redis.zscore(keys.RESOLVED, incident.id) == pytest.approx(kept_until, abs=2)


@ON_REDIS
async def test_an_incident_open_again_keeps_its_keys_for_good(
    any_redis: aioredis.Redis, clock: FakeClock
) -> None:
    """The bot has no way to reopen an incident; were one added, its keys would not expire."""
    service = build(any_redis, clock)
    incident = await declare(service, "r1", channel="C1")
    await work_it(service, incident)
    await service.resolve(incident.id, "U1", "r-resolve")
    assert -1 not in (await expiries(any_redis, incident.id)).values()

    def reopened(current: Incident) -> Change:
        data = current.model_dump()
        data.update(status=Status.INVESTIGATING, revision=current.revision + 1)
        return Change(Incident.model_validate(data))

    stored, _ = await service.store.update_incident(incident.id, reopened)

    assert set((await expiries(any_redis, incident.id)).values()) == {-1}
    clock.advance(RETENTION.total_seconds() + 1)
    await Retention(service.store, clock).sweep()
    assert await service.store.get_incident(incident.id) == stored
    assert await any_redis.zcard(keys.RESOLVED) == 0


@ON_REDIS
async def test_an_open_incident_is_never_swept(any_redis: aioredis.Redis, clock: FakeClock) -> None:
    service = build(any_redis, clock)
    incident = await declare(service, "r1", channel="C1")
    await work_it(service, incident)
    stored = await service.store.get_incident(incident.id)
    ticks = await service.store.ticks(incident.id)
    clock.advance(timedelta(days=3650).total_seconds())

    assert await Retention(service.store, clock).sweep() == 0

    assert set((await expiries(any_redis, incident.id)).values()) == {-1}
    assert await service.store.open_incident_ids() == [incident.id]
    assert await service.store.get_incident(incident.id) == stored
    assert await service.store.ticks(incident.id) == ticks
    assert await service.store.incident_for_channel("C1") == stored

    # Listed as resolved and due by mistake (a number reused after a data loss): only the
    # resolved-index entry goes.
    await any_redis.zadd(keys.RESOLVED, {incident.id: 0})
    assert await Retention(service.store, clock).sweep() == 1
    assert await any_redis.zcard(keys.RESOLVED) == 0
    assert await service.store.get_incident(incident.id) == stored
    assert await service.store.open_incident_ids() == [incident.id]
    assert await service.store.incident_for_channel("C1") == stored



async def test_the_bot_sweeps_once_a_minute_from_its_reminder_clock(fake_redis: aioredis.Redis) -> None:
    settings = Settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", INCIDENT_RETENTION="2h")
    bot = create_app(settings, redis=fake_redis)
    assert bot.store.retention == timedelta(hours=2)
    assert bot.clock.housekeeping is not None
    assert bot.clock.housekeeping_seconds == 60

    swept = asyncio.Event()

    async def sweep() -> int:
        swept.set()
        return 0

    async def no_reminders() -> int:
        return 0

    clock = ReminderClock(no_reminders, poll_seconds=60, housekeeping=sweep, housekeeping_seconds=0.05)
    clock.start()
    try:
        await asyncio.wait_for(swept.wait(), timeout=5)
    finally:
        clock.stop()
