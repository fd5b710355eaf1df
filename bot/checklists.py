"""Ticking checklist items, and what is still open on the Verification checklist."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.blocks.checklist import split_sections
from bot.effects import PostChecklist, Work
from bot.models import (
    ChecklistSection,
    EventKind,
    Incident,
    MessageState,
    Phase,
    Tick,
    TimelineEvent,
    utcnow,
)
from bot.store import IncidentStore

# The process that took a click re-renders the message at once; the delivery loop checks a little
# later that Slack has it, and re-renders it if that process failed or died.
RECHECK_AFTER_TICK = timedelta(seconds=3)


def checklist_works(by_phase: dict[Phase, list[ChecklistSection]]) -> list[Work]:
    """One message per phase, split to respect Slack's block limit."""
    return [
        PostChecklist(phase=phase, part=part, sections=tuple(chunk))
        for phase, sections in by_phase.items()
        for part, chunk in enumerate(split_sections(sections), start=1)
    ]


class Checklists:
    def __init__(self, store: IncidentStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    async def tick_item(
        self, incident_id: str, uid: str, message_ts: str, item: str, user: str, checked: bool
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
        return await self.store.set_tick(
            incident_id, message_ts, item, tick, event, uid, recheck_at=now + RECHECK_AFTER_TICK
        )

    async def open_verification_items(self, incident: Incident) -> list[str] | None:
        """Texts of Verification items not ticked; None when the checklist was never posted."""
        if incident.verification_ts is None:
            return None
        state = await self.store.message_state(incident.id, incident.verification_ts)
        return [
            item.text
            for section in state.message.sections
            for item in section.items
            if item.id not in state.ticks
        ]
