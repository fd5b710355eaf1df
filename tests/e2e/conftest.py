"""End-to-end fixtures: the real bot over HTTP on loopback, the Slack stand-in, a real Redis."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.harness import Running, running_bot
from bot.store import connect


@pytest.fixture
async def running(real_redis: aioredis.Redis) -> AsyncIterator[Running]:
    async with running_bot(redis=connect_like(real_redis)) as running:
        yield running


def connect_like(client: aioredis.Redis) -> aioredis.Redis:
    """A second client to the same server and database, owned (and closed) by the bot."""
    kwargs = client.connection_pool.connection_kwargs
    return connect(f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}")


class RedisProcess:
    """A private redis-server on a free loopback port that a test can stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - starts in milliseconds
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = aioredis.Redis(port=self.port)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
async def redis_process() -> AsyncIterator[RedisProcess]:
    process = RedisProcess()
    await process.start()
    yield process
    process.stop()


@pytest.fixture
def playbook_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "playbook.yml"
    path.write_text("severities:\n  sev2:\n    update_every: 4s\n")
    yield path
