"""Redis, the bot's only state. All reads and writes of incident data go through IncidentStore."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import BusyLoadingError, NoScriptError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot import keys
from bot.effects import Effect, Work, effects_for
from bot.errors import (
    IncidentExists,
    IncidentNotFound,
    NotAChecklistItem,
    StaleReference,
    StoreLost,
    StoreUnavailable,
)
from bot.logs import Throttled, about_incident
from bot.models import (
    ChecklistMessage,
    Incident,
    MessageState,
    Status,
    Tick,
    TimelineEvent,
    incident_id_for,
)
from bot.redis_url import Topology, parse_redis_url

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _report_failure(args)
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc
        except (RedisError, RedisClusterException) as exc:
            # Redis answered but would not do it: READONLY on a demoted master, CLUSTERDOWN,
            # TRYAGAIN, MOVED/ASK retries spent, LOADING, BUSY, OOM, NOPERM... Nothing was stored.
            _report_failure(args)
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except AttributeError as exc:
            if not _raised_in_redis_py(exc):
                raise
            _report_failure(args)
            # redis-py's asyncio Cluster client can trip over a connection another task closed
            # while a failover is under way ('NoneType' object has no attribute 'writelines'):
            # a store that does not answer, and a write that may or may not have gone out.
            raise StoreUnavailable(f"redis-py: {type(exc).__name__}: {exc}", written=None) from exc

    return wrapper


def _report_failure(args: tuple[object, ...]) -> None:
    """Tell the store whose method failed (its `on_failure`, the metrics), once per failure:
    where redis-py's error becomes StoreUnavailable, which no outer method translates again."""
    on_failure = getattr(args[0], "on_failure", None) if args else None
    if callable(on_failure):
        on_failure()


