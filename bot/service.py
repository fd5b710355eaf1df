"""The rules of an incident's lifecycle: declare, update, change severity, resolve. Works on
pydantic models through the store; knows nothing of Slack.

`IncidentService` also holds the other concepts, on the same store, playbook and clock:
`checklists` (ticks), `investigation` (evidence, hypotheses, phases, runbooks, the timeline,
the postmortem), `roles`, and `reminders` (the reminder and digest schedule)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from pydantic import BaseModel

from bot.blocks.changes import CHANGES_MAX_LINES, recent_changes_message
from bot.changes import ChangeEvent
from bot.checklists import Checklists, checklist_works
from bot.effects import (
    Announce,
    InviteDeclarer,
    OpenChannel,
    PostHeader,
    PostUpdate,
    RefreshHeader,
    Resolution,
    Say,
    SeverityNote,
    Target,
    UploadChart,
    UploadPostmortem,
    Work,
)
from bot.errors import ChannelTaken, IncidentNotFound, StaleReference, StoreLost, StoreUnavailable
from bot.investigation import Investigation
from bot.models import (
    AlertNote,
    ChecklistSection,
    EventKind,
    Incident,
    Phase,
    Severity,
    Status,
    StatusUpdate,
    TimelineEvent,
    parse_duration,
    utcnow,
)
from bot.playbook import Playbook, SeveritySpec
from bot.reminder_schedule import ReminderSchedule
from bot.roles import Roles, check_permission
from bot.schedule_store import ScheduleStore
from bot.store import Change, IncidentStore, QueuedScript
from bot.text import foreign_text

DEFAULT_TITLE = "Untitled incident"
IMPACT_MAX_CHARS = 1000
CURRENT_STATE_MAX_CHARS = 1500


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
    applied: bool  # False: an earlier try of the same request (or view) already posted it


class SeverityChange(BaseModel):
    incident: Incident
    previous: Severity
    applied: bool




def _item_ids(by_phase: dict[Phase, list[ChecklistSection]]) -> set[str]:
    return {item.id for sections in by_phase.values() for s in sections for item in s.items}


class IncidentService:
    def __init__(
        self,
        store: IncidentStore,
        schedule: ScheduleStore,
        playbook: Playbook,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.playbook = playbook
        self.clock = clock
        # The other concepts of an incident, on the same store, playbook and clock.
        self.investigation = Investigation(store, playbook, clock)
        self.roles = Roles(store, playbook, clock)
        self.checklists = Checklists(store, clock)
        self.reminders = ReminderSchedule(store, schedule, playbook, clock)

    def severity_spec(self, severity: Severity) -> SeveritySpec:
        return self.playbook.severity(severity)

    # -- declaring ---------------------------------------------------------------------------

    async def declare_incident(
        self,
        severity: Severity,
        title: str,
        declared_by: str,
        origin_channel: str,
        *,
        request_id: str,
        response_url: str | None = None,
        create_channel: bool = True,
        alert: AlertNote | None = None,
        recent_changes: list[ChangeEvent] | None = None,
        chart: UploadChart | None = None,
    ) -> Incident:
        """Store the incident and all the Slack work its declaration implies, in one write.

        `alert`: declared from that alert group (kept on the incident, named on the timeline; the
        title is then the alert's too).
        `recent_changes`: the change events of the two hours before now, in the order to show them
        (`bot.changes.recent_changes`), posted in its channel and, as far as that message lists
        them, kept on the incident (with their count); None when the bot takes no change events.
        `chart`: a metrics chart to upload once the channel is there.
        A retry of the same request (same `request_id`) returns the incident it declared."""
        now = self.clock()
        spec = self.severity_spec(severity)
        incident_id, number = await self.store.number_for(request_id)
        if not create_channel:
            holder = await self.store.claim_channel(origin_channel, incident_id)
            if holder is not None:
                raise ChannelTaken(holder)
        checklists = self.checklists_for(severity)
        incident = Incident(
            id=incident_id,
            uid=secrets.token_hex(8),
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
            requests=(request_id,),
            planned_items=frozenset(_item_ids(checklists)),
            alert=alert,
            # Not all of them: up to 10,000 would be rewritten with every write of the incident.
            changes=tuple((recent_changes or [])[:CHANGES_MAX_LINES]),
            changes_total=len(recent_changes or ()),
        )
        works: list[Work] = [OpenChannel(create=create_channel)]
        if create_channel:
            works.append(InviteDeclarer())
        works += [
            PostHeader(),
            *checklist_works(checklists),
            Announce(target=Target.ORIGIN, response_url=response_url or None),
            Announce(target=Target.STAKEHOLDERS),
        ]
        if recent_changes is not None:
            shown = recent_changes_message(
                recent_changes, before=now, service=alert.service if alert is not None else None
            )
            works.append(Say(target=Target.INCIDENT, text=shown.text, blocks=tuple(shown.block_dicts())))
        if chart is not None:
            # Drawn up to the declaration, so the declaration is on it.
            works.append(chart.model_copy(update={"end": max(chart.end, now)}))
        declared = f"Declared {spec.label}: {incident.title}"
        if alert is not None:
            # Title and summary are the alert's, not typed in Slack: kept inert on the timeline.
            declared = (
                f"Declared {spec.label}: {foreign_text(incident.title)} "
                f'(from the alert "{foreign_text(alert.summary)}")'
            )
        event = TimelineEvent(at=now, kind=EventKind.DECLARED, by=declared_by, text=declared)
        def reminders(stored: Incident) -> QueuedScript:
            # From the stored incident: a retried request keeps the due time its first try set.
            assert stored.next_update_due is not None
            every = self.severity_spec(stored.severity).update_every
            return self.schedule.scheduling([(stored.id, stored.next_update_due, every)])

        return await self.store.create_incident(incident, event, works, request_id, also=reminders)

    async def get_incident(self, incident_id: str, uid: str | None = None) -> Incident:
        """The incident; with `uid`, only if it is still the incident that reference was made for."""
        try:
            incident = await self.store.get_incident(incident_id)
        except IncidentNotFound as exc:
            raise StaleReference(incident_id) from exc
        if uid is not None and incident.uid != uid:
            raise StaleReference(incident_id)
        return incident

    async def open_incidents(self) -> list[Incident]:
        return list((await self.store.get_incidents(await self.store.open_incident_ids())).values())

    # -- changes -----------------------------------------------------------------------------

    async def post_update(
        self, incident_id: str, uid: str | None, draft: UpdateDraft, by: str, request_id: str
    ) -> UpdateOutcome:
        """Record a validated update with the messages it implies; reschedules reminders, or
        stops them on Resolved. A retried request (same id) posts nothing twice."""
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

        def change(incident: Incident) -> Change | None:
            if uid is not None and incident.uid != uid:
                raise StaleReference(incident_id)
            if incident.has_applied(request_id):
                return None
            if update.status is Status.RESOLVED:
                check_permission(self.playbook, incident, "resolve", by)
            moved = incident.moved_to(update.status, now, update=update, request_id=request_id)
            # A status can move the flow on (Monitoring: verify): a step's checklist, if any.
            moved, step_checklists = self.investigation.entered_checklists(incident, moved, now)
            event = TimelineEvent(
                at=now,
                kind=EventKind.RESOLVED if moved.is_resolved else EventKind.STATUS_UPDATE,
                by=by,
                text=f"Status: {update.status.value}. Impact: {update.impact}. "
                f"Current state: {update.current_state}",
            )
            if moved.is_resolved:
                return Change(moved, [event], _resolution_works())
            works: list[Work] = [
                PostUpdate(target=Target.INCIDENT, update=update),
                RefreshHeader(),
                PostUpdate(target=Target.STAKEHOLDERS, update=update),
                *step_checklists,
            ]
            section = self.playbook.verification.section()
            fresh = {i.id for i in section.items} - moved.planned_items
            if update.status is Status.MONITORING and fresh:
                # Decided on the stored incident: two Monitoring updates at once post it once.
                works += checklist_works({Phase.VERIFY: [section]})
                moved = moved.planning(fresh, now)
            return Change(moved, [event], works)

        try:
            incident, applied = await self.store.update_incident(incident_id, change)
        except IncidentNotFound as exc:
            raise StaleReference(incident_id) from exc
        # Follow-ups come from the stored incident, so they run again harmlessly when this call
        # is the retry of a write whose answer was lost (and then `applied` is False).
        stored = incident.last_update or update
        async with _after_the_write():
            if incident.is_resolved:
                await self._close(incident)
            elif incident.next_update_due is not None:
                await self.schedule.schedule(incident.id, incident.next_update_due, stored.next_update)
        return UpdateOutcome(incident=incident, update=stored, applied=applied)

    async def resolve(self, incident_id: str, by: str, request_id: str) -> tuple[Incident, bool]:
        now = self.clock()

        def change(incident: Incident) -> Change | None:
            if incident.has_applied(request_id):
                return None
            check_permission(self.playbook, incident, "resolve", by)
            event = TimelineEvent(at=now, kind=EventKind.RESOLVED, by=by, text="Resolved")
            return Change(incident.resolved(now, request_id), [event], _resolution_works())

        incident, applied = await self.store.update_incident(incident_id, change)
        async with _after_the_write():
            await self._close(incident)
        return incident, applied

    async def close_without_channel(self, incident_id: str) -> None:
        """An incident that has nowhere to run (no channel of its own, its origin taken)."""
        now = self.clock()

        def change(incident: Incident) -> Change | None:
            if incident.is_resolved:
                return None
            event = TimelineEvent(
                at=now, kind=EventKind.RESOLVED, text="Closed: it had no channel to run in"
            )
            return Change(incident.resolved(now), [event])

        incident, _ = await self.store.update_incident(incident_id, change)
        await self._close(incident)

    async def store_lost(self) -> StoreLost | None:
        """The data loss, if the store is not the one this bot knows (None: intact, or unknown
        because Redis does not answer)."""
        try:
            await self.store.check_identity()
        except StoreLost as exc:
            return exc
        except StoreUnavailable:
            return None
        return None

    async def ensure_tracked(self, incident: Incident) -> None:
        """An open incident is in the open index and has its reminders, whatever failed after it
        was declared (both idempotent; an earlier due time is kept)."""
        if incident.is_resolved or incident.next_update_due is None:
            return
        await self.store.ensure_open(incident)
        every = self.severity_spec(incident.severity).update_every
        await self.schedule.ensure(incident.id, incident.next_update_due, every)

    async def _close(self, incident: Incident) -> None:
        await self.schedule.cancel(incident.id)
        await self.store.close_incident(incident)

    async def change_severity(
        self, incident_id: str, severity: Severity, by: str, request_id: str
    ) -> SeverityChange:
        """Decided on the stored incident: two simultaneous changes to SEV1 make one change,
        one note, and one set of new checklist items."""
        now = self.clock()
        spec = self.severity_spec(severity)
        previous: list[Severity] = []

        def change(incident: Incident) -> Change | None:
            previous[:] = [incident.severity]
            if incident.has_applied(request_id):
                return None
            if severity.rank > incident.severity.rank:
                check_permission(self.playbook, incident, "lower_severity", by)
            changed = incident.with_severity(severity, now, spec.update_every, request_id)
            fresh: dict[Phase, list[ChecklistSection]] = {}
            for phase, sections in self.checklists_for(severity).items():
                for section in sections:
                    items = tuple(i for i in section.items if i.id not in changed.planned_items)
                    if items:
                        fresh.setdefault(phase, []).append(section.model_copy(update={"items": items}))
            if fresh:
                changed = changed.planning(_item_ids(fresh), now)
            note = {"previous": incident.severity, "severity": severity, "by": by}
            works: list[Work] = [
                SeverityNote(target=Target.INCIDENT, **note),
                RefreshHeader(),
                *checklist_works(fresh),
                SeverityNote(target=Target.STAKEHOLDERS, **note),
            ]
            event = TimelineEvent(
                at=now, kind=EventKind.SEVERITY_CHANGED, by=by, text=f"Severity changed to {spec.label}"
            )
            return Change(changed, [event], works)

        incident, applied = await self.store.update_incident(incident_id, change)
        if incident.next_update_due is not None and not incident.is_resolved:
            every = self.severity_spec(incident.severity).update_every
            async with _after_the_write():
                await self.schedule.schedule(incident.id, incident.next_update_due, every)
        return SeverityChange(incident=incident, previous=previous[0], applied=applied)

    def checklists_for(self, severity: Severity) -> dict[Phase, list[ChecklistSection]]:
        return self.severity_spec(severity).sections_by_phase()

def _resolution_works() -> list[Work]:
    return [
        Resolution(target=Target.INCIDENT),
        RefreshHeader(),
        Resolution(target=Target.STAKEHOLDERS),
        UploadPostmortem(),
    ]


@contextlib.asynccontextmanager
async def _after_the_write() -> AsyncIterator[None]:
    """Steps after a stored change: if Redis fails now, the change is saved all the same."""
    try:
        yield
    except StoreUnavailable as exc:
        raise StoreUnavailable(str(exc), written=True) from exc
