"""The bench's Redis proxy cutting connections before and after Redis runs a command.

Against a private redis-server (started here, stopped at the end), because the point is what a
real Redis did with the write when the client only saw its connection drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.redis_proxy import RedisCountingProxy, RespReplyCounter
from bot.demo.harness import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    asyncio.run(server.start())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def direct(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client straight to Redis: what really happened, whatever the proxied client saw."""
    client = aioredis.Redis(port=redis_server.port, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[RedisCountingProxy]:
    proxy = RedisCountingProxy("127.0.0.1", redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def through(proxy: RedisCountingProxy) -> AsyncIterator[aioredis.Redis]:
    """A client through the proxy that does not retry, so every cut shows as an error."""
    client = aioredis.Redis(port=proxy.port, decode_responses=True, retry=Retry(NoBackoff(), 0))
    yield client
    await client.aclose()


async def test_cut_after_lets_redis_run_the_write_and_loses_the_reply(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    cut = proxy.cut_after("SET")

    with pytest.raises(RedisConnectionError):
        await through.set("incident:{INC-1}", "declared")

    assert await direct.get("incident:{INC-1}") == "declared"
    assert cut.fired == 1
    assert proxy.cuts == []
    assert [rt.cut for rt in proxy.round_trips if "SET" in rt.names] == ["after"]


async def test_cut_before_closes_the_connection_and_redis_never_sees_the_write(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    proxy.cut_before("set")  # names are case-insensitive

    with pytest.raises(RedisConnectionError):
        await through.set("incident:{INC-1}", "declared")

    assert await direct.exists("incident:{INC-1}") == 0
    assert [rt.cut for rt in proxy.round_trips if "SET" in rt.names] == ["before"]


async def test_a_cut_fires_times_then_the_client_reconnects_and_works(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    proxy.cut_before("INCRBY", times=2)  # redis-py's incr() sends INCRBY key 1

    failures = 0
    for _ in range(3):
        try:
            await through.incr("counter")
        except RedisConnectionError:
            failures += 1

    assert failures == 2
    assert await direct.get("counter") == "1"


async def test_match_picks_the_command_by_its_arguments(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    proxy.cut_after("SET", match=lambda command: command[1].startswith("incident:{INC-2}"))

    await through.set("incident:{INC-1}", "a")
    with pytest.raises(RedisConnectionError):
        await through.set("incident:{INC-2}", "b")
    await through.set("incident:{INC-3}", "c")

    assert await direct.mget("incident:{INC-1}", "incident:{INC-2}", "incident:{INC-3}") == ["a", "b", "c"]


async def test_cut_after_a_transaction_waits_for_exec(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    proxy.cut_after("SET")

    with pytest.raises(RedisConnectionError):
        async with through.pipeline(transaction=True) as pipe:
            pipe.set("incident:{INC-1}", "declared").sadd("incidents", "INC-1").incr("seq")
            await pipe.execute()

    assert await direct.get("incident:{INC-1}") == "declared"
    assert await direct.smembers("incidents") == {"INC-1"}
    (cut_round_trip,) = [rt for rt in proxy.round_trips if rt.cut]
    assert cut_round_trip.names == ["MULTI", "SET", "SADD", "INCRBY", "EXEC"]


async def test_cut_before_a_transaction_drops_all_of_it(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    proxy.cut_before("EXEC")

    with pytest.raises(RedisConnectionError):
        async with through.pipeline(transaction=True) as pipe:
            pipe.set("incident:{INC-1}", "declared").sadd("incidents", "INC-1")
            await pipe.execute()

    assert await direct.exists("incident:{INC-1}", "incidents") == 0


async def test_cut_after_a_script(
    proxy: RedisCountingProxy, through: aioredis.Redis, direct: aioredis.Redis
) -> None:
    body = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])"
    await direct.script_load(body)  # loaded, so the first EVALSHA through the proxy runs it
    script = through.register_script(body)
    proxy.cut_after("EVALSHA")

    with pytest.raises(RedisConnectionError):
        await script(keys=["incident:{INC-1}", "incident:{INC-1}:version"], args=["declared"])

    assert await direct.get("incident:{INC-1}") == "declared"
    assert await direct.get("incident:{INC-1}:version") == "1"


async def test_redis_py_default_retry_runs_a_write_twice_after_a_lost_reply(
    proxy: RedisCountingProxy, direct: aioredis.Redis
) -> None:
    # redis-py retries connection errors by default: a write whose reply was lost runs again.
    retrying = aioredis.Redis(port=proxy.port, decode_responses=True)
    proxy.cut_after("INCRBY")
    try:
        assert await retrying.incr("counter") == 2
    finally:
        await retrying.aclose()

    assert await direct.get("counter") == "2"


async def test_round_trips_are_still_counted_without_cuts(
    proxy: RedisCountingProxy, through: aioredis.Redis
) -> None:
    async with through.pipeline(transaction=False) as pipe:
        pipe.set("a", "1").get("a")
        assert await pipe.execute() == [True, "1"]

    (pipelined,) = [rt for rt in proxy.round_trips if "SET" in rt.names]
    assert pipelined.names == ["SET", "GET"]
    assert pipelined.cut is None


def test_cuts_need_a_positive_count(proxy: RedisCountingProxy) -> None:
    with pytest.raises(ValueError):
        proxy.cut_before("SET", times=0)


def test_the_reply_counter_counts_whole_replies_across_pieces() -> None:
    counter = RespReplyCounter()
    wire = b"+OK\r\n+QUEUED\r\n*2\r\n$5\r\nhello\r\n:1\r\n$-1\r\n%1\r\n+k\r\n*-1\r\n-ERR no\r\n"

    counts = [counter.feed(wire[i : i + 7]) for i in range(0, len(wire), 7)]

    assert sum(counts) == 6  # +OK, +QUEUED, the array, the null bulk, the map, the error
