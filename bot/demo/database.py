"""The demo on a Redis database given with `--redis-url`: beside other apps' keys, and again and again.

The demo writes the keys the bot writes (bot/keys.py) and, when it ends, deletes them: only
keys matching `keys.PATTERNS`, never a flush, so other apps' keys in the database are left as they
are. Before it writes, it looks for such keys: without the demo's marker beside them they are some
bot's incidents, and the demo refuses the database; with it they are what a demo that was killed
left behind, and they go.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from bot import keys


class DatabaseInUse(Exception):
    """The database holds incident-bot keys that no demo wrote."""

    def __init__(self, found: list[str]) -> None:
        shown = ", ".join(sorted(found)[:3]) + (", …" if len(found) > 3 else "")
        super().__init__(f"it holds incident-bot data ({shown}) that no demo wrote")
        self.found = found


async def bot_keys(redis: aioredis.Redis) -> list[str]:
    """The keys in the database named as the bot names its keys; on a Cluster, on every master.

    Patterns go to the server (SCAN MATCH), so other apps' keys are never even read."""
    found: list[str] = []
    for pattern in keys.PATTERNS:
        if "*" not in pattern:
            if await redis.exists(pattern):
                found.append(pattern)
            continue
        found += [name async for name in redis.scan_iter(match=pattern, count=1000)]
    return found


async def claim(redis: aioredis.Redis) -> None:
    """Make the database ready for a demo: raises DatabaseInUse if a bot's data is there, else
    marks it as the demo's and deletes what an earlier demo left."""
    left = await bot_keys(redis)
    if left and not await redis.exists(keys.DEMO_MARKER):
        raise DatabaseInUse(left)
    await redis.set(keys.DEMO_MARKER, "1")
    await _delete(redis, left)


async def release(redis: aioredis.Redis) -> None:
    """Delete the keys the demo wrote, then its marker."""
    await _delete(redis, await bot_keys(redis))
    await redis.delete(keys.DEMO_MARKER)


async def _delete(redis: aioredis.Redis, names: list[str]) -> None:
    if names:
        await redis.delete(*names)  # a Cluster client splits it by slot
