"""`incident-bot export`: an incident as JSON, from what the store holds, so a team can archive it
before it expires from Redis (INCIDENT_RETENTION).

`incident_export` is pure: the stored incident, its timeline and its checklists in, a JSON-able
dict out. The document leads with the facts a reader looks for, then the updates, the timeline,
the checklists (each item ticked or not, by whom and when), the hypotheses, notes, evidence and
follow-ups; `record` is the stored incident itself, whole, so nothing the bot kept is lost
(`Incident.model_validate(document["record"])` reads it back).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bot.errors import IncidentNotFound
from bot.models import (
    ChecklistMessage,
    EventKind,
    FollowUp,
    Hypothesis,
    Incident,
    Phase,
    Severity,
    Status,
    StatusUpdate,
    Tick,
    TimelineEvent,
)
from bot.store import IncidentStore

_INCIDENT_ID = re.compile(r"INC-[1-9][0-9]*")
# Timeline events that are status updates as posted (a resolution is the last one).
UPDATE_KINDS = frozenset({EventKind.STATUS_UPDATE, EventKind.RESOLVED})


class ExportedItem(BaseModel):
    id: str
    text: str
    ticked: bool
    ticked_by: str | None = None
    ticked_at: datetime | None = None


class ExportedSection(BaseModel):
    title: str
    items: list[ExportedItem]


class ExportedChecklist(BaseModel):
    """One posted checklist message: its phase, where it is, and its items' state."""

    phase: Phase
    part: int
    channel: str
    ts: str
    sections: list[ExportedSection]


class ExportedChannel(BaseModel):
    id: str | None
    name: str | None
    dedicated: bool
    origin: str  # where /incident was typed


class IncidentExport(BaseModel):
    id: str
    number: int
    title: str
    severity: Severity
    status: Status
    phase: Phase
    declared_at: datetime
    declared_by: str
    resolved_at: datetime | None
    commander: str
    roles: dict[str, str]  # role key -> user, the commander first
    channel: ExportedChannel
    last_update: StatusUpdate | None
    updates: list[TimelineEvent]
    timeline: list[TimelineEvent]
    checklists: list[ExportedChecklist]
    hypotheses: list[Hypothesis]
    notes: list[TimelineEvent]
    evidence: list[TimelineEvent]
    followups: list[FollowUp]
    record: dict[str, Any]  # the stored incident, whole


def parse_incident_id(text: str) -> str | None:
    """`INC-42` (any case, spaces around) as the store names it; None when it is not one."""
    candidate = text.strip().upper()
    return candidate if _INCIDENT_ID.fullmatch(candidate) else None


def incident_export(
    incident: Incident,
    events: list[TimelineEvent],
    messages: list[ChecklistMessage],
    ticks: dict[str, Tick],
) -> dict[str, Any]:
    """The incident as a JSON-able dict (times in ISO 8601, UTC); the same input gives the same
    output."""
    document = IncidentExport(
        id=incident.id,
        number=incident.number,
        title=incident.title,
        severity=incident.severity,
        status=incident.status,
        phase=incident.phase,
        declared_at=incident.declared_at,
        declared_by=incident.declared_by,
        resolved_at=incident.status_changed_at.get(Status.RESOLVED) if incident.is_resolved else None,
        commander=incident.commander,
        roles=incident.role_holders(),
        channel=ExportedChannel(
            id=incident.channel_id,
            name=incident.channel_name,
            dedicated=incident.dedicated_channel,
            origin=incident.origin_channel,
        ),
        last_update=incident.last_update,
        updates=[e for e in events if e.kind in UPDATE_KINDS],
        timeline=events,
        checklists=[_checklist(m, ticks) for m in messages],
        hypotheses=list(incident.hypotheses),
        notes=[e for e in events if e.kind is EventKind.NOTE],
        evidence=[e for e in events if e.kind is EventKind.EVIDENCE],
        followups=list(incident.followups),
        record=_record(incident),
    )
    return document.model_dump(mode="json")


def _record(incident: Incident) -> dict[str, Any]:
    """The incident as stored, its sets sorted (their order would change from run to run)."""
    record = incident.model_dump(mode="json")
    for name, value in incident:
        if isinstance(value, frozenset):
            record[name] = sorted(record[name])
    return record


def _checklist(message: ChecklistMessage, ticks: dict[str, Tick]) -> ExportedChecklist:
    sections = []
    for section in message.sections:
        items = []
        for item in section.items:
            tick = ticks.get(item.id)
            items.append(
                ExportedItem(
                    id=item.id,
                    text=item.text,
                    ticked=tick is not None,
                    ticked_by=tick.by if tick else None,
                    ticked_at=tick.at if tick else None,
                )
            )
        sections.append(ExportedSection(title=section.title, items=items))
    return ExportedChecklist(
        phase=message.phase, part=message.part, channel=message.channel, ts=message.ts, sections=sections
    )


async def export_incident(store: IncidentStore, incident_id: str) -> dict[str, Any]:
    """One incident as stored now (IncidentNotFound if there is none)."""
    incident = await store.get_incident(incident_id)
    return incident_export(
        incident,
        await store.timeline(incident_id),
        await store.checklist_messages(incident_id),
        await store.ticks(incident_id),
    )


async def export_resolved(store: IncidentStore) -> AsyncIterator[dict[str, Any]]:
    """Every resolved incident still in Redis, by number (one that expires meanwhile is left out)."""
    for incident_id in await store.resolved_incident_ids():
        try:
            document = await export_incident(store, incident_id)
        except IncidentNotFound:
            continue
        if document["status"] == Status.RESOLVED.value:
            yield document
