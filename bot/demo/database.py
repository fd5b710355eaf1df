"""The demo on a Redis database given with `--redis-url`: beside other apps' keys, and again and again.

The demo writes the keys the bot writes (bot/keys.py) and, when it ends, deletes them: only
keys matching `keys.PATTERNS`, never a flush, so other apps' keys in the database are left as they
are. Before it writes, it looks for such keys: without the demo's marker beside them, or with a
store identity other than the one the marker names, they are some bot's incidents, and the demo
refuses the database; else they are what a demo that was killed left behind, and they go.
"""

from __future__ import annotations

import secrets
from fnmatch import fnmatchcase

import redis.asyncio as aioredis

from bot import keys


class DatabaseInUse(Exception):
    """The database holds incident-bot keys that no demo wrote."""

    def __init__(self, found: list[str], why: str = "") -> None:
        shown = ", ".join(sorted(found)[:3]) + (", …" if len(found) > 3 else "")
        super().__init__(why or f"it holds incident-bot data ({shown}) that no demo wrote")
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
    """Make the database ready for a demo: raises DatabaseInUse if a bot's data is there or a bot
    runs on it, else deletes what an earlier demo left and marks the database as this demo's.

    The marker names the store identity the demo gives the database (the bot takes whatever
    identity it finds for its own): leftovers are a demo's only while the identity is still that
    one. A bot that started on the database since made its own, and its data is never deleted."""
    left = await bot_keys(redis)
    if left:
        marker = await redis.get(keys.DEMO_MARKER)
        identity = await redis.get(keys.IDENTITY)
        if marker is None or identity not in (None, marker):
            raise DatabaseInUse(left)
        running = [name for name in left if fnmatchcase(name, keys.process_alive("*"))]
        if running:
            raise DatabaseInUse(running, "a bot process is running on it (or stopped seconds ago)")
        await _delete(redis, left)
    identity = f"store-demo-{secrets.token_hex(8)}"
    # The marker first: a demo killed in between leaves a marker without an identity, still its own.
    await redis.set(keys.DEMO_MARKER, identity)
    await redis.set(keys.IDENTITY, identity)


async def release(redis: aioredis.Redis) -> None:
    """Delete the keys the demo wrote, then its marker; nothing if the store is no longer the
    demo's (a bot started on the database meanwhile: its data stays)."""
    marker = await redis.get(keys.DEMO_MARKER)
    if marker is None or await redis.get(keys.IDENTITY) not in (None, marker):
        raise DatabaseInUse(await bot_keys(redis), "a bot took the database over while the demo ran")
    await _delete(redis, await bot_keys(redis))
    await redis.delete(keys.DEMO_MARKER)


async def _delete(redis: aioredis.Redis, names: list[str]) -> None:
    if names:
        await redis.delete(*names)  # a Cluster client splits it by slot
