"""The incident service on a real store (fakeredis and Redis) with a controllable clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.errors import ChannelTaken, NotAChecklistItem, StaleReference
from bot.models import ChecklistMessage, EventKind, Phase, Severity, Status, Tick, TimelineEvent
from bot.playbook import load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import DEFAULT_TITLE, IncidentService
from bot.store import Change, IncidentStore

if TYPE_CHECKING:
    from tests.conftest import FakeClock

TS = "1764079200.000100"


@pytest.fixture
def service(store: IncidentStore, clock: FakeClock) -> IncidentService:
    return IncidentService(
        store=store, schedule=ScheduleStore(store.redis), playbook=load_playbook(), clock=clock
    )


async def record_checklist(service: IncidentService, incident_id: str, posted: ChecklistMessage) -> None:
    """What the delivery loop does once Slack accepted a checklist message."""
    await service.store.update_incident(incident_id, lambda i: Change(i, checklist=posted))


async def test_declared_incidents_are_numbered_in_order(service: IncidentService, clock: FakeClock) -> None:
    first = await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")
    clock.advance(60)
    second = await service.declare_incident(
        Severity.SEV4, "Typo on the pricing page", "U2", "C0", request_id="r2"
    )

    assert (first.id, first.number) == ("INC-1", 1)
    assert (second.id, second.number) == ("INC-2", 2)
    assert first.uid != second.uid
    assert await service.store.open_incident_ids() == ["INC-1", "INC-2"]


async def test_a_retried_declaration_declares_nothing_more(
    service: IncidentService, clock: FakeClock
) -> None:
    first = await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")
    clock.advance(1)

    again = await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")

    assert again == first
    assert await service.store.open_incident_ids() == ["INC-1"]
    assert len(await service.store.timeline(first.id)) == 1


async def test_declared_incident_starts_investigating_with_the_declarer_in_command(
    service: IncidentService, clock: FakeClock
) -> None:
    incident = await service.declare_incident(Severity.SEV1, "Checkout failing", "U1", "C0", request_id="r1")

    assert incident.status is Status.INVESTIGATING
    assert incident.severity is Severity.SEV1
    assert incident.title == "Checkout failing"
    assert incident.declared_by == incident.commander == "U1"
    assert incident.origin_channel == "C0"
    assert incident.declared_at == incident.updated_at == clock.now
    assert incident.status_changed_at == {Status.INVESTIGATING: clock.now}
    assert incident.channel_id is None
    assert incident.uid
    assert incident.requests == ("r1",)
    assert await service.store.get_incident(incident.id) == incident


async def test_declaration_is_the_first_timeline_event(service: IncidentService, clock: FakeClock) -> None:
    incident = await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")

    assert await service.store.timeline(incident.id) == [
        TimelineEvent(at=clock.now, kind=EventKind.DECLARED, by="U1", text="Declared SEV2: Checkout failing")
    ]


async def test_untitled_incident_gets_a_default_title(service: IncidentService) -> None:
    incident = await service.declare_incident(Severity.SEV3, "", "U1", "C0", request_id="r1")
    assert incident.title == DEFAULT_TITLE
    assert (await service.store.timeline(incident.id))[0].text == f"Declared SEV3: {DEFAULT_TITLE}"


async def test_declaring_without_a_channel_claims_the_origin_channel(service: IncidentService) -> None:
    assert await service.store.incident_for_channel("C0") is None
    incident = await service.declare_incident(
        Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1", create_channel=False
    )

    assert await service.store.incident_for_channel("C0") == incident
    with pytest.raises(ChannelTaken) as taken:
        await service.declare_incident(
            Severity.SEV3, "Other", "U2", "C0", request_id="r2", create_channel=False
        )
    assert taken.value.incident_id == incident.id
    assert await service.store.incident_for_channel("C0") == incident


async def test_tick_item_records_who_and_when(service: IncidentService, clock: FakeClock) -> None:
    incident = await service.declare_incident(Severity.SEV1, "Checkout failing", "U1", "C0", request_id="r1")
    sections = service.checklists_for(Severity.SEV1)[Phase.ASSESS]
    posted = ChecklistMessage(channel="C42", ts=TS, phase=Phase.ASSESS, sections=tuple(sections))
    await record_checklist(service, incident.id, posted)
    item = posted.item_ids()[2]

    ticked_at = clock.advance(90)
    changed, state = await service.checklists.tick_item(
        incident.id, incident.uid, TS, item, "U2", checked=True
    )
    assert changed is True
    assert state.ticks == {item: Tick(by="U2", at=ticked_at)}
    assert state.rev == 1
    last = (await service.store.timeline(incident.id))[-1]
    assert (last.kind, last.by, last.item, last.at) == (EventKind.TICKED, "U2", item, ticked_at)

    clock.advance(30)
    changed, state = await service.checklists.tick_item(
        incident.id, incident.uid, TS, item, "U3", checked=True
    )
    assert changed is False
    assert state.ticks == {item: Tick(by="U2", at=ticked_at)}  # the first tick stays

    unticked_at = clock.advance(30)
    changed, state = await service.checklists.tick_item(
        incident.id, incident.uid, TS, item, "U3", checked=False
    )
    assert changed is True
    assert state.ticks == {}
    last = (await service.store.timeline(incident.id))[-1]
    assert (last.kind, last.by, last.at) == (EventKind.UNTICKED, "U3", unticked_at)


async def test_tick_item_of_another_incident_is_rejected(service: IncidentService) -> None:
    first = await service.declare_incident(Severity.SEV1, "one", "U1", "C0", request_id="r1")
    second = await service.declare_incident(Severity.SEV1, "two", "U1", "C0", request_id="r2")
    sections = service.checklists_for(Severity.SEV1)[Phase.ASSESS]
    posted = ChecklistMessage(channel="C42", ts=TS, phase=Phase.ASSESS, sections=tuple(sections))
    await record_checklist(service, first.id, posted)

    with pytest.raises(NotAChecklistItem):
        await service.checklists.tick_item(
            second.id, second.uid, TS, posted.item_ids()[0], "U2", checked=True
        )
    with pytest.raises(StaleReference):  # a click carrying the other incident's uid
        await service.checklists.tick_item(first.id, second.uid, TS, posted.item_ids()[0], "U2", checked=True)
    assert await service.store.ticks(first.id) == {}
