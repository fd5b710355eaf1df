"""`POST /events/change` down to Redis, on fakeredis, a real server, a Sentinel master and a
Cluster: retries are stored once, a change older than the days kept is refused, and a stored
change is answered once a replica has it (as REDIS_WAIT_REPLICAS asks)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.change_log import ChangeLog
from bot.change_receiver import ChangeReceiver
from bot.changes import KEEP_FOR, RETRY_WINDOW
from bot.store import IncidentStore, ReplicaWait

if TYPE_CHECKING:
    from tests.conftest import FakeClock


def body(**fields: Any) -> bytes:
    return json.dumps({"service": "checkout", "kind": "deploy", "version": "v2.3.1", **fields}).encode()


@pytest.fixture
def store(any_redis: aioredis.Redis) -> IncidentStore:
    return IncidentStore(any_redis)


@pytest.fixture
def receiver(store: IncidentStore, clock: FakeClock) -> ChangeReceiver:
    return ChangeReceiver(ChangeLog(store), clock)


async def stored(receiver: ChangeReceiver, clock: FakeClock) -> list[tuple[str | None, str]]:
    changes = await receiver.changes.between(clock.now - KEEP_FOR, clock.now)
    return [(c.version, c.at.isoformat()) for c in changes]


async def test_a_change_sent_without_at_and_retried_is_stored_once(
    receiver: ChangeReceiver, clock: FakeClock, any_redis: aioredis.Redis
) -> None:
    first_at = clock.now.isoformat().replace("+00:00", "Z")
    first = await receiver.receive(body())
    assert first.status == 200 and first.body["stored"]["at"] == first_at

    clock.advance(30)  # the pipeline's retry, its answer lost; written differently, same event
    retried = await receiver.receive(b'{ "version": "v2.3.1", "kind": "DEPLOY", "service": "checkout" }')
    assert (retried.status, retried.body) == (200, first.body)  # the event as first stored
    assert await stored(receiver, clock) == [("v2.3.1", first_at.replace("Z", "+00:00"))]

    # Kept for the retry window only, in the slot of the change log.
    [retry_key] = [k async for k in any_redis.scan_iter(match="change-retry:*")]
    assert retry_key.startswith(keys.change_retry(""))
    assert 0 < await any_redis.pttl(retry_key) <= RETRY_WINDOW.total_seconds() * 1000

    # Another change is another event, even sent at once.
    other = await receiver.receive(body(version="v2.3.2"))
    assert other.status == 200 and other.body["stored"]["version"] == "v2.3.2"
    assert [v for v, _ in await stored(receiver, clock)] == ["v2.3.1", "v2.3.2"]


async def test_a_change_sent_with_at_needs_no_retry_key(
    receiver: ChangeReceiver, clock: FakeClock, any_redis: aioredis.Redis
) -> None:
    at = (clock.now - timedelta(minutes=3)).isoformat()
    for _ in range(2):
        assert (await receiver.receive(body(at=at))).status == 200
    assert await stored(receiver, clock) == [("v2.3.1", at)]
    assert [k async for k in any_redis.scan_iter(match="change-retry:*")] == []


async def test_a_change_older_than_the_days_kept_is_refused_not_stored(
    receiver: ChangeReceiver, clock: FakeClock
) -> None:
    old = clock.now - KEEP_FOR - timedelta(seconds=1)
    answer = await receiver.receive(body(at=old.isoformat()))
    assert (answer.status, answer.body) == (
        400,
        {"error": f"at: {old.isoformat()} is older than the 7 days change events are kept"},
    )
    oldest_kept = clock.now - KEEP_FOR
    assert (await receiver.receive(body(at=oldest_kept.isoformat()))).status == 200
    assert await stored(receiver, clock) == [("v2.3.1", oldest_kept.isoformat())]


async def test_a_stored_change_waits_for_a_replica_like_the_incident_writes(
    any_redis: aioredis.Redis, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    """A replica confirms it where there is one (Sentinel, Cluster); fakeredis refuses WAIT and a
    lone server has no replica, so there it is counted unconfirmed: asked for either way."""
    store = IncidentStore(any_redis, ReplicaWait(replicas=1, timeout_ms=500))
    receiver = ChangeReceiver(ChangeLog(store), clock)
    assert (await receiver.receive(body())).status == 200
    assert store.confirmed_writes + store.unconfirmed_writes == 1
    if request.node.callspec.params["any_redis"] in ("sentinel", "cluster"):
        assert store.confirmed_writes == 1
    assert await stored(receiver, clock) == [("v2.3.1", clock.now.isoformat())]
