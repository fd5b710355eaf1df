"""End-to-end fixtures: the real bot over HTTP on loopback, the Slack stand-in, a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.demo.harness import RedisServer, Running, running_bot
from bot.store import connect


@pytest.fixture
async def running(real_redis: aioredis.Redis) -> AsyncIterator[Running]:
    async with running_bot(redis=connect_like(real_redis)) as running:
        yield running


def connect_like(client: aioredis.Redis) -> aioredis.Redis:
    """A second client to the same server and database, owned (and closed) by the bot."""
    kwargs = client.connection_pool.connection_kwargs
    return connect(f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}")


@pytest.fixture
async def redis_process() -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start again."""
    try:
        process = RedisServer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    await process.start()
    yield process
    process.stop()


@pytest.fixture
def playbook_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "playbook.yml"
    path.write_text("severities:\n  sev2:\n    update_every: 4s\n")
    yield path
