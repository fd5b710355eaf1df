"""The Redis store contract, run on fakeredis and on a real Redis (the `store` fixture)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from redis.crc import key_slot

from bot import keys
from bot.effects import PostHeader, Work
from bot.errors import (
    IncidentExists,
    IncidentNotFound,
    NotAChecklistItem,
    StaleReference,
    StoreUnavailable,
)
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
    item_id,
)
from bot.settings import Settings
from bot.store import Change, IncidentStore, ReplicaWait, connect, replica_wait_for

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TS_ASSESS = "1764079200.000100"
TS_MITIGATE = "1764079201.000200"
RECHECK = NOW + timedelta(seconds=3)  # when the delivery loop re-checks a ticked message


def make_incident(number: int = 1, **changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": f"INC-{number}",
        "uid": f"uid-{number}",
        "number": number,
        "severity": Severity.SEV2,
        "title": "Checkout requests failing",
        "declared_by": "U1",
        "commander": "U1",
        "declared_at": NOW,
        "updated_at": NOW,
        "origin_channel": "C0",
    }
    fields.update(changes)
    return Incident(**fields)


def declared(incident: Incident) -> TimelineEvent:
    return TimelineEvent(at=NOW, kind=EventKind.DECLARED, by=incident.declared_by, text="Declared")


async def create(
    store: IncidentStore,
    incident: Incident,
    event: TimelineEvent | None = None,
    works: list[Work] | None = None,
    request_id: str = "req-declare",
) -> Incident:
    return await store.create_incident(incident, event or declared(incident), works or [], request_id)


async def tick(
    store: IncidentStore, incident: Incident, ts: str, item: str, value: Tick | None, event: TimelineEvent
) -> Any:
    return await store.set_tick(incident.id, ts, item, value, event, incident.uid, RECHECK)


def with_recheck_hint(before: dict[str, Any], incident_id: str) -> dict[str, Any]:
    """`before` plus the recheck hint that set_tick writes first, by design (a hint that finds
    nothing to do is harmless): what the store holds after a tick that must write nothing."""
    due = dict(before.get(keys.OUTBOX_DUE, []))
    due[incident_id] = RECHECK.timestamp()
    return {**before, keys.OUTBOX_DUE: sorted(due.items(), key=lambda kv: (kv[1], kv[0]))}


def section(title: str, count: int) -> ChecklistSection:
    texts = [f"{title} {n}" for n in range(count)]
    return ChecklistSection(
        title=title, items=tuple(ChecklistItem(id=item_id(title, t), text=t) for t in texts)
    )


def message(ts: str, phase: Phase, *sections: ChecklistSection) -> ChecklistMessage:
    return ChecklistMessage(channel="C1", ts=ts, phase=phase, sections=sections)


def tick_event(item: str, by: str = "U2", kind: EventKind = EventKind.TICKED) -> TimelineEvent:
    return TimelineEvent(at=NOW, kind=kind, by=by, text=kind.value, item=item)


async def snapshot(store: IncidentStore) -> dict[str, Any]:
    """Every key and its whole value, to prove that a failed write wrote nothing."""
    redis = store.redis
    dump: dict[str, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        if kind == "string":
            dump[key] = await redis.get(key)
        elif kind == "list":
            dump[key] = await redis.lrange(key, 0, -1)
        elif kind == "hash":
            dump[key] = await redis.hgetall(key)
        elif kind == "zset":
            dump[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            dump[key] = sorted(await redis.smembers(key))
        else:
            raise AssertionError(f"unexpected type {kind} of {key}")
    return dump


async def seed_checklists(store: IncidentStore) -> tuple[Incident, ChecklistMessage, ChecklistMessage]:
    """An incident with two checklist messages: assess (4 items) and mitigate (2 sections of 3)."""
    incident = await create(store, make_incident())
    assess = message(TS_ASSESS, Phase.ASSESS, section("Impact", 4))
    mitigate = message(TS_MITIGATE, Phase.MITIGATE, section("Rollback", 3), section("Scaling", 3))
    await store.add_checklist_message(incident.id, assess)
    await store.add_checklist_message(incident.id, mitigate)
    return incident, assess, mitigate


# -- key names ---------------------------------------------------------------------------------


async def test_incident_keys_carry_the_id_as_a_hash_tag(store: IncidentStore) -> None:
    incident_id, number = await store.number_for("req-keys")
    incident = await create(store, make_incident(number), works=[PostHeader()])
    await store.update_incident(
        incident_id, lambda i: Change(i.in_channel("C9", "inc-1", True, NOW), works=[PostHeader()])
    )
    await store.index_channel("C9", incident_id)
    checklist = message(TS_ASSESS, Phase.ASSESS, section("Impact", 2))
    await store.update_incident(incident_id, lambda i: Change(i, checklist=checklist))
    item = checklist.item_ids()[0]
    await tick(store, incident, TS_ASSESS, item, Tick(by="U2", at=NOW), tick_event(item))

    found = set(await store.redis.keys("*"))

    per_incident = {k for k in found if k.startswith(f"{keys.PREFIX}:")}
    assert per_incident == {
        "incident:{INC-1}",
        "incident:{INC-1}:timeline",
        "incident:{INC-1}:messages",
        "incident:{INC-1}:items",
        "incident:{INC-1}:ticks",
        "incident:{INC-1}:revs",
        "incident:{INC-1}:shown",
        "incident:{INC-1}:outbox",
    }
    request = keys.declare_request("req-keys")
    globals_ = {keys.SEQUENCE, keys.IDENTITY, request, keys.OPEN, keys.BY_CHANNEL, keys.OUTBOX_DUE}
    assert found - per_incident == globals_
    # One script takes the number, records the request and checks the store's identity.
    assert key_slot(request.encode()) == key_slot(keys.SEQUENCE.encode()) == key_slot(keys.IDENTITY.encode())
    assert len({key_slot(k.encode()) for k in per_incident}) == 1  # one Redis Cluster slot
    assert all(re.fullmatch(r"incident:\{INC-1\}(:[a-z]+)?", k) for k in per_incident)


# -- incidents ---------------------------------------------------------------------------------


async def test_incident_numbers_count_up_once_per_request(store: IncidentStore) -> None:
    taken = [await store.number_for(f"req-{n}") for n in range(3)]
    assert taken == [("INC-1", 1), ("INC-2", 2), ("INC-3", 3)]
    # A retried request (its answer lost) gets the number its first try took.
    assert await store.number_for("req-1") == ("INC-2", 2)
    assert await store.number_for("req-9") == ("INC-4", 4)


async def test_create_and_get_incident_round_trip(store: IncidentStore) -> None:
    incident = make_incident(7, channel_id="C7", header_ts="1.2", status_changed_at={})
    event = declared(incident)
    assert await create(store, incident, event) == incident

    assert await store.get_incident("INC-7") == incident
    assert await store.timeline("INC-7") == [event]
    assert await store.open_incident_ids() == ["INC-7"]


async def test_create_incident_stores_its_work_in_the_outbox(store: IncidentStore) -> None:
    incident = make_incident(revision=0)
    await create(store, incident, works=[PostHeader()])

    assert [(e.id, e.work) for e in await store.outbox(incident.id)] == [("0000000.00.header", PostHeader())]
    assert await store.outbox_due(NOW) == 1


async def test_get_unknown_incident(store: IncidentStore) -> None:
    with pytest.raises(IncidentNotFound):
        await store.get_incident("INC-404")


async def test_create_incident_twice_fails_and_keeps_the_first(store: IncidentStore) -> None:
    first = await create(store, make_incident(3, title="first"), request_id="req-1")

    with pytest.raises(IncidentExists, match="already exists"):
        await create(store, make_incident(3, title="second"), declared(first), request_id="req-2")

    assert await store.get_incident("INC-3") == first


def without_hints(dump: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """The snapshot apart from the delivery hints, and the hints by incident."""
    rest = dict(dump)
    hints = dict(rest.pop(keys.OUTBOX_DUE, []))
    return rest, hints


async def test_create_incident_twice_writes_nothing(store: IncidentStore) -> None:
    first = await create(store, make_incident(3, title="first"), request_id="req-1")
    before, hints_before = without_hints(await snapshot(store))

    with pytest.raises(IncidentExists, match="already exists"):
        await create(store, make_incident(3, title="second"), declared(first), request_id="req-2")

    after, hints_after = without_hints(await snapshot(store))
    assert after == before
    # The hint written before the try moves by a millisecond and no more: nothing due is delayed.
    assert hints_after.keys() == hints_before.keys() == {"INC-3"}
    assert 0 < hints_after["INC-3"] - hints_before["INC-3"] <= 0.002


async def test_retried_create_returns_the_stored_incident_and_writes_nothing(store: IncidentStore) -> None:
    first = await create(
        store, make_incident(3, title="first", requests=("req-1",)), works=[PostHeader()], request_id="req-1"
    )
    before = await snapshot(store)

    again = await create(
        store, make_incident(3, title="retry", requests=("req-1",)), works=[PostHeader()], request_id="req-1"
    )

    assert again == first
    after, hints_after = without_hints(await snapshot(store))
    rest_before, hints_before = without_hints(before)
    assert after == rest_before
    assert hints_after["INC-3"] - hints_before["INC-3"] <= 0.002  # due as before: delivered at once


async def test_update_incident_applies_the_change_and_the_event(store: IncidentStore) -> None:
    incident = await create(store, make_incident())
    event = TimelineEvent(at=NOW, kind=EventKind.CHANNEL, text="moved")
    later = NOW + timedelta(minutes=1)

    updated, written = await store.update_incident(
        "INC-1", lambda i: Change(i.in_channel("C5", "inc-1", True, later), [event])
    )

    assert written is True
    assert updated == incident.in_channel("C5", "inc-1", True, later)
    assert (updated.channel_id, updated.revision, updated.updated_at) == ("C5", incident.revision + 1, later)
    assert await store.get_incident("INC-1") == updated
    assert (await store.timeline("INC-1"))[-1] == event


async def test_update_incident_that_decides_nothing_writes_nothing(store: IncidentStore) -> None:
    incident = await create(store, make_incident())
    before = await snapshot(store)

    current, written = await store.update_incident("INC-1", lambda i: None)

    assert (current, written) == (incident, False)
    assert await snapshot(store) == before


async def test_update_incident_records_a_checklist_message(store: IncidentStore) -> None:
    incident = await create(store, make_incident())
    posted = message(TS_ASSESS, Phase.ASSESS, section("Impact", 3))
    event = TimelineEvent(
        at=NOW, kind=EventKind.CHECKLIST_POSTED, text="Posted the assess checklist (3 items)"
    )

    await store.update_incident(incident.id, lambda i: Change(i, [event], checklist=posted))

    assert await store.checklist_messages(incident.id) == [posted]
    assert (await store.timeline(incident.id))[-1] == event
    state = await store.message_state(incident.id, TS_ASSESS)
    assert (state.message, state.ticks, state.rev) == (posted, {}, 0)
    item = posted.item_ids()[1]
    changed, _ = await tick(store, incident, TS_ASSESS, item, Tick(by="U2", at=NOW), tick_event(item))
    assert changed is True  # its items are tickable


async def test_update_unknown_incident(store: IncidentStore) -> None:
    with pytest.raises(IncidentNotFound):
        await store.update_incident("INC-404", lambda i: Change(i))
    assert await store.redis.keys("*") == []


async def test_concurrent_updates_lose_nothing(store: IncidentStore) -> None:
    await create(store, make_incident(title="t"))

    def append(n: int) -> Any:
        return lambda current: Change(
            current.model_copy(update={"title": f"{current.title}|{n}"}),
            [TimelineEvent(at=NOW, kind=EventKind.STATUS_UPDATE, text=str(n))],
        )

    await asyncio.gather(*(store.update_incident("INC-1", append(n)) for n in range(20)))

    parts = (await store.get_incident("INC-1")).title.split("|")
    assert parts[0] == "t"
    assert sorted(parts[1:], key=int) == [str(n) for n in range(20)]
    events = (await store.timeline("INC-1"))[1:]
    assert sorted(e.text for e in events) == sorted(str(n) for n in range(20))


async def test_channel_index(store: IncidentStore) -> None:
    incident = await create(store, make_incident(channel_id="C9"))
    assert await store.incident_for_channel("C9") is None

    await store.index_channel("C9", "INC-1")

    assert await store.incident_for_channel("C9") == incident
    assert await store.incident_for_channel("C10") is None


async def test_claim_channel_holds_one_open_incident(store: IncidentStore) -> None:
    first = await create(store, make_incident(1))
    await create(store, make_incident(2))

    assert await store.claim_channel("C0", first.id) is None
    assert await store.claim_channel("C0", first.id) is None  # claiming again is fine
    assert await store.claim_channel("C0", "INC-2") == first.id
    assert await store.incident_for_channel("C0") == first

    await store.update_incident(first.id, lambda i: Change(i.resolved(NOW)))
    assert await store.claim_channel("C0", "INC-2") is None  # a resolved holder gives way
    assert (await store.incident_for_channel("C0")) == await store.get_incident("INC-2")


# -- ticks -------------------------------------------------------------------------------------


async def test_tick_and_untick(store: IncidentStore) -> None:
    incident, assess, _ = await seed_checklists(store)
    item = assess.item_ids()[1]
    ticked = Tick(by="U2", at=NOW)

    changed, state = await tick(store, incident, TS_ASSESS, item, ticked, tick_event(item))
    assert changed is True
    assert state.ticks == {item: ticked}
    assert state.rev == 1
    assert state.message == assess
    assert await store.ticks(incident.id) == {item: ticked}

    changed, state = await tick(
        store, incident, TS_ASSESS, item, None, tick_event(item, kind=EventKind.UNTICKED)
    )
    assert changed is True
    assert state.ticks == {}
    assert state.rev == 2
    assert await store.ticks(incident.id) == {}

    kinds = [(e.kind, e.item) for e in await store.timeline(incident.id)]
    assert kinds == [(EventKind.DECLARED, None), (EventKind.TICKED, item), (EventKind.UNTICKED, item)]


async def test_a_tick_asks_the_delivery_loop_to_recheck_the_message(store: IncidentStore) -> None:
    incident, assess, _ = await seed_checklists(store)
    item = assess.item_ids()[0]

    await tick(store, incident, TS_ASSESS, item, Tick(by="U2", at=NOW), tick_event(item))

    assert await store.redis.zrange(keys.OUTBOX_DUE, 0, -1, withscores=True) == [
        (incident.id, RECHECK.timestamp())
    ]


async def test_ticking_twice_keeps_the_first_ticker(store: IncidentStore) -> None:
    incident, assess, _ = await seed_checklists(store)
    item = assess.item_ids()[0]
    first = Tick(by="U2", at=NOW)
    await tick(store, incident, TS_ASSESS, item, first, tick_event(item, by="U2"))
    timeline_before = await store.timeline(incident.id)

    changed, state = await tick(
        store,
        incident,
        TS_ASSESS,
        item,
        Tick(by="U3", at=NOW + timedelta(minutes=5)),
        tick_event(item, by="U3"),
    )

    assert changed is False
    assert state.ticks == {item: first}
    assert state.rev == 1  # unchanged
    assert await store.timeline(incident.id) == timeline_before
    assert await store.message_revision(incident.id, TS_ASSESS) == 1


async def test_unticking_an_unticked_item_changes_nothing(store: IncidentStore) -> None:
    incident, assess, _ = await seed_checklists(store)
    item = assess.item_ids()[0]
    before = await snapshot(store)

    changed, state = await tick(
        store, incident, TS_ASSESS, item, None, tick_event(item, kind=EventKind.UNTICKED)
    )

    assert changed is False
    assert state.rev == 0
    assert state.ticks == {}
    assert await snapshot(store) == with_recheck_hint(before, incident.id)


async def test_revisions_are_per_message(store: IncidentStore) -> None:
    incident, _, mitigate = await seed_checklists(store)
    for item in mitigate.item_ids()[:3]:
        await tick(store, incident, TS_MITIGATE, item, Tick(by="U2", at=NOW), tick_event(item))

    assert await store.message_revision(incident.id, TS_MITIGATE) == 3
    assert await store.message_revision(incident.id, TS_ASSESS) == 0
    state = await store.message_state(incident.id, TS_MITIGATE)
    assert state.rev == 3
    assert set(state.ticks) == set(mitigate.item_ids()[:3])


@pytest.mark.parametrize(
    ("ts", "pick"),
    [
        pytest.param(
            TS_ASSESS, lambda assess, mitigate: mitigate.item_ids()[0], id="item-of-another-message"
        ),
        pytest.param(TS_ASSESS, lambda assess, mitigate: "0123456789", id="unknown-item"),
        pytest.param(
            "9999999999.000000", lambda assess, mitigate: assess.item_ids()[0], id="unknown-message"
        ),
    ],
)
@pytest.mark.parametrize("checked", [True, False])
async def test_foreign_or_stale_clicks_write_nothing(
    store: IncidentStore, ts: str, pick: Any, checked: bool
) -> None:
    incident, assess, mitigate = await seed_checklists(store)
    # One existing tick, so an untick of a foreign item would have something to delete.
    for item in mitigate.item_ids():
        await tick(store, incident, TS_MITIGATE, item, Tick(by="U9", at=NOW), tick_event(item))
    item = pick(assess, mitigate)
    before = await snapshot(store)

    with pytest.raises(NotAChecklistItem):
        await tick(store, incident, ts, item, Tick(by="U2", at=NOW) if checked else None, tick_event(item))

    assert await snapshot(store) == with_recheck_hint(before, incident.id)


@pytest.mark.parametrize("checked", [True, False])
async def test_ticks_through_another_incidents_uid_are_stale(store: IncidentStore, checked: bool) -> None:
    incident, assess, _ = await seed_checklists(store)
    item = assess.item_ids()[0]
    await tick(store, incident, TS_ASSESS, item, Tick(by="U9", at=NOW), tick_event(item))
    before = await snapshot(store)

    with pytest.raises(StaleReference):
        await store.set_tick(
            incident.id,
            TS_ASSESS,
            item,
            Tick(by="U2", at=NOW) if checked else None,
            tick_event(item),
            "uid-of-an-older-incident-1",
            RECHECK,
        )

    assert await snapshot(store) == with_recheck_hint(before, incident.id)


async def test_ticks_on_an_unknown_incident_are_rejected(store: IncidentStore) -> None:
    with pytest.raises(StaleReference):
        await store.set_tick(
            "INC-404", TS_ASSESS, "0123456789", Tick(by="U2", at=NOW), tick_event("x"), "uid-404", RECHECK
        )
    assert await snapshot(store) == with_recheck_hint({}, "INC-404")


async def test_fifty_concurrent_ticks_all_stick(store: IncidentStore) -> None:
    incident = await create(store, make_incident())
    big = message(TS_ASSESS, Phase.ASSESS, *(section(f"S{n}", 10) for n in range(5)))
    await store.add_checklist_message(incident.id, big)
    items = big.item_ids()
    assert len(items) == 50

    results = await asyncio.gather(
        *(
            tick(store, incident, TS_ASSESS, item, Tick(by=f"U{n}", at=NOW), tick_event(item, by=f"U{n}"))
            for n, item in enumerate(items)
        )
    )

    assert all(changed for changed, _ in results)
    assert sorted(state.rev for _, state in results) == list(range(1, 51))
    ticks = await store.ticks(incident.id)
    assert {item: t.by for item, t in ticks.items()} == {item: f"U{n}" for n, item in enumerate(items)}
    assert await store.message_revision(incident.id, TS_ASSESS) == 50
    ticked = [e.item for e in await store.timeline(incident.id) if e.kind is EventKind.TICKED]
    assert sorted(ticked) == sorted(items)


async def test_message_state_of_an_unknown_message(store: IncidentStore) -> None:
    incident, _, _ = await seed_checklists(store)
    with pytest.raises(NotAChecklistItem):
        await store.message_state(incident.id, "9999999999.000000")


async def test_checklist_messages_in_posting_order(store: IncidentStore) -> None:
    incident, assess, mitigate = await seed_checklists(store)
    assert await store.checklist_messages(incident.id) == [assess, mitigate]


# -- serialisation -----------------------------------------------------------------------------


async def test_stored_values_are_json_never_pickles(store: IncidentStore) -> None:
    assert await store.number_for("req-json") == ("INC-1", 1)
    incident, assess, _ = await seed_checklists(store)
    await store.index_channel("C1", incident.id)
    await tick(store, incident, TS_ASSESS, assess.item_ids()[0], Tick(by="U2", at=NOW), tick_event("x"))

    dump = await snapshot(store)  # decode_responses: a pickle (b"\x80...") would not even decode
    assert dump
    for key, value in dump.items():
        if key.startswith(f"{keys.PREFIX}:"):
            values = (
                value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
            )
            for raw in values:
                json.loads(raw)  # every value of an incident's keys is JSON
    # The global indexes hold bare ids and numbers.
    assert json.loads(dump[keys.SEQUENCE]) == 1
    assert dump[keys.BY_CHANNEL] == {"C1": "INC-1"}
    assert dump[keys.OPEN] == [("INC-1", NOW.timestamp())]
    assert dump[keys.OUTBOX_DUE] == [("INC-1", RECHECK.timestamp())]
    assert json.loads(dump["incident:{INC-1}"])["id"] == "INC-1"
    for raw in dump["incident:{INC-1}:messages"].values():
        assert json.loads(raw)["ts"] in (TS_ASSESS, TS_MITIGATE)


# -- an unreachable Redis ----------------------------------------------------------------------

UNREACHABLE_CALLS = {
    "ping": lambda s: s.ping(),
    "number_for": lambda s: s.number_for("req-1"),
    "create_incident": lambda s: s.create_incident(make_incident(), declared(make_incident()), [], "req-1"),
    "get_incident": lambda s: s.get_incident("INC-1"),
    "update_incident": lambda s: s.update_incident("INC-1", lambda i: Change(i)),
    "incident_for_channel": lambda s: s.incident_for_channel("C1"),
    "timeline": lambda s: s.timeline("INC-1"),
    "add_checklist_message": lambda s: s.add_checklist_message(
        "INC-1", message(TS_ASSESS, Phase.ASSESS, section("I", 1))
    ),
    "set_tick": lambda s: s.set_tick(
        "INC-1", TS_ASSESS, "0123456789", Tick(by="U2", at=NOW), tick_event("x"), "uid-1", RECHECK
    ),
    "message_state": lambda s: s.message_state("INC-1", TS_ASSESS),
}


@pytest.fixture
async def unreachable_store() -> Any:
    store = IncidentStore(connect("redis://127.0.0.1:1/0"))
    yield store
    await store.close()


@pytest.mark.parametrize("call", list(UNREACHABLE_CALLS.values()), ids=list(UNREACHABLE_CALLS))
async def test_unreachable_redis_raises_store_unavailable(
    unreachable_store: IncidentStore, call: Any
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StoreUnavailable):
        await call(unreachable_store)
    assert loop.time() - started < 2  # well inside Slack's 3-second budget


async def test_a_channel_claimed_by_a_declaration_not_stored_yet_stays_claimed(store: IncidentStore) -> None:
    # INC-1 claimed the borrowed channel and is still being stored: INC-2 must not take it.
    assert await store.claim_channel("C1", "INC-1") is None
    assert await store.claim_channel("C1", "INC-2") == "INC-1"
    assert await store.redis.hget(keys.BY_CHANNEL, "C1") == "INC-1"
    # Long after, a holder that never got stored is gone: the channel can be claimed.
    await store.redis.hset(keys.CLAIMED_AT, "C1", "1000")
    assert await store.claim_channel("C1", "INC-2") is None
    assert await store.redis.hget(keys.BY_CHANNEL, "C1") == "INC-2"


# -- replica waits (the real WAIT is in tests/e2e/test_replica_wait.py) -------------------------


@pytest.mark.parametrize(
    ("url", "replicas", "expected"),
    [
        ("redis://127.0.0.1:6379/0", None, 0),  # a single server may have no replica
        ("unix:///run/redis.sock", None, 0),
        ("redis+sentinel://127.0.0.1:26379/incidents", None, 1),
        ("redis+cluster://127.0.0.1:7000", None, 1),
        ("redis://127.0.0.1:6379/0", 1, 1),  # a managed primary with a replica behind one address
        ("redis+sentinel://127.0.0.1:26379/incidents", 0, 0),
    ],
)
def test_writes_wait_for_a_replica_where_redis_has_one_by_design(
    url: str, replicas: int | None, expected: int
) -> None:
    wait = replica_wait_for(url, replicas, 200)
    assert (wait.replicas, wait.timeout_ms, wait.enabled) == (expected, 200, expected > 0)
    assert not replica_wait_for(url, 1, 0).enabled  # REDIS_WAIT_MS=0 turns waits off


@pytest.mark.parametrize("value", ["-1", "501", "abc"])
def test_a_wait_longer_than_a_redis_answer_may_take_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_WAIT_MS", value)
    with pytest.raises(ValidationError, match="REDIS_WAIT_MS"):
        Settings()


async def test_a_server_that_refuses_wait_still_saves_and_says_so_once(
    fake_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """fakeredis has no WAIT, like a proxy that does not pass it on: each write stands, counts as
    unconfirmed, and the log says (once) how to turn waits off."""
    store = IncidentStore(fake_redis, ReplicaWait(replicas=1, timeout_ms=50))
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        incident, assess, _ = await seed_checklists(store)
        item = assess.item_ids()[0]
        changed, _ = await tick(store, incident, assess.ts, item, Tick(by="U2", at=NOW), tick_event(item))
        renamed = Change(incident.model_copy(update={"title": "renamed"}))
        _, written = await store.update_incident(incident.id, lambda i: renamed)

    assert changed is True and written is True
    assert (await store.get_incident(incident.id)).title == "renamed"
    assert item in await store.ticks(incident.id)
    assert (store.confirmed_writes, store.unconfirmed_writes) == (0, 3)
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.store"]
    assert len(warnings) == 1 and "REDIS_WAIT_REPLICAS=0" in warnings[0], warnings


async def test_an_update_decided_on_a_stale_read_is_decided_again(store: IncidentStore) -> None:
    """The write is conditional on the incident being what the change was decided on."""
    await create(store, make_incident(title="t"))
    seen: list[str] = []

    def rename(current: Incident) -> Change:
        seen.append(current.title)
        return Change(current.model_copy(update={"title": current.title + "|mine"}))

    async def meanwhile() -> None:
        await store.update_incident("INC-1", lambda i: Change(i.model_copy(update={"title": "theirs"})))

    original = store.redis.get

    async def get_then_race(key: str) -> Any:
        raw = await original(key)
        if len(seen) == 0 and key == keys.incident("INC-1"):
            store.redis.get = original  # type: ignore[method-assign]
            await meanwhile()
        return raw

    store.redis.get = get_then_race  # type: ignore[method-assign]
    updated, written = await store.update_incident("INC-1", rename)

    assert written is True
    assert seen == ["t", "theirs"]  # decided once on the stale read, then again on the fresh one
    assert updated.title == (await store.get_incident("INC-1")).title == "theirs|mine"


async def test_a_redis_py_internal_error_during_a_failover_is_a_store_failure(store: IncidentStore) -> None:
    """redis-py's asyncio Cluster client can fail inside itself when a connection it shares is
    closed under it (AttributeError: 'NoneType' object has no attribute 'writelines'): an answer
    that was lost, never a 500. The same error from this code still surfaces."""
    source = (
        "def boom(*args, **kwargs):\n"
        "    raise AttributeError(\"'NoneType' object has no attribute 'writelines'\")\n"
    )
    inside: dict[str, Any] = {}
    exec(
        compile(source, f"{os.sep}site-packages{os.sep}redis{os.sep}asyncio{os.sep}connection.py", "exec"),
        inside,
    )

    async def failing_get(key: str) -> Any:
        inside["boom"]()

    store.redis.get = failing_get  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable) as caught:
        await store.get_incident("INC-1")
    assert caught.value.written is None and "writelines" in str(caught.value)

    async def our_bug(key: str) -> Any:
        raise AttributeError("a mistake of ours")

    store.redis.get = our_bug  # type: ignore[method-assign]
    with pytest.raises(AttributeError, match="a mistake of ours"):
        await store.get_incident("INC-1")
