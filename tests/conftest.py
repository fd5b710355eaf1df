"""Shared fixtures: a fresh store per test, on fakeredis, a real Redis server, a Sentinel-watched
master or a Redis Cluster."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

import bot.charting
from bot.charts import ChartData
from bot.demo.harness import RedisServer
from bot.store import IncidentStore, connect
from tests.topologies import ClusterSetup, SentinelSetup

# Set REDIS_TEST_URL to use a server of your own; otherwise each test run starts a private
# redis-server on a free port, so two runs on one machine never flush each other's data.
SHARED_FALLBACK_URL = "redis://127.0.0.1:6379/15"

Topology = TypeVar("Topology", SentinelSetup, ClusterSetup)


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


@pytest.fixture(scope="session")
def sentinel_url() -> Iterator[str]:
    """REDIS_URL of a Sentinel-watched master (a master, a replica, three sentinels) for this run.

    Shared by every test of the run, so a test must not kill its processes: one that fails the
    master over starts a setup of its own."""
    with _started(SentinelSetup) as setup:
        sentinels = ",".join(f"{host}:{port}" for host, port in setup.sentinel_addresses())
        yield f"redis+sentinel://{sentinels}/{setup.master_name}"


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """REDIS_URL of a Redis Cluster (three masters, a replica each) for this run; shared, like
    sentinel_url."""
    with _started(ClusterSetup) as setup:
        yield "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in setup.addresses())


@contextlib.contextmanager
def _started(make: Callable[[], Topology]) -> Iterator[Topology]:
    """A topology started for the session, stopped at the end; a skip where redis-server is not
    installed. It starts on an event loop of its own, in a thread: a session fixture outlives the
    tests' loops, and may be first asked for while one of them is running."""
    try:
        setup = make()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, setup.start()).result()
    try:
        yield setup
    finally:
        setup.stop()


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


@pytest.fixture(
    params=[
        "fakeredis",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("sentinel", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
async def any_redis(request: pytest.FixtureRequest, redis_test_url: str) -> AsyncIterator[aioredis.Redis]:
    """The store contract runs on fakeredis, a real server, a Sentinel master and a Cluster."""
    if request.param == "fakeredis":
        client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
        yield client
        await client.aclose()
        return
    # Asked for by name, so a run that needs no Sentinel or Cluster starts none.
    url = redis_test_url if request.param == "redis" else str(request.getfixturevalue(f"{request.param}_url"))
    client = await _real_redis(url)
    if isinstance(client, RedisCluster):
        _keys_from_every_master(client)
    yield client
    await client.flushdb()
    await client.aclose()


def _keys_from_every_master(client: RedisCluster) -> None:
    """KEYS (which the contract uses to see everything a call wrote) on every master, merged:
    redis-py sends it to one node of a Cluster, which knows only its own slots' keys."""
    one_node = client.keys

    async def keys(pattern: str = "*", **kwargs: Any) -> Any:
        return await one_node(pattern, target_nodes=RedisCluster.PRIMARIES, **kwargs)

    client.keys = keys  # type: ignore[method-assign]


@pytest.fixture
async def store(any_redis: aioredis.Redis) -> IncidentStore:
    return IncidentStore(any_redis)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[ChartData]:
    """The data of every chart the bot renders (the real renderer still draws it)."""
    seen: list[ChartData] = []
    render = bot.charting.render_chart

    async def recording(data: ChartData) -> bytes:
        seen.append(data)
        return await render(data)

    monkeypatch.setattr(bot.charting, "render_chart", recording)
    return seen
