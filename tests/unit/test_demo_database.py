"""The demo's use of a shared Redis database: it refuses a bot's data, clears only its own keys."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.demo import database

OTHER_APP = "other-app:session:42"


async def test_an_unused_database_is_claimed_and_released_with_other_keys_kept(
    fake_redis: aioredis.Redis,
) -> None:
    await fake_redis.set(OTHER_APP, "keep me")
    await database.claim(fake_redis)
    assert await fake_redis.exists(keys.DEMO_MARKER)
    await fake_redis.set(keys.SEQUENCE, "1")  # what a demo writes
    await fake_redis.set(keys.timeline("INC-1"), "[]")
    await fake_redis.set("once:{modal:cmd:1}", "1")
    await database.release(fake_redis)
    assert await fake_redis.keys("*") == [OTHER_APP]


async def test_a_bots_incidents_are_refused_and_left_untouched(fake_redis: aioredis.Redis) -> None:
    await fake_redis.set(keys.SEQUENCE, "41")
    await fake_redis.set(keys.incident("INC-41"), "{}")
    with pytest.raises(database.DatabaseInUse, match="incident-bot data"):
        await database.claim(fake_redis)
    assert sorted(await fake_redis.keys("*")) == sorted([keys.SEQUENCE, keys.incident("INC-41")])


async def test_what_a_killed_demo_left_is_cleared_before_the_next(fake_redis: aioredis.Redis) -> None:
    await fake_redis.set(keys.DEMO_MARKER, "store-demo-1")
    await fake_redis.set(keys.IDENTITY, "store-demo-1")
    await fake_redis.set(keys.SEQUENCE, "1")
    await fake_redis.set(keys.incident("INC-1"), "{}")
    await fake_redis.set(OTHER_APP, "keep me")
    await database.claim(fake_redis)
    assert sorted(await fake_redis.keys("*")) == sorted([keys.DEMO_MARKER, keys.IDENTITY, OTHER_APP])
    assert await fake_redis.get(keys.IDENTITY) == await fake_redis.get(keys.DEMO_MARKER) != "store-demo-1"


async def test_a_bot_that_took_over_a_killed_demos_database_keeps_its_data(
    fake_redis: aioredis.Redis,
) -> None:
    """The marker a killed demo left does not make a bot's store the demo's: the identity differs."""
    await fake_redis.set(keys.DEMO_MARKER, "store-demo-1")
    await fake_redis.set(keys.IDENTITY, "store-0a1b2c")  # a bot's, made after a reset
    await fake_redis.set(keys.incident("INC-7"), "{}")
    with pytest.raises(database.DatabaseInUse):
        await database.claim(fake_redis)
    with pytest.raises(database.DatabaseInUse):
        await database.release(fake_redis)
    assert await fake_redis.exists(keys.incident("INC-7"), keys.IDENTITY) == 2


async def test_a_database_a_bot_runs_on_is_refused_even_with_a_marker(fake_redis: aioredis.Redis) -> None:
    await fake_redis.set(keys.DEMO_MARKER, "store-demo-1")
    await fake_redis.set(keys.process_alive("bot-1"), "1", px=5000)
    with pytest.raises(database.DatabaseInUse, match="a bot process is running"):
        await database.claim(fake_redis)
    assert await fake_redis.exists(keys.process_alive("bot-1"))