def _raised_in_redis_py(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc` is in the redis package (not in this code)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}redis{os.sep}" in tb.tb_frame.f_code.co_filename


# Ticks and unticks in one round trip: check that the item belongs to the message, write the
# tick only when it changes something, append to the timeline, bump the message's revision,
# and return everything needed to re-render the message.
_TICK_SCRIPT = """
local raw = redis.call('GET', KEYS[6])
if not raw or cjson.decode(raw)['uid'] ~= ARGV[6] then return {'stale'} end
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


# A new incident, its first timeline event and the Slack work it implies, in one round trip,
# only if the id is unused. Otherwise returns the incident stored under that id.
_CREATE_SCRIPT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return redis.call('GET', KEYS[1]) end
redis.call('RPUSH', KEYS[2], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
return 1
"""

# The number of a declaring request: the one its first try took, else the next one; -1 when
# the store is not the one this bot knows (its identity vanished or changed).
_NUMBER = """
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
local taken = redis.call('GET', KEYS[2])
if taken then return tonumber(taken) end
local number = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], number, 'EX', ARGV[1])
return number
"""

# Claim incidents whose outbox is due: each claimed one moves a lease into the future, and the
# new score is the claim's token, so finishing it never drops a hint written meanwhile.
_CLAIM_OUTBOX = """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
local token = tostring(tonumber(ARGV[1]) + tonumber(ARGV[2]))
for _, member in ipairs(found) do
  redis.call('ZADD', KEYS[1], token, member)
  out[#out + 1] = member
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], member)
end
return out
"""

# Done with a claimed incident: drop the hint (or set when to look again), unless new work was
# hinted since the claim (its score then differs from the token).
_FINISH_OUTBOX = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""

_TAKE_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# Queue effects unless this token's were queued before (ARGV[1] = '' queues always).
_ADD_EFFECTS = """
if ARGV[1] ~= '' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
end
for i = 2, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Remember the newest revision of a checklist message that Slack accepted.
_MARK_SHOWN = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

# Claim a borrowed channel for ARGV[3] if its holder is ARGV[2] ('' for none), noting when;
# returns '' when claimed, else the holder there is.
_CLAIM_CHANNEL = """
local holder = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if holder ~= ARGV[2] and holder ~= ARGV[3] then return holder end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return ''
"""

# A declaration stores its incident within WRITE_RETRY_BUDGET of claiming a borrowed channel.
CLAIM_GRACE = 10.0

# A hint written before a write is due this much later, so no delivery loop looks (and, finding
# nothing yet, drops the hint) before the write is done; the hint written after it is due at once.
HINT_GRACE = timedelta(seconds=5)

# The hint before a write. A hint already there keeps its time (a retry must not delay work
# already due) but moves by a millisecond, so a delivery loop that claimed it before this write
# can't drop it when it finishes (its token no longer matches); else one is added, due later.
_PRE_HINT = """
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if current then redis.call('ZADD', KEYS[1], tonumber(current) + 0.001, ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
"""

# Retries of a write whose answer was lost stop after this long: a Slack request has 3 seconds.
WRITE_RETRY_BUDGET = 1.5

# Write a decided change only if the incident is still the one it was decided on (its stored
# JSON, compared whole): the incident, its timeline events, its Slack work and a recorded
# checklist message, at once. 1 written, 0 the incident moved (decide again), -1 it is gone. A
# script, not WATCH/MULTI, so that WAIT can follow it on the same connection (WAIT inside MULTI
# never blocks).
#
# A resolved incident's keys expire together: ARGV[4] is when (unix ms), given by the change that
# resolves it; later changes keep the record's expiry, and keys made since (new Slack work) get it.
# ARGV[5] is '0' when the incident is open after the change: it has no expiry (were one reopened).
_UPDATE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return -1 end
if raw ~= ARGV[1] then return 0 end
local expires = redis.pcall('PEXPIRETIME', KEYS[1])
if type(expires) ~= 'number' then  -- Redis before 7.0
  local ttl, now = redis.call('PTTL', KEYS[1]), redis.call('TIME')
  expires = ttl < 0 and -1 or now[1] * 1000 + math.floor(now[2] / 1000) + ttl
end
if ARGV[4] ~= '' then expires = tonumber(ARGV[4]) end
if ARGV[5] == '0' and expires > 0 then
  for i = 2, #KEYS do redis.call('PERSIST', KEYS[i]) end
  expires = -1
end
redis.call('SET', KEYS[1], ARGV[2])
local change = cjson.decode(ARGV[3])
for _, event in ipairs(change['events']) do redis.call('RPUSH', KEYS[2], event) end
for _, pair in ipairs(change['effects']) do redis.call('HSET', KEYS[3], pair[1], pair[2]) end
for _, id in ipairs(change['done']) do redis.call('HDEL', KEYS[3], id) end
local checklist = change['checklist']
if checklist then
  redis.call('HSET', KEYS[4], checklist['ts'], checklist['json'])
  for _, item in ipairs(checklist['items']) do redis.call('HSET', KEYS[5], item, checklist['ts']) end
  redis.call('HSETNX', KEYS[6], checklist['ts'], 0)
  redis.call('HSETNX', KEYS[7], checklist['ts'], 0)
end
if expires > 0 then
  for i = 1, #KEYS do
    if i == 1 or ARGV[4] ~= '' or redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIREAT', KEYS[i], expires)
    end
  end
end
return 1
"""

CHANNEL_INDEX = [keys.BY_CHANNEL, keys.CLAIMED_AT]  # one slot

# Drop a channel's index entry and its claim time, only if `ARGV[2]` still holds the channel.
_RELEASE_CHANNEL = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class ReplicaWait:
    """After a write a user is told is saved: WAIT until `replicas` replicas have it, for at
    most `timeout_ms`. Asynchronous replication otherwise loses the last writes of a master that
    dies before they reach its replica. `replicas=0` does not wait (a server without replicas)."""

    replicas: int = 0
    timeout_ms: int = 200

    @property
    def enabled(self) -> bool:
        return self.replicas > 0 and self.timeout_ms > 0


def replica_wait_for(url: str, replicas: int | None, timeout_ms: int) -> ReplicaWait:
    """The replica wait for REDIS_URL: `replicas` if set, else 1 where Redis has replicas by
    design (Sentinel, Cluster) and 0 for a single server."""
    if replicas is None:
        replicas = 0 if parse_redis_url(url).topology is Topology.SINGLE else 1
    return ReplicaWait(replicas, timeout_ms)


# After a WAIT that timed out, writes skip waiting this long: with its replica gone (a failover
# leaves the new master alone until the old one returns), every write would pay the timeout.
UNCONFIRMED_BACKOFF = 10.0


@dataclass
class Change:
    """What one stored change writes: the incident after it, its timeline events, and the Slack
    work it implies (stored with it, delivered by the delivery loop)."""

    incident: Incident
    events: list[TimelineEvent] = field(default_factory=list)
    works: list[Work] = field(default_factory=list)
    checklist: ChecklistMessage | None = None  # a checklist message Slack accepted, to record
    done_effects: list[str] = field(default_factory=list)  # outbox entries this change completes


@dataclass(frozen=True)
class QueuedScript:
    """A script call to send in a round trip of another store's (by sha)."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]


@dataclass(frozen=True)
class OutboxClaim:
    incident_id: str
    token: str


# Every Slack request has a 3-second budget: a Redis call fails within about one second, and a
# short retry rides out a connection that dropped (or a master that just moved).
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 0.8


def _retry(retries: int) -> Retry:
    return Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=retries)


def connect(url: str, *, sentinel_password: str | None = None, max_connections: int = 64) -> aioredis.Redis:
    """A client for REDIS_URL in any of its forms (RedisUrlError when it is none of them).

    A single server gets a pool that blocks (briefly) when every connection is busy: a burst of
    requests waits its turn instead of failing as if Redis were down. A Sentinel client asks the
    sentinels for the master on every new connection, so it follows a failover by itself; a
    Cluster client follows slot moves and promotions."""
    target = parse_redis_url(url)
    if target.topology is Topology.SENTINEL:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs={
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_timeout": READ_TIMEOUT,
                "password": sentinel_password,
                "ssl": target.tls,
                "retry": Retry(NoBackoff(), 0),
            },
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT,
        )
        client: aioredis.Redis = sentinel.master_for(
            target.master,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            decode_responses=True,
            retry=_retry(3),
            max_connections=max_connections,
        )
        return client
    if target.topology is Topology.CLUSTER:
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            decode_responses=True,
            retry=_retry(2),
            max_connections=max_connections,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT,
        )
        # It answers every command the store sends, scripts and same-slot transactions included.
        return cast(aioredis.Redis, cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=1.0,
        decode_responses=True,
        retry=_retry(1),
        health_check_interval=30,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=READ_TIMEOUT,
    )
    return aioredis.Redis.from_pool(pool)


def embedded() -> aioredis.Redis:
    """An in-process Redis (fakeredis), for running without a server. State dies with the process."""
    import fakeredis

    client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client


def _never_sent(exc: BaseException) -> bool:
    """A failure to connect (refused, no master known, still loading): no command was sent, so
    nothing was written. Any other connection failure may have lost the answer of a write."""
    if isinstance(exc, MasterNotFoundError | BusyLoadingError):
        return True
    text = str(exc)
    return "connecting to" in text or "Connect call failed" in text


def _queue_script(pipe: Pipeline, script: AsyncScript, key_names: list[str], args: list[Any]) -> None:
    # As a raw command: a Redis Cluster pipeline refuses its evalsha() method, yet routes EVALSHA
    # by its keys like any keyed command.
    pipe.execute_command("EVALSHA", script.sha, len(key_names), *key_names, *args)


def _pairs(flat: list[str]) -> Iterable[tuple[str, str]]:
    return zip(flat[0::2], flat[1::2], strict=True)


def expiry_ms(at: datetime) -> int:
    """Unix milliseconds, for PEXPIREAT."""
    return int(at.timestamp() * 1000)


def expiry_score(at: datetime) -> float:
    """Unix seconds of the same millisecond as `expiry_ms`, for the resolved index."""
    return expiry_ms(at) / 1000


# The identity's value once a bot saw it vanish.
LOST = "lost:"


def _nothing() -> None:
    """No one to tell."""


class IncidentStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        replica_wait: ReplicaWait | None = None,
        clock: Callable[[], float] = time.monotonic,
        retention: timedelta = timedelta(0),
        *,
        on_write: Callable[[Incident | None, Incident], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        # Told of each stored change of an incident (before, after; before None when declared),
        # and of each operation Redis failed: the metrics.
        self.on_write = on_write
        self.on_failure = on_failure or _nothing
        self.replica_wait = replica_wait or ReplicaWait()
        self.retention = retention  # how long a resolved incident is kept; 0: forever
        self._clock = clock  # for the pause of replica waits after one timed out
        self.confirmed_writes = 0  # acknowledged writes a replica confirmed within the timeout
        self.unconfirmed_writes = 0  # acknowledged writes no replica confirmed in time (or skipped)
        self._wait_again_at = 0.0  # monotonic time before which writes do not WAIT
        self._warn = Throttled(log)
        self.identity: str | None = None  # this store's identity, once known
        self.highest_number: int | None = None  # the highest incident number this bot has seen
        self._tick = redis.register_script(_TICK_SCRIPT)
        self._create = redis.register_script(_CREATE_SCRIPT)
        self._number = redis.register_script(_NUMBER)
        self._claim_outbox = redis.register_script(_CLAIM_OUTBOX)
        self._finish_outbox = redis.register_script(_FINISH_OUTBOX)
        self._unlock = redis.register_script(_UNLOCK)
        self._take_lock = redis.register_script(_TAKE_LOCK)
        self._renew_lock = redis.register_script(_RENEW_LOCK)
        self._add_effects = redis.register_script(_ADD_EFFECTS)
        self._pre_hint = redis.register_script(_PRE_HINT)
        self._mark_shown = redis.register_script(_MARK_SHOWN)
        self._claim = redis.register_script(_CLAIM_CHANNEL)
        self._update = redis.register_script(_UPDATE)
        self._release = redis.register_script(_RELEASE_CHANNEL)
        # Sent by sha in pipelines: loaded again if Redis lost them.
        self._scripts = [
            self._tick, self._create, self._number, self._pre_hint, self._mark_shown, self._update,
            self._release,
        ]

    @translate_errors
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    @translate_errors
    async def every_master_answers(self) -> None:
        """StoreUnavailable unless every master answers: on a Cluster, one master down (before
        its replica is promoted) fails every write to its slots, so the bot is not ready."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.ping(target_nodes=RedisCluster.PRIMARIES)

    async def close(self) -> None:
        await self.redis.aclose()

    # -- incidents ---------------------------------------------------------------------------

    @translate_errors
    async def number_for(self, request_id: str) -> tuple[str, int]:
        """The next incident number, for a declaring request: a retry of the same request (its
        answer lost) gets the number its first try took, and numbers never repeat."""
        identity = await self.known_identity()
        number = int(
            await self._retrying(
                lambda: self._number(
                    keys=[keys.SEQUENCE, keys.declare_request(request_id), keys.IDENTITY],
                    args=[86400, identity],
                )
            )
        )
        if number < 0:
            await self.check_identity()
            raise StoreLost(self.highest_number)
        self.highest_number = max(self.highest_number or 0, number)
        return incident_id_for(number), number

    # -- the store's identity ----------------------------------------------------------------

    @translate_errors
    async def known_identity(self) -> str:
        """This store's identity as this bot knows it; made (or read) on first contact."""
        if self.identity is None:
            fresh = f"store-{secrets.token_hex(8)}"
            await self.redis.set(keys.IDENTITY, fresh, nx=True)
            found = await self.redis.get(keys.IDENTITY)
            if found is None or str(found).startswith(LOST):
                raise StoreLost(self.highest_number)
            self.identity = str(found)
            self.highest_number = max(self.highest_number or 0, int(await self.redis.get(keys.SEQUENCE) or 0))
        return self.identity

    @translate_errors
    async def check_identity(self) -> None:
        """StoreLost if the store is not the one this bot knows; a vanished identity is marked
        lost, so bots that start later refuse too instead of taking the empty store for new."""
        expected = await self.known_identity()
        found = await self.redis.get(keys.IDENTITY)
        if found == expected:
            return
        if found is None:
            await self.redis.set(keys.IDENTITY, LOST + expected, nx=True)
        raise StoreLost(self.highest_number)

    @translate_errors
    async def reset_identity(self, next_number: int) -> str:
        """Start afresh after a loss, deliberately: a new identity, numbering from `next_number`."""
        fresh = f"store-{secrets.token_hex(8)}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.IDENTITY, fresh)
            pipe.set(keys.SEQUENCE, max(next_number - 1, 0))
            await pipe.execute()
        self.identity = fresh
        return fresh

    @translate_errors
    async def create_incident(
        self,
        incident: Incident,
        event: TimelineEvent,
        works: list[Work],
        request_id: str,
        also: Callable[[Incident], QueuedScript] | None = None,
    ) -> Incident:
        """Store a new incident, its first event and its Slack work; never touches another incident.

        Safe to retry with the same request: an incident that this request already stored is
        returned as it is. `also(stored incident)` is sent in the round trip after the write
        (the reminder schedule)."""
        effects = effects_for(incident.revision, works)
        args = [incident.model_dump_json(), event.model_dump_json()]
        for effect in effects:
            args += [effect.id, effect.model_dump_json()]
        create_keys = [keys.incident(incident.id), keys.timeline(incident.id), keys.outbox(incident.id)]

        def queue(pipe: Pipeline) -> None:
            # A hint before the write, for later: if this process dies right after the write,
            # the delivery loops still find its work; if it never happened, they find nothing.
            self._queue_hint_before(pipe, incident.id, incident.declared_at)
            _queue_script(pipe, self._create, create_keys, args)

        _, created = await self._retrying(lambda: self._pipeline(queue, wait_for=create_keys[0]))
        if created != 1:
            stored = Incident.model_validate_json(created)
            if not stored.has_applied(request_id):
                raise IncidentExists(f"incident {incident.id} already exists")
            incident = stored
        else:
            self._written(None, incident)
        # The open-incidents index lives in its own slot, so it is written after the incident; and
        # the hint again, due at once now that the work is there.
        stored = incident
        extra = also(stored) if also is not None else None

        def after(pipe: Pipeline) -> None:
            pipe.zadd(keys.OPEN, {stored.id: stored.declared_at.timestamp()})
            pipe.zadd(keys.OUTBOX_DUE, {stored.id: stored.declared_at.timestamp()})
            if extra is not None:
                _queue_script(pipe, extra.script, extra.keys, extra.args)

        try:
            await self._pipeline(after, [extra.script] if extra is not None else [])
        except (RedisError, RedisClusterException, OSError) as exc:
            # The incident is stored: its delivery re-adds what this round trip would have.
            self.on_failure()
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}", written=True) from exc
        return incident

    @translate_errors
    async def run_script_waiting(self, call: QueuedScript) -> Any:
        """Run another store's write script (registered on this client) in one round trip,
        followed by the replica wait on its first key, as the incident writes are: for a write
        whoever sent it is told is saved. Returns the script's reply."""
        replies = await self._pipeline(
            lambda pipe: _queue_script(pipe, call.script, call.keys, call.args),
            [call.script],
            wait_for=call.keys[0],
        )
        return replies[-1]

    async def _pipeline(
        self,
        queue: Callable[[Pipeline], None],
        others: list[AsyncScript] | None = None,
        wait_for: str | None = None,
    ) -> list[Any]:
        """One round trip of commands and scripts (by sha: redis-py would otherwise ask
        SCRIPT EXISTS first, a round trip of its own); scripts are loaded only when Redis has
        lost them (a restart, a failover) and the commands are then sent again.

        With `wait_for` (a key the round trip writes), WAIT follows the commands on the same
        connection, when replica waits are on: the round trip returns once a replica has the
        write, or the wait timed out (then the write stands, counted as unconfirmed)."""
        waits = wait_for is not None and self._waits_now()
        for attempt in range(2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    queue(pipe)
                    if not waits:
                        return list(await pipe.execute())
                    self._queue_wait(pipe, str(wait_for))
                    replies = list(await pipe.execute(raise_on_error=False))
                    confirmed = replies.pop()
                    for reply in replies:
                        if isinstance(reply, Exception):
                            raise reply
                    self._note_wait(confirmed)
                    return replies
            except NoScriptError:
                if attempt:
                    raise
                for script in [*self._scripts, *(others or [])]:
                    await self.redis.script_load(script.script)
        raise AssertionError("unreachable")

    # -- replica waits -----------------------------------------------------------------------

    def _waits_now(self) -> bool:
        if not self.replica_wait.enabled:
            return False
        if self._clock() < self._wait_again_at:
            self.unconfirmed_writes += 1
            return False
        return True

    def _queue_wait(self, pipe: Pipeline, key: str) -> None:
        wait = self.replica_wait
        if isinstance(self.redis, RedisCluster):
            # On the node that holds the key: its commands share one connection, in order.
            node = self.redis.get_node_from_key(key)
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms, target_nodes=node)
        else:
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)

    def _note_wait(self, reply: Any) -> None:
        if not isinstance(reply, Exception) and int(reply) >= self.replica_wait.replicas:
            self.confirmed_writes += 1
            return
        self.unconfirmed_writes += 1
        self._wait_again_at = self._clock() + UNCONFIRMED_BACKOFF
        why = (
            f"Redis refused WAIT ({reply}); set REDIS_WAIT_REPLICAS=0 if this server cannot wait"
            if isinstance(reply, Exception)
            else f"no replica confirmed it within {self.replica_wait.timeout_ms} ms"
        )
        self._warn.warn(
            "unconfirmed",
            "A write was acknowledged before a replica had it: %s. A failover now could lose it; "
            "writes skip waiting for %.0f s. Set min-replicas-to-write on the master to refuse "
            "such writes instead.",
            why,
            UNCONFIRMED_BACKOFF,
        )

    async def _retrying(self, write: Callable[[], Awaitable[R]]) -> R:
        """Run an idempotent write again while its answer is lost, within the request's budget."""
        deadline = time.monotonic() + WRITE_RETRY_BUDGET
        maybe_sent = False
        while True:
            try:
                return await write()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                maybe_sent = maybe_sent or not _never_sent(exc)
                if time.monotonic() > deadline:
                    written = None if maybe_sent else False
                    self.on_failure()
                    raise StoreUnavailable(str(exc) or type(exc).__name__, written=written) from exc
                await asyncio.sleep(0.05)

    @translate_errors
    async def update_incident(
        self, incident_id: str, change: Callable[[Incident], Change | None]
    ) -> tuple[Incident, bool]:
        """Read, decide, then write only if the incident did not move meanwhile (else decide
        again): the change is written atomically with its events and Slack work.

        `change` returns None when there is nothing to write (e.g. the request was applied by an
        earlier try whose answer was lost). Returns (the incident after, whether it was written).
        A write whose answer is lost is tried again: `change` must recognise its own request."""
        about_incident(incident_id)
        deadline = time.monotonic() + WRITE_RETRY_BUDGET
        lost: Exception | None = None  # a connection failed under this write: it may have landed
        while True:
            try:
                outcome = await self._update_once(incident_id, change)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if not _never_sent(exc):
                    lost = exc
                if time.monotonic() > deadline:
                    known = None if lost is not None else False
                    self.on_failure()
                    raise StoreUnavailable(str(exc) or type(exc).__name__, written=known) from exc
                await asyncio.sleep(0.05)
                continue
            if outcome is None:  # the incident moved under this change: decide again
                if time.monotonic() > deadline:
                    raise StoreUnavailable("the incident kept changing", written=None if lost else False)
                continue
            incident, written = outcome
            if lost is not None and not written:
                # An earlier try was written but its answer lost: its work is due at once.
                await self.hint(incident_id, incident.updated_at)
            return incident, written

    async def _update_once(
        self, incident_id: str, change: Callable[[Incident], Change | None]
    ) -> tuple[Incident, bool] | None:
        """One read and one conditional write: None when the incident moved in between."""
        key = keys.incident(incident_id)
        raw = await self.redis.get(key)
        if raw is None:
            raise IncidentNotFound(incident_id)
        current = Incident.model_validate_json(raw)
        decided = change(current)
        if decided is None:
            return current, False
        effects = effects_for(decided.incident.revision, decided.works)
        checklist = decided.checklist
        payload: dict[str, Any] = {
            "events": [e.model_dump_json() for e in decided.events],
            "effects": [[e.id, e.model_dump_json()] for e in effects],
            "done": decided.done_effects,
        }
        if checklist is not None:
            payload["checklist"] = {
                "ts": checklist.ts,
                "json": checklist.model_dump_json(),
                "items": checklist.item_ids(),
            }
        update_keys = [
            key,
            keys.timeline(incident_id),
            keys.outbox(incident_id),
            keys.messages(incident_id),
            keys.items(incident_id),
            keys.revisions(incident_id),
            keys.shown(incident_id),
        ]
        # The incident's other keys, for its expiry.
        update_keys += [k for k in keys.incident_keys(incident_id) if k not in update_keys]
        expires = self.expires_at(decided.incident) if not current.is_resolved else None
        args = [
            str(raw),
            decided.incident.model_dump_json(),
            json.dumps(payload),
            "" if expires is None else expiry_ms(expires),
            "1" if decided.incident.is_resolved else "0",
        ]

        def queue(pipe: Pipeline) -> None:
            if effects:
                # Due a little later: if this process dies right after the write, the delivery
                # loops still find its work; if the write did not happen, they find nothing.
                self._queue_hint_before(pipe, incident_id, decided.incident.updated_at)
            _queue_script(pipe, self._update, update_keys, args)

        replies = await self._pipeline(queue, wait_for=key)
        written = int(replies[-1])
        if written == -1:
            raise IncidentNotFound(incident_id)
        if written == 0:
            return None
        self._written(current, decided.incident)
        if effects:
            with contextlib.suppress(StoreUnavailable):  # else the hint before serves, in 5 s
                await self.hint(incident_id, decided.incident.updated_at)
        return decided.incident, True

    def _written(self, before: Incident | None, after: Incident) -> None:
        """Tell `on_write` of a stored change; what it does can't undo (or fail) the write."""
        if self.on_write is None:
            return
        try:
            self.on_write(before, after)
        except Exception:
            log.exception("on_write failed for %s", after.id)

    @translate_errors
    async def claim_channel(self, channel_id: str, incident_id: str) -> str | None:
        """Make `incident_id` the open incident of a borrowed channel. Returns the id of another
        open incident that holds the channel (and then changes nothing), else None.

        A holder whose record is not stored may be a declaration still being stored (it claims
        the channel first): it keeps the channel for CLAIM_GRACE, and only then counts as gone."""
        index = [keys.BY_CHANNEL, keys.CLAIMED_AT]
        for _ in range(5):
            now = time.time()
            holder = await self._claim(keys=index, args=[channel_id, "", incident_id, now])
            if not holder:
                return None
            if holder == incident_id:
                return None
            raw = await self.redis.get(keys.incident(str(holder)))
            if raw is not None and not Incident.model_validate_json(raw).is_resolved:
                return str(holder)
            if raw is None:
                claimed_at = await self.redis.hget(keys.CLAIMED_AT, channel_id)
                if claimed_at is not None and now - float(claimed_at) < CLAIM_GRACE:
                    return str(holder)
            # A resolved or vanished holder: take the channel over, if nobody else did meanwhile.
            if not await self._claim(keys=index, args=[channel_id, holder, incident_id, now]):
                return None
        raise StoreUnavailable("the channel index kept changing", written=False)

    @translate_errors
    async def index_channel(self, channel_id: str, incident_id: str) -> None:
        await self.redis.hset(keys.BY_CHANNEL, channel_id, incident_id)

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
    async def ensure_open(self, incident: Incident) -> None:
        """Put an open incident in the open index if a failure left it out (idempotent)."""
        if not incident.is_resolved:
            await self.redis.zadd(keys.OPEN, {incident.id: incident.declared_at.timestamp()}, nx=True)

    def expires_at(self, incident: Incident) -> datetime | None:
        """When a resolved incident expires from Redis: INCIDENT_RETENTION after it was resolved
        (None: it is open, or kept forever)."""
        if not incident.is_resolved or not self.retention:
            return None
        return incident.status_changed_at.get(Status.RESOLVED, incident.updated_at) + self.retention

    @translate_errors
    async def close_incident(self, incident: Incident) -> None:
        """Move a resolved incident from the open index to the resolved one, scored by when it
        expires, and let go of the channel it borrowed (if it still holds it). Idempotent."""
        expires = self.expires_at(incident)
        borrowed = None if incident.dedicated_channel else incident.channel_id

        def resolved(pipe: Pipeline) -> None:
            # gt: an expiry the sweep gave an incident resolved before retention is not brought forward.
            score = math.inf if expires is None else expiry_score(expires)
            pipe.zadd(keys.RESOLVED, {incident.id: score}, gt=True)
            if borrowed is not None:
                _queue_script(pipe, self._release, CHANNEL_INDEX, [borrowed, incident.id])

        # Listed as resolved before it leaves the open index: the two are in different slots (on
        # a Cluster, perhaps on different masters), and an incident in neither would be swept
        # never. Open and resolved at once, the sweep's close_strays finishes it.
        await self._pipeline(resolved)
        await self.redis.zrem(keys.OPEN, incident.id)

    @translate_errors
    async def release_channel(self, channel_id: str, incident_id: str) -> bool:
        """Drop the channel's index entry if `incident_id` still holds it."""
        return bool(await self._release(keys=CHANNEL_INDEX, args=[channel_id, incident_id]))

    @translate_errors
    async def resolved_incident_ids(self) -> list[str]:
        """Every resolved incident still in Redis (as the resolved index lists it), by number."""
        found = [str(i) for i in await self.redis.zrange(keys.RESOLVED, 0, -1)]
        return sorted(found, key=lambda i: (len(i), i))  # INC-9 before INC-10

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
        # Posted as revision 0, with no ticks: what Slack shows is already what Redis holds.
        pipe.hsetnx(keys.shown(incident_id), message.ts, 0)

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
        uid: str,
        recheck_at: datetime,
    ) -> tuple[bool, MessageState]:
        """Tick (or untick, when `tick` is None) one item; returns (changed, state after).

        One round trip: a hint that the delivery loop checks the message at `recheck_at` (in case
        this process fails to re-render it), then the tick itself."""
        def queue(pipe: Pipeline) -> None:
            pipe.zadd(keys.OUTBOX_DUE, {incident_id: recheck_at.timestamp()})
            _queue_script(
                pipe,
                self._tick,
                [
                    keys.messages(incident_id),
                    keys.items(incident_id),
                    keys.ticks(incident_id),
                    keys.revisions(incident_id),
                    keys.timeline(incident_id),
                    keys.incident(incident_id),
                ],
                [
                    message_ts,
                    item,
                    "1" if tick is not None else "0",
                    tick.model_dump_json() if tick is not None else "",
                    event.model_dump_json(),
                    uid,
                ],
            )

        # The script changes nothing when run twice: a lost answer is simply tried again.
        _, reply = await self._retrying(lambda: self._pipeline(queue, wait_for=keys.incident(incident_id)))
        if reply[0] == "stale":
            raise StaleReference(f"{incident_id} is not the incident {uid}")
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

    @translate_errors
    async def first_request(self, name: str, seconds: float) -> bool:
        """True for the first of several identical requests within `seconds` (a double click)."""
        return bool(await self.redis.set(f"once:{{{name}}}", "1", nx=True, px=int(seconds * 1000)))

    @translate_errors
    async def mark_shown(self, incident_id: str, message_ts: str, rev: int | None) -> int:
        """Record that Slack accepted revision `rev` (if any); returns the newest revision."""

        def queue(pipe: Pipeline) -> None:
            if rev is not None:
                _queue_script(pipe, self._mark_shown, [keys.shown(incident_id)], [message_ts, rev])
            pipe.hget(keys.revisions(incident_id), message_ts)

        return int((await self._pipeline(queue))[-1] or 0)

    @translate_errors
    async def stale_messages(self, incident_id: str) -> list[str]:
        """Checklist messages whose newest revision Slack has not accepted yet."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.revisions(incident_id))
            pipe.hgetall(keys.shown(incident_id))
            revs, shown = await pipe.execute()
        return [ts for ts, rev in revs.items() if int(rev) > int(shown.get(ts, -1))]

    # -- the outbox --------------------------------------------------------------------------

    @translate_errors
    async def hint(self, incident_id: str, at: datetime, *, due: str = keys.OUTBOX_DUE) -> None:
        """Tell the delivery loops to look at this incident's outbox at `at`. `due`: another
        hint set of the same kind (`keys.TRIAGE_DUE`, whose members are alert groups)."""
        await self.redis.zadd(due, {incident_id: at.timestamp()})

    @translate_errors
    async def hint_before(self, member: str, at: datetime, *, due: str) -> None:
        """The hint before a write of `member` (see _PRE_HINT), for a hint set other than the
        outbox's, whose writes are in another slot and so can't share their round trip."""
        await self._hint_before(member, at, due)

    @translate_errors
    async def outbox_due(self, now: datetime) -> int:
        """How many incidents have Slack work due now or earlier."""
        return int(await self.redis.zcount(keys.OUTBOX_DUE, "-inf", now.timestamp()))

    @translate_errors
    async def undelivered(self, now: datetime) -> int:
        """How many incidents have Slack work due now, or pending work waiting for a retry."""
        due = await self.outbox_due(now)
        waiting = 0
        for incident_id in await self.redis.zrange(keys.OUTBOX_DUE, 0, -1):
            if any(e.pending for e in await self.outbox(str(incident_id))):
                waiting += 1
        return due + waiting

    @translate_errors
    async def pending_effects(self) -> int:
        """How many effects (pieces of Slack work) wait for delivery, over every incident: each
        pending effect has a hint, written before it, so the hinted outboxes hold them all."""
        hinted = [str(i) for i in await self.redis.zrange(keys.OUTBOX_DUE, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for incident_id in hinted:
                pipe.hvals(keys.outbox(incident_id))
            outboxes = await pipe.execute()
        return sum(1 for raw in outboxes for value in raw if Effect.model_validate_json(value).pending)

    async def _hint_before(self, incident_id: str, at: datetime, due: str = keys.OUTBOX_DUE) -> None:
        await self._pipeline(lambda pipe: self._queue_hint_before(pipe, incident_id, at, due))

    def _queue_hint_before(
        self, pipe: Pipeline, incident_id: str, at: datetime, due: str = keys.OUTBOX_DUE
    ) -> None:
        later = (at + HINT_GRACE).timestamp()
        _queue_script(pipe, self._pre_hint, [due], [incident_id, repr(later)])

    @translate_errors
    async def claim_outboxes(
        self, now: datetime, lease: float, limit: int = 50, *, due: str = keys.OUTBOX_DUE
    ) -> list[OutboxClaim]:
        """Claim what is due in the hint set `due` (the outbox's, or `keys.TRIAGE_DUE`)."""
        reply: list[str] = await self._claim_outbox(keys=[due], args=[repr(now.timestamp()), lease, limit])
        return [OutboxClaim(m, str(t)) for m, t in zip(reply[0::2], reply[1::2], strict=True)]

    @translate_errors
    async def finish_outbox(
        self, claim: OutboxClaim, look_again_at: datetime | None, *, due: str = keys.OUTBOX_DUE
    ) -> bool:
        again = "" if look_again_at is None else repr(look_again_at.timestamp())
        return bool(await self._finish_outbox(keys=[due], args=[claim.incident_id, claim.token, again]))

    @translate_errors
    async def heartbeat(self, owner: str, seconds: float) -> None:
        await self.redis.set(keys.process_alive(owner), "1", px=int(seconds * 1000))

    async def lock_outbox(self, incident_id: str, owner: str, seconds: float) -> bool:
        """Lock an incident's outbox for `owner`; a lock whose owner stopped beating is taken over."""
        return await self.lock(keys.delivery_lock(incident_id), owner, seconds)

    @translate_errors
    async def lock(self, key: str, owner: str, seconds: float) -> bool:
        """Take the delivery lock `key` for `owner` (see lock_outbox)."""
        ttl = int(seconds * 1000)
        if await self.redis.set(key, owner, nx=True, px=ttl):
            return True
        holder = await self.redis.get(key)
        if holder is None or holder == owner:
            return bool(await self.redis.set(key, owner, nx=holder is None, px=ttl))
        if await self.redis.exists(keys.process_alive(str(holder))):
            return False
        log.warning("taking over %s from %s, which stopped", key, holder)
        return bool(await self._take_lock(keys=[key], args=[holder, owner, ttl]))

    async def renew_outbox_lock(self, incident_id: str, owner: str, seconds: float) -> bool:
        """Extend this owner's lock; False if it is no longer this owner's."""
        return await self.renew_lock(keys.delivery_lock(incident_id), owner, seconds)

    @translate_errors
    async def renew_lock(self, key: str, owner: str, seconds: float) -> bool:
        return bool(await self._renew_lock(keys=[key], args=[owner, int(seconds * 1000)]))

    @translate_errors
    async def effect(self, incident_id: str, effect_id: str) -> Effect | None:
        raw = await self.redis.hget(keys.outbox(incident_id), effect_id)
        return None if raw is None else Effect.model_validate_json(raw)

    async def unlock_outbox(self, incident_id: str, token: str) -> None:
        await self.unlock(keys.delivery_lock(incident_id), token)

    @translate_errors
    async def unlock(self, key: str, token: str) -> None:
        await self._unlock(keys=[key], args=[token])

    @translate_errors
    async def outbox(self, incident_id: str) -> list[Effect]:
        raw = await self.redis.hgetall(keys.outbox(incident_id))
        return sorted((Effect.model_validate_json(v) for v in raw.values()), key=lambda e: e.id)

    @translate_errors
    async def save_effect(self, incident_id: str, effect: Effect, event: TimelineEvent | None = None) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.outbox(incident_id), effect.id, effect.model_dump_json())
            if event is not None:
                pipe.rpush(keys.timeline(incident_id), event.model_dump_json())
            await pipe.execute()

    @translate_errors
    async def complete_effect(
        self, incident_id: str, effect_id: str, event: TimelineEvent | None = None
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.outbox(incident_id), effect_id)
            if event is not None:
                pipe.rpush(keys.timeline(incident_id), event.model_dump_json())
            await pipe.execute()

    @translate_errors
    async def add_effects(
        self, incident_id: str, effects: list[Effect], at: datetime, once: str | None = None
    ) -> bool:
        """Queue work that no incident change implies (reminders, notices). With `once` (a
        reminder claim's token), queuing again for the same token adds nothing, even after the
        first ones were delivered. Returns whether anything was queued."""
        await self._hint_before(incident_id, at)
        args: list[str] = [once or ""]
        for effect in effects:
            args += [effect.id, effect.model_dump_json()]
        queued = await self._add_effects(keys=[keys.outbox(incident_id), keys.queued(incident_id)], args=args)
        await self.hint(incident_id, at)
        return bool(queued)
