"""What waiting for a replica costs a write: `python -m bench.replica_wait [--writes N]`.

Starts a private master and a replica (`redis-server --replicaof`) on loopback and times the
store's acknowledged writes (a tick, an incident update) one after another, without replica
waits and with `WAIT 1 200`. Prints p50/p99 per write in milliseconds."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bench.stats import Summary, summarize
from bot.demo.harness import RedisServer
from bot.models import (
    ChecklistItem,
    ChecklistMessage,
    ChecklistSection,
    EventKind,
    Incident,
    Phase,
    Severity,
    Tick,
    TimelineEvent,
)
from bot.store import Change, IncidentStore, ReplicaWait, connect

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TS = "1764590400.000100"


async def _replicating(replica: RedisServer) -> None:
    client = aioredis.Redis(port=replica.port, decode_responses=True)
    try:
        for _ in range(400):
            if (await client.info("replication")).get("master_link_status") == "up":
                return
            await asyncio.sleep(0.025)
        raise RuntimeError("the replica did not sync with its master")
    finally:
        await client.aclose()


async def _seed(store: IncidentStore, number: int) -> tuple[Incident, str]:
    incident = Incident(
        id=f"INC-{number}",
        uid=f"bench-{number}",
        number=number,
        severity=Severity.SEV2,
        title="Checkout requests failing",
        declared_by="U1",
        commander="U1",
        declared_at=NOW,
        updated_at=NOW,
        origin_channel="C0",
    )
    event = TimelineEvent(at=NOW, kind=EventKind.DECLARED, by="U1", text="Declared")
    await store.create_incident(incident, event, [], f"bench-{number}")
    item = ChecklistItem(id="0123456789", text="Is it getting worse?")
    section = ChecklistSection(title="Impact", items=(item,))
    await store.add_checklist_message(
        incident.id, ChecklistMessage(channel="C1", ts=TS, phase=Phase.ASSESS, sections=(section,))
    )
    return incident, item.id


async def _timed(writes: int, write: Callable[[int], Awaitable[object]]) -> Summary:
    took = []
    for n in range(writes):
        started = time.perf_counter()
        await write(n)
        took.append((time.perf_counter() - started) * 1000)
    return summarize(took)


async def _one_mode(url: str, number: int, wait: ReplicaWait, writes: int) -> dict[str, Summary]:
    store = IncidentStore(connect(url), wait)
    try:
        incident, item = await _seed(store, number)

        async def tick(n: int) -> object:
            event = TimelineEvent(at=NOW, kind=EventKind.TICKED, by="U2", text="t", item=item)
            value = Tick(by="U2", at=NOW) if n % 2 == 0 else None
            return await store.set_tick(incident.id, TS, item, value, event, incident.uid, NOW)

        async def update(n: int) -> object:
            return await store.update_incident(
                incident.id, lambda i: Change(i.model_copy(update={"title": f"title {n}"}))
            )

        figures = {"tick": await _timed(writes, tick), "update": await _timed(writes, update)}
        if wait.enabled and store.unconfirmed_writes:
            raise RuntimeError(f"{store.unconfirmed_writes} writes were not confirmed by the replica")
        return figures
    finally:
        await store.close()


async def measure(writes: int) -> dict[str, dict[str, Summary]]:
    master = RedisServer()
    await master.start()
    replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
    try:
        await replica.start()
        await _replicating(replica)
        return {
            "no wait": await _one_mode(master.url, 1, ReplicaWait(0), writes),
            "WAIT 1 200": await _one_mode(master.url, 2, ReplicaWait(1, 200), writes),
        }
    finally:
        replica.stop()
        master.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_wait", description=__doc__)
    parser.add_argument("--writes", type=int, default=1000, help="writes of each kind per mode (1000)")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.writes))
    print(f"{args.writes} sequential writes of each kind, master and replica on loopback (ms per write):")
    for label, kinds in figures.items():
        cells = "  ".join(f"{kind} p50 {s.p50:.2f} p99 {s.p99:.2f}" for kind, s in kinds.items())
        print(f"  {label:<11} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
