"""The Sentinel and Cluster test topologies work with redis-py's own Sentinel and Cluster clients,
survive the loss of a master as Redis means them to, and leave no process behind.

Each failover's duration is printed (see it with `pytest -s`) and recorded as a test property.
"""

# redis-py leaves Sentinel() and the cluster pipeline's watch()/multi() unannotated.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff

from tests import topologies
from tests.topologies import ClusterSetup, SentinelSetup

pytestmark = pytest.mark.redis

RecordProperty = Callable[[str, object], None]
Setup = TypeVar("Setup", SentinelSetup, ClusterSetup)
# One hash tag: these keys share a slot, so one transaction or script may touch them all.
TAGGED = "{incident:7}"


def _or_skip(make: Callable[[], Setup]) -> Setup:
    """The setup, or a skip where redis-server (or redis-cli, when asked for) is not installed."""
    try:
        return make()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def sentinel_setup() -> AsyncIterator[SentinelSetup]:
    async with _or_skip(SentinelSetup) as setup:
        yield setup


@pytest.fixture
async def cluster_setup() -> AsyncIterator[ClusterSetup]:
    async with _or_skip(ClusterSetup) as setup:
        yield setup


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[int]:
    """Pids of running processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


# -- Sentinel ---------------------------------------------------------------------------------


async def test_master_for_writes_again_once_the_sentinels_have_promoted_the_replica(
    sentinel_setup: SentinelSetup, record_property: RecordProperty
) -> None:
    setup = sentinel_setup
    first, replica = setup.data_addresses()
    assert len(setup.sentinel_addresses()) == 3
    assert await setup.master_address() == first

    sentinel = Sentinel(setup.sentinel_addresses(), socket_timeout=1.0)
    master = sentinel.master_for(setup.master_name, decode_responses=True)
    try:
        await master.set("before", "1")
        await setup.wait_replicated()

        assert setup.kill_master() == first
        failover = await setup.wait_for_failover(timeout=20)
        print(f"sentinel failover: {failover.seconds:.2f}s from SIGKILL to a writable new master")
        record_property("sentinel_failover_seconds", round(failover.seconds, 2))

        assert failover.address == replica
        assert await setup.master_address() == replica
        assert await sentinel.discover_master(setup.master_name) == replica
        # The same client, with redis-py's default (no) retries: the helper returned only once
        # the new master is the one the sentinels name, so the first write goes through.
        await master.set("after", "2")
        assert await master.get("before") == "1"  # replicated before the kill
        assert await master.get("after") == "2"
        assert (await master.info("server"))["tcp_port"] == replica[1]
    finally:
        await master.aclose()
        await sentinel.aclose()


# Sentinel converts the old master on an INFO every 10 s; a loaded machine once took over 30 s,
# and the kill, the failover and the restart come before it.
@pytest.mark.timeout(150)
async def test_with_passwords_the_killed_master_comes_back_empty_as_a_replica_of_the_new_one(
    record_property: RecordProperty,
) -> None:
    make = partial(SentinelSetup, password="data-secret", sentinel_password="sentinel-secret")
    async with _or_skip(make) as setup:
        # No retries: redis-py retries an AuthenticationError like any ConnectionError, for seconds.
        without = Sentinel(setup.sentinel_addresses(), sentinel_kwargs={"retry": Retry(NoBackoff(), 0)})
        with pytest.raises(MasterNotFoundError, match="AuthenticationError"):
            await without.discover_master(setup.master_name)
        await without.aclose()

        sentinel = Sentinel(
            setup.sentinel_addresses(),
            sentinel_kwargs={"password": "sentinel-secret", "socket_timeout": 1.0},
            password="data-secret",
            socket_timeout=1.0,
        )
        master = sentinel.master_for(setup.master_name, decode_responses=True)
        old = None
        try:
            await master.set("before", "1")
            await setup.wait_replicated()
            old = setup.kill_master()
            failover = await setup.wait_for_failover(timeout=20)
            await master.set("after", "2")

            assert await setup.restart_old_master(empty=True) == old
            rejoined = await setup.wait_for_replica(timeout=100)
            print(
                f"sentinel failover with passwords: {failover.seconds:.2f}s; "
                f"the old master a replica {rejoined:.2f}s after its restart"
            )
            record_property("sentinel_failover_seconds", round(failover.seconds, 2))
            record_property("old_master_rejoined_seconds", round(rejoined, 2))

            assert old in await sentinel.discover_slaves(setup.master_name)
            await setup.wait_replicated()
            back = aioredis.Redis(host=old[0], port=old[1], password="data-secret", decode_responses=True)
            try:
                role = await back.info("replication")
                assert (role["role"], role["master_port"]) == ("slave", failover.address[1])
                assert await back.mget("before", "after") == ["1", "2"]  # the new master's data
            finally:
                await back.aclose()
        finally:
            await master.aclose()
            await sentinel.aclose()


# -- Cluster ----------------------------------------------------------------------------------


async def _increment_in_a_transaction(client: RedisCluster, counter: str, note: str) -> list[object]:
    """WATCH the counter, read it, and write it back incremented alongside a note, atomically."""
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(counter)
        current = int(await pipe.get(counter) or 0)
        pipe.multi()
        pipe.set(counter, current + 1)
        pipe.hset(f"{TAGGED}:notes", str(current + 1), note)
        result: list[object] = await pipe.execute()
        return result


async def test_redis_cluster_client_survives_losing_the_master_of_a_slot(
    cluster_setup: ClusterSetup, record_property: RecordProperty
) -> None:
    cluster = cluster_setup
    client = RedisCluster(startup_nodes=cluster.startup_nodes(), decode_responses=True)
    try:
        keys = [f"incident:{n}" for n in range(30)]
        assert len({cluster.master_of(key) for key in keys}) == 3  # the keys span every master
        for key in keys:
            await client.set(key, key.upper())

        counter = f"{TAGGED}:counter"
        assert await _increment_in_a_transaction(client, counter, "first") == [True, 1]
        both = client.register_script(
            "redis.call('SET', KEYS[1], ARGV[1]) "
            "redis.call('SET', KEYS[2], ARGV[1]) "
            "return redis.call('MGET', KEYS[1], KEYS[2])"
        )
        script_keys = [f"{TAGGED}:a", f"{TAGGED}:b"]
        assert await both(keys=script_keys, args=["x"]) == ["x", "x"]
        await cluster.wait_replicated()

        killed = cluster.kill_master_of(TAGGED)
        seconds = await cluster.wait_for_failover(TAGGED, timeout=30)
        print(f"cluster failover: {seconds:.2f}s from SIGKILL until the promoted replica serves the slot")
        record_property("cluster_failover_seconds", round(seconds, 2))

        promoted = cluster.master_of(TAGGED)
        assert promoted != killed
        assert killed not in cluster.addresses()
        # Everything written before the kill was replicated, so it is all still there.
        assert await client.mget(*keys[:1]) == [keys[0].upper()]
        for key in keys:
            assert await client.get(key) == key.upper()
        # The same slot takes writes, transactions and scripts again (the script cache is per node:
        # redis-py loads it on the promoted replica when EVALSHA says NOSCRIPT).
        await client.set(f"{TAGGED}:after", "yes")
        assert await _increment_in_a_transaction(client, counter, "second") == [True, 1]
        assert await client.get(counter) == "2"
        assert await client.hgetall(f"{TAGGED}:notes") == {"1": "first", "2": "second"}
        assert await both(keys=script_keys, args=["y"]) == ["y", "y"]
        slot_owner = client.get_node_from_key(TAGGED)
        assert slot_owner is not None and (slot_owner.host, slot_owner.port) == promoted
    finally:
        await client.aclose()


async def test_a_cluster_created_by_hand_serves_every_slot() -> None:
    async with _or_skip(partial(ClusterSetup, use_redis_cli=False, password="cluster-secret")) as cluster:
        view = cluster.view()
        masters = [v for v in view.values() if v.is_master]
        assert len(masters) == 3
        assert all(sum(1 for v in view.values() if v.master_id == m.id) == 1 for m in masters)
        assert sum(last - first + 1 for m in masters for first, last in m.slots) == 16384

        client = RedisCluster(startup_nodes=cluster.startup_nodes(), password="cluster-secret")
        try:
            keys = [f"k{n}" for n in range(20)]
            assert len({cluster.master_of(key) for key in keys}) == 3
            for key in keys:
                await client.set(key, key)
            assert [await client.get(key) for key in keys] == [key.encode() for key in keys]
        finally:
            await client.aclose()


# -- cleanup ----------------------------------------------------------------------------------


async def test_every_process_and_file_goes_when_the_test_body_fails() -> None:
    setup = _or_skip(SentinelSetup)
    with pytest.raises(RuntimeError, match="the test failed"):
        async with setup:
            pids = setup.pids()
            directory = setup.directory
            assert len(pids) == 5 and all(map(_alive, pids.values()))
            setup.kill_master()  # a node already gone is no trouble either
            raise RuntimeError("the test failed")
    assert not any(map(_alive, pids.values()))
    assert not directory.exists()
    assert setup.pids() == {}


async def test_a_setup_that_does_not_come_up_in_time_leaves_nothing_running(tmp_path: Path) -> None:
    # The masters of a new cluster wait two seconds before they call it ok: it cannot be ready in 0.5 s.
    setup = _or_skip(partial(ClusterSetup, start_timeout=0.5, base_dir=tmp_path))
    with pytest.raises(TimeoutError):
        await setup.start()
    assert _processes_mentioning(str(tmp_path)) == []
    assert setup.pids() == {}


async def test_a_port_someone_takes_before_redis_binds_it_is_chosen_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = socket.socket()
    taken.bind((topologies.LOOPBACK, 0))
    taken.listen()
    port = int(taken.getsockname()[1])
    choose = topologies.free_ports
    rounds = []

    def first_master_port_taken(count: int) -> list[int]:
        ports = choose(count)
        rounds.append(ports)
        if len(rounds) == 1:
            ports[0] = port
        return ports

    monkeypatch.setattr(topologies, "free_ports", first_master_port_taken)
    try:
        async with _or_skip(SentinelSetup) as setup:
            assert len(rounds) == 2
            master = await setup.master_address()
            assert master == setup.data_addresses()[0] and master[1] != port
    finally:
        taken.close()
