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
    await fake_redis.set(keys.DEMO_MARKER, "1")
    await fake_redis.set(keys.SEQUENCE, "1")
    await fake_redis.set(keys.incident("INC-1"), "{}")
    await fake_redis.set(OTHER_APP, "keep me")
    await database.claim(fake_redis)
    assert sorted(await fake_redis.keys("*")) == sorted([keys.DEMO_MARKER, OTHER_APP])
