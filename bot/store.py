"""Redis, the bot's only state. All reads and writes of incident data go through IncidentStore."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError
from redis.retry import Retry

from bot import keys
from bot.models import (
    ChecklistMessage,
    Incident,
    MessageState,
    Tick,
    TimelineEvent,
    incident_id_for,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class StoreUnavailable(Exception):
    """Redis could not be reached; nothing was changed."""


class IncidentNotFound(Exception):
    pass


class IncidentExists(Exception):
    pass


class NotAChecklistItem(Exception):
    """The clicked item is not on the message it was clicked in (stale or foreign payload)."""


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    return wrapper


# Ticks and unticks in one round trip: check that the item belongs to the message, write the
# tick only when it changes something, append to the timeline, bump the message's revision,
# and return everything needed to re-render the message.
_TICK_SCRIPT = """
local message = redis.call('HGET', KEYS[1], ARGV[1])
if not message then return {'no_message'} end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return {'no_item'} end
local changed
if ARGV[3] == '1' then
  changed = redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[4])
else
  changed = redis.call('HDEL', KEYS[3], ARGV[2])
end
local rev
if changed == 1 then
  redis.call('RPUSH', KEYS[5], ARGV[5])
  rev = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
else
  rev = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
end
return {'ok', changed, rev, message, redis.call('HGETALL', KEYS[3])}
"""


# A new incident and its first timeline event, in one round trip, only if the id is unused.
_CREATE_SCRIPT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose failures surface quickly: every Slack request has a 3-second budget.

    The pool blocks (briefly) when every connection is busy: a burst of requests waits its turn
    instead of failing as if Redis were down."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=1.0,
        decode_responses=True,
        socket_connect_timeout=0.5,
        socket_timeout=0.8,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)


def embedded() -> aioredis.Redis:
    """An in-process Redis (fakeredis), for running without a server. State dies with the process."""
    import fakeredis

    client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client


def _pairs(flat: list[str]) -> Iterable[tuple[str, str]]:
    return zip(flat[0::2], flat[1::2], strict=True)


class IncidentStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._tick = redis.register_script(_TICK_SCRIPT)
        self._create = redis.register_script(_CREATE_SCRIPT)

    @translate_errors
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()

    # -- incidents ---------------------------------------------------------------------------

    @translate_errors
    async def next_incident_id(self) -> tuple[str, int]:
        number = int(await self.redis.incr(keys.SEQUENCE))
        return incident_id_for(number), number

    @translate_errors
    async def create_incident(self, incident: Incident, event: TimelineEvent) -> None:
        """Store a new incident and its first timeline event; never touches an existing one."""
        created = await self._create(
            keys=[keys.incident(incident.id), keys.timeline(incident.id)],
            args=[incident.model_dump_json(), event.model_dump_json()],
        )
        if not created:
            raise IncidentExists(f"incident {incident.id} already exists")
        # The open-incidents index lives in its own slot, so it is written after the incident.
        await self.redis.zadd(keys.OPEN, {incident.id: incident.declared_at.timestamp()})

    @translate_errors
    async def get_incident(self, incident_id: str) -> Incident:
        raw = await self.redis.get(keys.incident(incident_id))
        if raw is None:
            raise IncidentNotFound(incident_id)
        return Incident.model_validate_json(raw)

    @translate_errors
    async def incident_for_channel(self, channel_id: str) -> Incident | None:
        incident_id = await self.redis.hget(keys.BY_CHANNEL, channel_id)
        if incident_id is None:
            return None
        raw = await self.redis.get(keys.incident(str(incident_id)))
        return None if raw is None else Incident.model_validate_json(raw)

    @translate_errors
    async def update_incident(
        self,
        incident_id: str,
        change: Callable[[Incident], Incident],
        event: TimelineEvent | None = None,
    ) -> Incident:
        """Read-modify-write under WATCH, so concurrent updates never overwrite each other."""
        key = keys.incident(incident_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise IncidentNotFound(incident_id)
                    updated = change(Incident.model_validate_json(raw))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, updated.model_dump_json())
                    if event is not None:
                        pipe.rpush(keys.timeline(incident_id), event.model_dump_json())
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    @translate_errors
    async def index_channel(self, channel_id: str, incident_id: str) -> None:
        await self.redis.hset(keys.BY_CHANNEL, channel_id, incident_id)

    @translate_errors
    async def close_incident(self, incident_id: str, unindex_channel: str | None) -> None:
        """Drop a resolved incident from the open index (and from a borrowed channel)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.OPEN, incident_id)
            if unindex_channel is not None:
                pipe.hdel(keys.BY_CHANNEL, unindex_channel)
            await pipe.execute()

    @translate_errors
    async def get_incidents(self, incident_ids: list[str]) -> dict[str, Incident]:
        """Several incidents in one round trip (a pipeline, not MGET: the keys span slots);
        ids that have no incident are left out."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for incident_id in incident_ids:
                pipe.get(keys.incident(incident_id))
            raw = await pipe.execute()
        return {i: Incident.model_validate_json(r) for i, r in zip(incident_ids, raw, strict=True) if r}

    @translate_errors
    async def open_incident_ids(self) -> list[str]:
        return [str(i) for i in await self.redis.zrange(keys.OPEN, 0, -1)]

    # -- timeline ----------------------------------------------------------------------------

    @translate_errors
    async def append_event(self, incident_id: str, event: TimelineEvent) -> None:
        await self.redis.rpush(keys.timeline(incident_id), event.model_dump_json())

    @translate_errors
    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        raw = await self.redis.lrange(keys.timeline(incident_id), 0, -1)
        return [TimelineEvent.model_validate_json(r) for r in raw]

    # -- checklists --------------------------------------------------------------------------

    @translate_errors
    async def add_checklist_message(
        self, incident_id: str, message: ChecklistMessage, event: TimelineEvent | None = None
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._queue_checklist_message(pipe, incident_id, message)
            if event is not None:
                pipe.rpush(keys.timeline(incident_id), event.model_dump_json())
            await pipe.execute()

    @staticmethod
    def _queue_checklist_message(pipe: Pipeline, incident_id: str, message: ChecklistMessage) -> None:
        pipe.hset(keys.messages(incident_id), message.ts, message.model_dump_json())
        pipe.hset(keys.items(incident_id), mapping={i: message.ts for i in message.item_ids()})
        pipe.hsetnx(keys.revisions(incident_id), message.ts, 0)

    @translate_errors
    async def checklist_messages(self, incident_id: str) -> list[ChecklistMessage]:
        raw = await self.redis.hgetall(keys.messages(incident_id))
        found = [ChecklistMessage.model_validate_json(v) for v in raw.values()]
        return sorted(found, key=lambda m: float(m.ts))

    @translate_errors
    async def set_tick(
        self,
        incident_id: str,
        message_ts: str,
        item: str,
        tick: Tick | None,
        event: TimelineEvent,
    ) -> tuple[bool, MessageState]:
        """Tick (or untick, when `tick` is None) one item; returns (changed, state after)."""
        reply: list[Any] = await self._tick(
            keys=[
                keys.messages(incident_id),
                keys.items(incident_id),
                keys.ticks(incident_id),
                keys.revisions(incident_id),
                keys.timeline(incident_id),
            ],
            args=[
                message_ts,
                item,
                "1" if tick is not None else "0",
                tick.model_dump_json() if tick is not None else "",
                event.model_dump_json(),
            ],
        )
        if reply[0] == "no_message":
            raise NotAChecklistItem(f"{incident_id} has no checklist message {message_ts}")
        if reply[0] == "no_item":
            raise NotAChecklistItem(f"item {item} is not on message {message_ts}")
        _, changed, rev, message, flat_ticks = reply
        state = MessageState(
            incident_id=incident_id,
            message=ChecklistMessage.model_validate_json(message),
            ticks={k: Tick.model_validate_json(v) for k, v in _pairs(flat_ticks)},
            rev=int(rev),
        )
        return bool(changed), state

    @translate_errors
    async def message_state(self, incident_id: str, message_ts: str) -> MessageState:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.messages(incident_id), message_ts)
            pipe.hgetall(keys.ticks(incident_id))
            pipe.hget(keys.revisions(incident_id), message_ts)
            message, ticks, rev = await pipe.execute()
        if message is None:
            raise NotAChecklistItem(f"{incident_id} has no checklist message {message_ts}")
        return MessageState(
            incident_id=incident_id,
            message=ChecklistMessage.model_validate_json(message),
            ticks={k: Tick.model_validate_json(v) for k, v in ticks.items()},
            rev=int(rev or 0),
        )

    @translate_errors
    async def message_revision(self, incident_id: str, message_ts: str) -> int:
        return int(await self.redis.hget(keys.revisions(incident_id), message_ts) or 0)

    @translate_errors
    async def ticks(self, incident_id: str) -> dict[str, Tick]:
        raw = await self.redis.hgetall(keys.ticks(incident_id))
        return {str(k): Tick.model_validate_json(v) for k, v in raw.items()}
