"""The rules of an incident. Works on pydantic models through the store; knows nothing of Slack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.models import (
    ChecklistMessage,
    ChecklistSection,
    EventKind,
    Incident,
    MessageState,
    Phase,
    Severity,
    Status,
    Tick,
    TimelineEvent,
    utcnow,
)
from bot.playbook import Playbook, SeveritySpec
from bot.store import IncidentStore

DEFAULT_TITLE = "Untitled incident"


class IncidentService:
    def __init__(
        self,
        store: IncidentStore,
        playbook: Playbook,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.playbook = playbook
        self.clock = clock

    def severity_spec(self, severity: Severity) -> SeveritySpec:
        return self.playbook.severity(severity)

    async def declare_incident(
        self, severity: Severity, title: str, declared_by: str, origin_channel: str
    ) -> Incident:
        now = self.clock()
        incident_id, number = await self.store.next_incident_id()
        incident = Incident(
            id=incident_id,
            number=number,
            severity=severity,
            title=title or DEFAULT_TITLE,
            declared_by=declared_by,
            commander=declared_by,
            declared_at=now,
            updated_at=now,
            origin_channel=origin_channel,
            status_changed_at={Status.INVESTIGATING: now},
        )
        spec = self.severity_spec(severity)
        event = TimelineEvent(
            at=now,
            kind=EventKind.DECLARED,
            by=declared_by,
            text=f"Declared {spec.label}: {incident.title}",
        )
        await self.store.create_incident(incident, event)
        return incident

    async def incident_in_channel(self, channel_id: str) -> Incident | None:
        return await self.store.incident_for_channel(channel_id)

    async def attach_channel(
        self,
        incident_id: str,
        channel_id: str,
        channel_name: str | None,
        dedicated: bool,
        note: str,
    ) -> Incident:
        """Record where the incident runs; `note` says why, for the timeline."""

        def change(incident: Incident) -> Incident:
            return incident.model_copy(
                update={
                    "channel_id": channel_id,
                    "channel_name": channel_name,
                    "dedicated_channel": dedicated,
                    "updated_at": self.clock(),
                }
            )

        event = TimelineEvent(at=self.clock(), kind=EventKind.CHANNEL, text=note)
        incident = await self.store.update_incident(incident_id, change, event)
        await self.store.index_channel(channel_id, incident_id)
        return incident

    async def record_header(self, incident_id: str, ts: str) -> Incident:
        def change(incident: Incident) -> Incident:
            return incident.model_copy(update={"header_ts": ts})

        return await self.store.update_incident(incident_id, change)

    def checklists_for(self, severity: Severity) -> dict[Phase, list[ChecklistSection]]:
        return self.severity_spec(severity).sections_by_phase()

    async def record_checklist_message(self, incident_id: str, message: ChecklistMessage) -> None:
        count = len(message.item_ids())
        event = TimelineEvent(
            at=self.clock(),
            kind=EventKind.CHECKLIST_POSTED,
            text=f"Posted the {message.phase.value} checklist ({count} items)",
        )
        await self.store.add_checklist_message(incident_id, message, event)

    async def tick_item(
        self, incident_id: str, message_ts: str, item: str, user: str, checked: bool
    ) -> tuple[bool, MessageState]:
        """Tick or untick one item. Ticking an item already ticked keeps the first tick."""
        now = self.clock()
        tick = Tick(by=user, at=now) if checked else None
        event = TimelineEvent(
            at=now,
            kind=EventKind.TICKED if checked else EventKind.UNTICKED,
            by=user,
            text="ticked" if checked else "unticked",
            item=item,
        )
        return await self.store.set_tick(incident_id, message_ts, item, tick, event)

    async def message_state(self, incident_id: str, message_ts: str) -> MessageState:
        return await self.store.message_state(incident_id, message_ts)

    async def message_revision(self, incident_id: str, message_ts: str) -> int:
        return await self.store.message_revision(incident_id, message_ts)
