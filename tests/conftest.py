"""Shared fixtures: a fresh store per test, on fakeredis or on a real Redis server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import redis.asyncio as aioredis

from bot.store import IncidentStore, connect

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


class FakeClock:
    """A controllable clock: `clock()` returns now, `clock.advance(seconds)` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _real_redis() -> aioredis.Redis:
    client = connect(REDIS_TEST_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs a Redis at {REDIS_TEST_URL}: {exc}") from exc
        pytest.skip(f"no Redis at {REDIS_TEST_URL}: {exc}")
    await client.flushdb()
    return client


@pytest.fixture
async def real_redis() -> AsyncIterator[aioredis.Redis]:
    """A real Redis (database 15 by default), flushed before and after each test."""
    client = await _real_redis()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """The store contract runs twice: on fakeredis and on a real server."""
    if request.param == "fakeredis":
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
        yield client
        await client.aclose()
        return
    client = await _real_redis()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def store(any_redis: aioredis.Redis) -> IncidentStore:
    return IncidentStore(any_redis)
