"""The rules of an incident. Works on pydantic models through the store; knows nothing of Slack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel

from bot.keys import DIGEST
from bot.models import (
    ChecklistMessage,
    ChecklistSection,
    Claim,
    EventKind,
    Incident,
    MessageState,
    Phase,
    Severity,
    Status,
    StatusUpdate,
    Tick,
    TimelineEvent,
    parse_duration,
    utcnow,
)
from bot.playbook import Playbook, SeveritySpec
from bot.schedule_store import ScheduleStore
from bot.store import IncidentStore

DEFAULT_TITLE = "Untitled incident"
IMPACT_MAX_CHARS = 1000
CURRENT_STATE_MAX_CHARS = 1500


class IncidentClosed(Exception):
    """The incident is resolved; it takes no more updates."""


class UpdateDraft(BaseModel):
    """What a responder typed into the update modal, before validation."""

    status: str | None
    impact: str | None
    current_state: str | None
    next_update: str | None


def validate_update(draft: UpdateDraft) -> dict[str, str]:
    """Field name -> problem, for every field the responder must fix. Empty when valid."""
    errors: dict[str, str] = {}
    if draft.status not in {s.value for s in Status}:
        errors["status"] = "Choose a status."
    impact = (draft.impact or "").strip()
    if not impact:
        errors["impact"] = "Describe the user impact, even if it is still unknown."
    elif len(impact) > IMPACT_MAX_CHARS:
        errors["impact"] = f"Keep the impact to {IMPACT_MAX_CHARS} characters (now {len(impact)})."
    state = (draft.current_state or "").strip()
    if not state:
        errors["current_state"] = "Say what is happening now."
    elif len(state) > CURRENT_STATE_MAX_CHARS:
        errors["current_state"] = (
            f"Keep the current state to {CURRENT_STATE_MAX_CHARS} characters (now {len(state)})."
        )
    try:
        parse_duration(draft.next_update or "")
    except ValueError:
        errors["next_update"] = "Choose when the next update is due."
    return errors


class UpdateOutcome(BaseModel):
    incident: Incident
    update: StatusUpdate
    post_verification: bool  # first move to Monitoring: the Verification checklist is due


class SeverityChange(BaseModel):
    incident: Incident
    previous: Severity


class ReminderDue(BaseModel):
    incident: Incident
    claim: Claim


class DueWork(BaseModel):
    """What the schedule says is due now, claimed by this process alone."""

    reminders: list[ReminderDue] = []
    setups: list[ReminderDue] = []  # declarations whose channel setup never finished
    digests: list[Claim] = []


# Schedule members that finish an interrupted declaration are `setup:<incident id>`.
SETUP_PREFIX = "setup:"
SETUP_GRACE = timedelta(seconds=30)


def _move_to(
    incident: Incident, status: Status, now: datetime, last_update: StatusUpdate | None = None
) -> Incident:
    """The incident in `status`, remembering when it first reached each status."""
    if incident.is_resolved:
        raise IncidentClosed(incident.id)
    reached = dict(incident.status_changed_at)
    reached.setdefault(status, now)
    due = None if status is Status.RESOLVED or last_update is None else last_update.next_due
    return incident.model_copy(
        update={
            "status": status,
            "status_changed_at": reached,
            "last_update": last_update or incident.last_update,
            "next_update_due": due,
            "updated_at": now,
        }
    )


class IncidentService:
    def __init__(
        self,
        store: IncidentStore,
        schedule: ScheduleStore,
        playbook: Playbook,
        clock: Callable[[], datetime] = utcnow,
        setup_grace: timedelta = SETUP_GRACE,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.playbook = playbook
        self.clock = clock
        self.setup_grace = setup_grace

    def severity_spec(self, severity: Severity) -> SeveritySpec:
        return self.playbook.severity(severity)

    async def declare_incident(
        self, severity: Severity, title: str, declared_by: str, origin_channel: str
    ) -> Incident:
        now = self.clock()
        spec = self.severity_spec(severity)
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
            next_update_due=now + spec.update_every,
        )
        event = TimelineEvent(
            at=now,
            kind=EventKind.DECLARED,
            by=declared_by,
            text=f"Declared {spec.label}: {incident.title}",
        )
        await self.store.create_incident(incident, event)
        assert incident.next_update_due is not None
        await self.schedule.schedule_many(
            [
                (incident.id, incident.next_update_due, spec.update_every),
                # If this process dies before the channel is set up, another one finishes the job.
                (SETUP_PREFIX + incident.id, now + self.setup_grace, self.setup_grace),
            ]
        )
        return incident

    async def setup_finished(self, incident_id: str) -> None:
        await self.schedule.cancel(SETUP_PREFIX + incident_id)

    async def get_incident(self, incident_id: str) -> Incident:
        return await self.store.get_incident(incident_id)

    async def open_incidents(self) -> list[Incident]:
        return list((await self.store.get_incidents(await self.store.open_incident_ids())).values())

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        return await self.store.timeline(incident_id)

    async def checklist_item_texts(self, incident_id: str) -> dict[str, str]:
        """Item id -> text for every checklist item posted for the incident."""
        return {
            item.id: item.text
            for message in await self.store.checklist_messages(incident_id)
            for section in message.sections
            for item in section.items
        }

    async def post_update(self, incident_id: str, draft: UpdateDraft, by: str) -> UpdateOutcome:
        """Record a validated update; reschedules reminders, or stops them on Resolved."""
        if validate_update(draft):
            raise ValueError("validate_update() first")
        now = self.clock()
        update = StatusUpdate(
            status=Status(draft.status or ""),
            impact=(draft.impact or "").strip(),
            current_state=(draft.current_state or "").strip(),
            next_update=parse_duration(draft.next_update),
            posted_by=by,
            posted_at=now,
        )

        def change(incident: Incident) -> Incident:
            return _move_to(incident, update.status, now, last_update=update)

        event = TimelineEvent(
            at=now,
            kind=EventKind.RESOLVED if update.status is Status.RESOLVED else EventKind.STATUS_UPDATE,
            by=by,
            text=f"Status: {update.status.value}. Impact: {update.impact}. "
            f"Current state: {update.current_state}",
        )
        incident = await self.store.update_incident(incident_id, change, event)
        if incident.is_resolved:
            await self._close(incident)
        else:
            await self.schedule.schedule(incident.id, update.next_due, update.next_update)
        return UpdateOutcome(
            incident=incident,
            update=update,
            post_verification=update.status is Status.MONITORING and incident.verification_ts is None,
        )

    async def resolve(self, incident_id: str, by: str) -> Incident:
        now = self.clock()

        def change(incident: Incident) -> Incident:
            return _move_to(incident, Status.RESOLVED, now)

        event = TimelineEvent(at=now, kind=EventKind.RESOLVED, by=by, text="Resolved")
        incident = await self.store.update_incident(incident_id, change, event)
        await self._close(incident)
        return incident

    async def _close(self, incident: Incident) -> None:
        await self.schedule.cancel(incident.id)
        borrowed = None if incident.dedicated_channel else incident.channel_id
        await self.store.close_incident(incident.id, borrowed)

    async def change_severity(self, incident_id: str, severity: Severity, by: str) -> SeverityChange:
        """A severity change never postpones an update already promised; it can bring it closer."""
        now = self.clock()
        every = self.severity_spec(severity).update_every
        previous: list[Severity] = []

        def change(incident: Incident) -> Incident:
            if incident.is_resolved:
                raise IncidentClosed(incident.id)
            previous[:] = [incident.severity]
            due = now + every
            if incident.next_update_due is not None:
                due = min(due, incident.next_update_due)
            return incident.model_copy(
                update={"severity": severity, "next_update_due": due, "updated_at": now}
            )

        incident = await self.store.update_incident(
            incident_id,
            change,
            TimelineEvent(
                at=now,
                kind=EventKind.SEVERITY_CHANGED,
                by=by,
                text=f"Severity changed to {self.severity_spec(severity).label}",
            ),
        )
        assert incident.next_update_due is not None
        await self.schedule.schedule(incident.id, incident.next_update_due, every)
        return SeverityChange(incident=incident, previous=previous[0])

    async def new_checklists_for(
        self, incident: Incident, severity: Severity
    ) -> dict[Phase, list[ChecklistSection]]:
        """The checklist items `severity` lists that the incident's channel does not have yet."""
        posted = {i for m in await self.store.checklist_messages(incident.id) for i in m.item_ids()}
        added: dict[Phase, list[ChecklistSection]] = {}
        for phase, sections in self.checklists_for(severity).items():
            for section in sections:
                fresh = tuple(item for item in section.items if item.id not in posted)
                if fresh:
                    added.setdefault(phase, []).append(section.model_copy(update={"items": fresh}))
        return added

    def verification_section(self) -> ChecklistSection:
        return self.playbook.verification.section()

    async def record_verification(self, incident_id: str, message: ChecklistMessage) -> Incident:
        await self.record_checklist_message(incident_id, message)

        def change(incident: Incident) -> Incident:
            return incident.model_copy(update={"verification_ts": message.ts})

        return await self.store.update_incident(incident_id, change)

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

    # -- reminders ---------------------------------------------------------------------------

    async def claim_due(self) -> DueWork:
        """Reminders, unfinished declarations and digests due now, claimed by this process alone."""
        due = DueWork()
        claims = await self.schedule.claim_due(self.clock())
        found = await self.store.get_incidents(
            [c.member.removeprefix(SETUP_PREFIX) for c in claims if c.member != DIGEST]
        )
        for claim in claims:
            if claim.member == DIGEST:
                due.digests.append(claim)
                continue
            setup = claim.member.startswith(SETUP_PREFIX)
            incident = found.get(claim.member.removeprefix(SETUP_PREFIX))
            if incident is None:
                await self.schedule.cancel(claim.member)
                continue
            finished = incident.header_ts is not None if setup else incident.is_resolved
            if finished:
                await self.schedule.cancel(claim.member)
                continue
            (due.setups if setup else due.reminders).append(ReminderDue(incident=incident, claim=claim))
        return due

    async def reminder_sent(self, due: ReminderDue) -> None:
        now = self.clock()
        text = f"Reminder {due.claim.missed}: update overdue"
        if due.claim.is_late(now):
            text += f" (delivered {int(due.claim.lateness(now).total_seconds())}s late)"
        await self.store.append_event(
            due.incident.id, TimelineEvent(at=now, kind=EventKind.REMINDER, text=text)
        )
        await self.schedule.confirm(due.claim, now)

    async def digest_sent(self, claim: Claim) -> None:
        await self.schedule.confirm(claim, self.clock())

    async def start_digest(self) -> None:
        """Schedule the managers' digest (keeping an earlier due time another process set)."""
        every = self.playbook.digest_every
        if every is None:
            await self.schedule.cancel(DIGEST)
            return
        await self.schedule.ensure(DIGEST, self.clock() + every, every)

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
