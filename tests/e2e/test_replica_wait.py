"""Writes a user is told are saved wait for a replica (`WAIT 1 <ms>` on the write's connection),
on a Sentinel-watched master and on a Cluster, against real servers on loopback.

A replica is paused with SIGSTOP: a write must not be answered before it is resumed (and then the
replica holds it). A replica that stays silent costs one timeout; later writes skip waiting (no
WAIT reaches the master) until the pause is over, and each counts as unconfirmed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.alert_groups import AlertView, GroupRecord, group_id
from bot.alert_store import AlertGroupStore
from bot.alerts import BUILTIN_SEVERITY_MAP
from bot.models import EventKind, Tick, TimelineEvent
from bot.store import UNCONFIRMED_BACKOFF, Change, IncidentStore, ReplicaWait, connect
from tests.evidence.alert_payloads import group
from tests.topologies import ClusterSetup, RedisProcess, SentinelSetup
from tests.unit.test_store import NOW, create, make_incident, seed_checklists, tick, tick_event


@dataclass
class Topology:
    url: str
    master: RedisProcess  # the master holding INC-1's slot
    replica: RedisProcess  # its replica
    settle: Callable[[], Awaitable[None]]  # wait until the replica caught up again
    same_master: Callable[[str], bool]  # whether a key lives on `master`
    cluster: bool = False


@pytest.fixture(params=["sentinel", "cluster"])
async def topology(request: pytest.FixtureRequest) -> AsyncIterator[Topology]:
    """A fresh setup of its own: the test pauses its processes."""
    try:
        setup: SentinelSetup | ClusterSetup = (
            SentinelSetup() if request.param == "sentinel" else ClusterSetup()
        )
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    async with setup:
        if isinstance(setup, SentinelSetup):
            sentinels = ",".join(f"{h}:{p}" for h, p in setup.sentinel_addresses())
            yield Topology(
                f"redis+sentinel://{sentinels}/{setup.master_name}",
                setup.master,
                setup.replica,
                setup.wait_replicated,
                lambda key: True,
            )
        else:
            key = keys.incident("INC-1")
            owner = next(n for n in setup.nodes if n.address == setup.master_of(key))
            yield Topology(
                "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in setup.addresses()),
                owner,
                setup.replica_of(key),
                setup.wait_replicated,
                lambda other: setup.master_of(other) == owner.address,
                cluster=True,
            )


def _client(process: RedisProcess) -> aioredis.Redis:
    host, port = process.address
    return aioredis.Redis(
        host=host, port=port, decode_responses=True, socket_timeout=2, single_connection_client=True
    )


async def _wait_calls(master: RedisProcess) -> int:
    """How many WAIT commands the master has run."""
    client = _client(master)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def _renamed(title: str) -> Callable[..., Change]:
    return lambda current: Change(
        current.model_copy(update={"title": title, "revision": current.revision + 1}),
        [TimelineEvent(at=NOW, kind=EventKind.STATUS_UPDATE, text=title)],
    )


async def _answered_after_resume(replica: RedisProcess, write: Awaitable[object]) -> bool:
    """Pause the replica, start `write`, resume the replica 0.3 s later; whether the write was
    answered only after the resume."""
    resumed = asyncio.Event()

    def resume() -> None:
        replica.resume()
        resumed.set()

    replica.pause()
    handle = asyncio.get_running_loop().call_later(0.3, resume)
    try:
        await write
        return resumed.is_set()
    finally:
        handle.cancel()
        replica.resume()


async def test_acknowledged_writes_wait_for_the_replica_and_a_silent_one_is_waited_for_once(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    wait = ReplicaWait(replicas=1, timeout_ms=500)
    store = IncidentStore(connect(topology.url), wait, clock=lambda: now[0])
    replica = _client(topology.replica)
    try:
        if topology.cluster:  # a cluster replica serves reads once told READONLY
            await replica.execute_command("READONLY")
        incident, assess, _ = await seed_checklists(store)
        await topology.settle()
        item = assess.item_ids()[0]
        seeded = store.confirmed_writes  # the incident's creation

        # 1. Each kind of acknowledged write is answered once the replica has it, not before.
        ticked = tick(store, incident, assess.ts, item, Tick(by="U2", at=NOW), tick_event(item))
        assert await _answered_after_resume(topology.replica, ticked)
        assert await replica.hexists(keys.ticks(incident.id), item)

        renamed = store.update_incident(incident.id, _renamed("r1"))
        assert await _answered_after_resume(topology.replica, renamed)
        assert "r1" in str(await replica.get(keys.incident(incident.id)))

        # An incident on the same master (the write's own connection is the one that waits).
        number = next(n for n in range(2, 200) if topology.same_master(keys.incident(f"INC-{n}")))
        created = create(store, make_incident(number), request_id="req-2")
        assert await _answered_after_resume(topology.replica, created)
        assert await replica.exists(keys.incident(f"INC-{number}"))
        assert (store.confirmed_writes, store.unconfirmed_writes) == (seeded + 3, 0)

        # 2. A replica that answers nothing: one write waits out the timeout, is saved all the
        # same, and says so once in the log; the next ones do not wait.
        store.replica_wait = ReplicaWait(replicas=1, timeout_ms=100)
        waits = await _wait_calls(topology.master)
        topology.replica.pause()
        try:
            with caplog.at_level(logging.WARNING, logger="bot.store"):
                for n in range(3):
                    await store.update_incident(incident.id, _renamed(f"silent {n}"))
            assert (await store.get_incident(incident.id)).title == "silent 2"
            assert await _wait_calls(topology.master) == waits + 1
            assert store.unconfirmed_writes == 3
            warnings = [r.getMessage() for r in caplog.records if r.name == "bot.store"]
            assert len(warnings) == 1 and "no replica confirmed it within 100 ms" in warnings[0]
        finally:
            topology.replica.resume()
        await topology.settle()

        # 3. After the pause, writes wait again (and the replica confirms them).
        now[0] += UNCONFIRMED_BACKOFF
        untick = tick_event(item, kind=EventKind.UNTICKED)
        changed, _ = await tick(store, incident, assess.ts, item, None, untick)
        assert changed is True
        assert await _wait_calls(topology.master) == waits + 2
        assert (store.confirmed_writes, store.unconfirmed_writes) == (seeded + 4, 3)
    finally:
        await replica.aclose()
        await store.close()


async def test_an_alert_group_record_is_answered_once_the_replica_has_it(topology: Topology) -> None:
    """What the webhook's 200 stands on (an alert group's record, by compare-and-set) waits for
    the replica as an incident write does."""
    store = IncidentStore(connect(topology.url), ReplicaWait(replicas=1, timeout_ms=500))
    groups = AlertGroupStore(store)
    replica = _client(topology.replica)
    try:
        if topology.cluster:
            await replica.execute_command("READONLY")
        group_key = next(
            key
            for key in (f'{{}}:{{alertname="Errors{n}"}}' for n in range(200))
            if topology.same_master(keys.alert_group(group_id(key)))
        )
        view = AlertView.of(group(group_key=group_key), BUILTIN_SEVERITY_MAP)

        async def first(current: GroupRecord | None) -> GroupRecord:
            return GroupRecord.first(group_key, "0123456789abcdef", view, NOW)

        written = groups.update(group_id(group_key), first, at=NOW, notified=True)
        assert await _answered_after_resume(topology.replica, written)
        assert await replica.exists(keys.alert_group(group_id(group_key)))
        assert (store.confirmed_writes, store.unconfirmed_writes) == (1, 0)
    finally:
        await replica.aclose()
        await store.close()
