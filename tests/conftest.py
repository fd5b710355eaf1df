"""Shared fixtures: a fresh store per test, on fakeredis or on a real Redis server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import redis.asyncio as aioredis

from bot.demo.harness import RedisServer
from bot.store import IncidentStore, connect

# Set REDIS_TEST_URL to use a server of your own; otherwise each test run starts a private
# redis-server on a free port, so two runs on one machine never flush each other's data.
SHARED_FALLBACK_URL = "redis://127.0.0.1:6379/15"


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


@pytest.fixture(scope="session")
def redis_test_url() -> Iterator[str]:
    """The real Redis the tests use: REDIS_TEST_URL, else a private server for this run."""
    if os.environ.get("REDIS_TEST_URL"):
        yield os.environ["REDIS_TEST_URL"]
        return
    try:
        server = RedisServer()
    except FileNotFoundError:
        yield SHARED_FALLBACK_URL
        return
    asyncio.run(server.start())
    try:
        yield server.url
    finally:
        server.stop()


async def _real_redis(url: str) -> aioredis.Redis:
    client = connect(url)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs a Redis at {url}: {exc}") from exc
        pytest.skip(f"no Redis at {url}: {exc}")
    await client.flushdb()
    return client


@pytest.fixture
async def real_redis(redis_test_url: str) -> AsyncIterator[aioredis.Redis]:
    """A real Redis (this run's own, see redis_test_url), flushed before and after each test."""
    client = await _real_redis(redis_test_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
async def any_redis(request: pytest.FixtureRequest, redis_test_url: str) -> AsyncIterator[aioredis.Redis]:
    """The store contract runs twice: on fakeredis and on a real server."""
    if request.param == "fakeredis":
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
        yield client
        await client.aclose()
        return
    client = await _real_redis(redis_test_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def store(any_redis: aioredis.Redis) -> IncidentStore:
    return IncidentStore(any_redis)
