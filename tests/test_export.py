"""`incident-bot export` writes what the store holds as JSON, run as an operator runs it: a
subprocess against a real Redis (REDIS_URL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.export import incident_export, parse_incident_id
from bot.models import ChecklistMessage, EventKind, Incident, Phase, Severity, Status
from bot.playbook import load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService, UpdateDraft
from bot.store import Change, IncidentStore
from tests.conftest import FakeClock

pytestmark = pytest.mark.redis

TS = "1764079200.000100"


def export(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_", "REDIS_URL"))}
    env["REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "bot", "export", *args], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def clock() -> FakeClock:
    # Near the real time: Redis expires resolved incidents by its own clock.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def service(real_redis: aioredis.Redis, clock: FakeClock) -> IncidentService:
    store = IncidentStore(real_redis, retention=timedelta(days=90))
    return IncidentService(store, ScheduleStore(real_redis), load_playbook(), clock)


async def worked_incident(
    service: IncidentService, clock: FakeClock, request: str, *, resolve: bool
) -> Incident:
    """Declared, a checklist posted with one item ticked, an update, a note, a hypothesis; resolved
    and given a follow-up if asked."""
    incident = await service.declare_incident(
        Severity.SEV2, "Checkout failing", "U1", "C0", request_id=request
    )
    sections = service.checklists_for(Severity.SEV2)[Phase.ASSESS]
    posted = ChecklistMessage(channel="C9", ts=TS, phase=Phase.ASSESS, sections=tuple(sections))
    await service.store.update_incident(incident.id, lambda i: Change(i, checklist=posted))
    clock.advance(180)
    item = posted.item_ids()[1]
    await service.checklists.tick_item(incident.id, incident.uid, TS, item, "U2", checked=True)
    clock.advance(120)
    draft = UpdateDraft(
        status="Identified",
        impact="Checkout fails for 30% of users",
        current_state="Rolling back",
        next_update="30m",
    )
    await service.post_update(incident.id, incident.uid, draft, "U1", f"{request}-update")
    clock.advance(60)
    await service.investigation.add_note(incident.id, "Error rate back under 1%", "U2", f"{request}-note")
    await service.investigation.propose(incident.id, "Pool exhausted by v2.3.1", "U3", f"{request}-h")
    if resolve:
        clock.advance(1800)
        await service.resolve(incident.id, "U1", f"{request}-resolve")
        clock.advance(60)
        followup = "Alert on pool saturation"
        await service.investigation.add_followup(incident.id, followup, "U2", f"{request}-f")
    return await service.store.get_incident(incident.id)


async def stored_export(service: IncidentService, incident_id: str) -> dict[str, Any]:
    store = service.store
    return incident_export(
        await store.get_incident(incident_id),
        await store.timeline(incident_id),
        await store.checklist_messages(incident_id),
        await store.ticks(incident_id),
    )


async def test_export_writes_what_the_store_holds(
    service: IncidentService, clock: FakeClock, redis_test_url: str
) -> None:
    incident = await worked_incident(service, clock, "r1", resolve=True)

    done = export(redis_test_url, "inc-1")

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document == await stored_export(service, incident.id)
    # What a reader looks for, as stored.
    assert Incident.model_validate(document["record"]) == incident
    resolved_at = incident.status_changed_at[Status.RESOLVED]
    assert {k: document[k] for k in ("id", "title", "severity", "status", "declared_by", "commander")} == {
        "id": "INC-1",
        "title": "Checkout failing",
        "severity": "sev2",
        "status": "Resolved",
        "declared_by": "U1",
        "commander": "U1",
    }
    assert datetime.fromisoformat(document["resolved_at"]) == resolved_at
    assert datetime.fromisoformat(document["declared_at"]) == incident.declared_at
    timeline = await service.store.timeline(incident.id)
    assert document["timeline"] == [e.model_dump(mode="json") for e in timeline]
    assert [u["kind"] for u in document["updates"]] == [EventKind.STATUS_UPDATE, EventKind.RESOLVED]
    assert document["last_update"]["impact"] == "Checkout fails for 30% of users"
    assert [n["text"] for n in document["notes"]] == ["Error rate back under 1%"]
    assert [h["text"] for h in document["hypotheses"]] == ["Pool exhausted by v2.3.1"]
    assert [f["text"] for f in document["followups"]] == ["Alert on pool saturation"]
    [checklist] = document["checklists"]
    items = [item for section in checklist["sections"] for item in section["items"]]
    ticks = await service.store.ticks(incident.id)
    assert [i["id"] for i in items if i["ticked"]] == list(ticks)
    [ticked] = [i for i in items if i["ticked"]]
    [tick] = ticks.values()
    assert (ticked["ticked_by"], datetime.fromisoformat(ticked["ticked_at"])) == (tick.by, tick.at)
    assert all(i["ticked_by"] is None and i["ticked_at"] is None for i in items if not i["ticked"])


async def test_export_all_resolved_writes_one_line_per_resolved_incident(
    service: IncidentService, clock: FakeClock, redis_test_url: str
) -> None:
    first = await worked_incident(service, clock, "r1", resolve=True)
    await worked_incident(service, clock, "r2", resolve=False)
    third = await worked_incident(service, clock, "r3", resolve=True)

    done = export(redis_test_url, "--all-resolved")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first.id, third.id]
    assert [json.loads(line) for line in lines] == [
        await stored_export(service, first.id),
        await stored_export(service, third.id),
    ]


async def test_export_refusals_are_one_line(real_redis: aioredis.Redis, redis_test_url: str) -> None:
    url, unreachable = redis_test_url, "redis://127.0.0.1:1/0"
    refusals = [
        (url, ["INC-9"], 2, "incident-bot: there is no incident INC-9 in the store."),
        (url, ["nine"], 2, "incident-bot: 'nine' is not an incident: give one like INC-42."),
        (url, [], 2, "incident-bot: export: one of the arguments incident --all-resolved is required"),
        (url, ["INC-1", "--all-resolved"], 2, "incident-bot: export: argument --all-resolved: not allowed"),
        (unreachable, ["INC-1"], 1, "incident-bot: the incident store (Redis) is unreachable"),
    ]
    # Side by side: each is a Python start-up.
    done = await asyncio.gather(*(asyncio.to_thread(export, at, *args) for at, args, _, _ in refusals))

    for (_, args, code, says), answer in zip(refusals, done, strict=True):
        assert answer.returncode == code, args
        [line] = answer.stderr.splitlines()
        assert line.startswith(says), line
        assert answer.stdout == ""


def test_incident_ids_are_read_as_the_store_names_them() -> None:
    assert parse_incident_id(" inc-42 ") == "INC-42"
    assert [parse_incident_id(t) for t in ("INC-0", "INC-", "42", "INC-4x", "INC-01")] == [None] * 5
