"""The middle and the end of the incident flow: evidence, hypotheses, phases, runbooks,
follow-ups, the timeline and the postmortem. Works on pydantic models through the store, like
`IncidentService`; knows nothing of Slack beyond the work it queues."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.blocks import format as fmt
from bot.blocks.changes import recent_changes_message
from bot.blocks.timeline import timeline_messages, trace_lines
from bot.changes import ChangeEvent
from bot.checklists import checklist_works
from bot.effects import RefreshHeader, Say, ShowHypotheses, Target, UploadChart, UploadPostmortem, Work
from bot.errors import IncidentNotFound, NothingToChange, StaleReference
from bot.models import (
    PHASE_GUIDE,
    ChecklistMessage,
    ChecklistSection,
    EventKind,
    Hypothesis,
    HypothesisState,
    Incident,
    Phase,
    Tick,
    TimelineEvent,
    format_duration,
    utcnow,
)
from bot.playbook import Playbook
from bot.postmortem import postmortem_markdown
from bot.store import Change, IncidentStore
from bot.text import user_text

# Runbook checklists are investigation steps, whatever the phase they are posted in.
RUNBOOK_PHASE = Phase.INVESTIGATE

Decide = Callable[[Incident], Change]


def postmortem_filename(incident: Incident) -> str:
    return f"{incident.id}-postmortem.md"


@dataclass(frozen=True)
class PostmortemDraft:
    """What the postmortem is made of, read at once; `markdown(names)` renders it with people
    shown by `names(user id)` (display names when Slack gave them)."""

    incident: Incident
    events: list[TimelineEvent]
    messages: list[ChecklistMessage]
    ticks: dict[str, Tick]
    playbook: Playbook

    @property
    def people(self) -> set[str]:
        found = {self.incident.declared_by, *self.incident.role_holders().values()}
        found |= {e.by for e in self.events if e.by} | {e.author for e in self.events if e.author}
        found |= {h.proposed_by for h in self.incident.hypotheses}
        found |= {h.changed_by for h in self.incident.hypotheses if h.changed_by}
        found |= {f.by for f in self.incident.followups} | {t.by for t in self.ticks.values()}
        return found

    def markdown(self, names: Callable[[str | None], str]) -> str:
        return postmortem_markdown(
            self.incident,
            lambda severity: self.playbook.severity(severity).label,
            self.events,
            self.messages,
            self.ticks,
            names,
            dict(self.playbook.roles),
        )


def phase_line(phase: Phase) -> str:
    """`3. Investigate: gather evidence from logs, metrics, traces`."""
    step, question = PHASE_GUIDE[phase]
    return f"{step}: {question[0].lower()}{question[1:]}"


def who(user: str | None) -> str:
    """A person in a Slack message: a mention (the bot itself when None)."""
    return "incident-bot" if user is None else fmt.user(user)


class Investigation:
    def __init__(
        self, store: IncidentStore, playbook: Playbook, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.playbook = playbook
        self.clock = clock

    async def _apply(
        self, incident_id: str, request_id: str, decide: Decide, uid: str | None = None
    ) -> tuple[Incident, bool]:
        """Apply one request's change once (a retry of it changes nothing)."""

        def change(incident: Incident) -> Change | None:
            if uid is not None and incident.uid != uid:
                raise StaleReference(incident_id)
            if incident.has_applied(request_id):
                return None
            return decide(incident)

        try:
            return await self.store.update_incident(incident_id, change)
        except IncidentNotFound as exc:
            raise StaleReference(incident_id) from exc

    def entered_checklists(
        self, before: Incident, after: Incident, at: datetime
    ) -> tuple[Incident, list[Work]]:
        """The checklists of the phases `after` entered for the first time, queued once."""
        works: list[Work] = []
        for phase in Phase:
            if phase in after.phases_entered and phase not in before.phases_entered:
                sections = _unplanned(self.playbook.phase_sections(phase), after)
                if sections:
                    after = after.planning({i.id for s in sections for i in s.items}, at)
                    works += checklist_works({phase: sections})
        return after, works

    # -- evidence ----------------------------------------------------------------------------

    async def add_note(self, incident_id: str, text: str, by: str, request_id: str) -> Incident:
        now = self.clock()
        safe = user_text(text)

        def decide(incident: Incident) -> Change:
            incident.require_open()
            event = TimelineEvent(at=now, kind=EventKind.NOTE, by=by, text=safe)
            say = Say(target=Target.INCIDENT, text=f":memo: *Note* from {who(by)}: {safe}")
            return Change(incident.noted(now, request_id), [event], [say])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def add_evidence(
        self, incident_id: str, message: str, text: str, author: str | None, link: str | None, by: str
    ) -> bool:
        """The Slack message `message` (`channel/ts`) put on the timeline as evidence; False if
        it already is (however long ago, and whoever added it)."""
        now = self.clock()
        safe = user_text(text)

        def decide(incident: Incident) -> Change:
            event = TimelineEvent(at=now, kind=EventKind.EVIDENCE, by=by, text=safe, author=author, link=link)
            return Change(incident.with_evidence(message, now), [event])

        try:
            _, written = await self._apply(incident_id, f"evidence:{message}", decide)
        except NothingToChange:
            return False
        return written

    # -- hypotheses --------------------------------------------------------------------------

    async def propose(self, incident_id: str, text: str, by: str, request_id: str) -> Hypothesis:
        """The hypothesis added (H1, H2, …); a retried request returns the one it added."""
        now = self.clock()
        safe = user_text(text)

        def decide(incident: Incident) -> Change:
            after = incident.with_hypothesis(safe, by, now, request_id)
            added = after.hypotheses[-1]
            event = TimelineEvent(
                at=now, kind=EventKind.HYPOTHESIS, by=by, text=f"proposed {added.label}: {safe}"
            )
            return Change(after, [event], [ShowHypotheses()])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return [h for h in incident.hypotheses if h.proposed_by == by and h.text == safe][-1]

    async def set_hypothesis(
        self, incident_id: str, uid: str, number: int, state: HypothesisState, by: str, request_id: str
    ) -> Incident:
        """NothingToChange when it is in that state already, or settled (confirmed, ruled out)."""
        now = self.clock()

        def decide(incident: Incident) -> Change:
            after = incident.with_hypothesis_state(number, state, by, now, request_id)
            after, checklists = self.entered_checklists(incident, after, now)
            text = f"set H{number} to {state.value}"
            events = [TimelineEvent(at=now, kind=EventKind.HYPOTHESIS_STATE, by=by, text=text)]
            works: list[Work] = [ShowHypotheses(), RefreshHeader()]
            if after.phase is not incident.phase:
                events.append(_phase_event(after.phase, None, now))
                works.append(
                    Say(target=Target.INCIDENT, text=f":arrow_right: Now at *{phase_line(after.phase)}*")
                )
            return Change(after, events, works + checklists)

        incident, _ = await self._apply(incident_id, request_id, decide, uid=uid)
        return incident

    # -- phases ------------------------------------------------------------------------------

    async def set_phase(self, incident_id: str, phase: Phase, by: str, request_id: str) -> Incident:
        now = self.clock()

        def decide(incident: Incident) -> Change:
            after = incident.in_phase(phase, now, request_id)
            after, checklists = self.entered_checklists(incident, after, now)
            say = Say(
                target=Target.INCIDENT,
                text=f":arrow_right: {who(by)} moved the incident to *{phase_line(phase)}*",
            )
            return Change(after, [_phase_event(phase, by, now)], [RefreshHeader(), say, *checklists])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    # -- runbooks ----------------------------------------------------------------------------

    async def post_runbook(self, incident_id: str, name: str, by: str, request_id: str) -> Incident:
        """KeyError for a runbook the playbook does not have; NothingToChange when all its steps
        are in the channel already."""
        runbook = self.playbook.runbook(name)
        if runbook is None:
            raise KeyError(name)
        now = self.clock()

        def decide(incident: Incident) -> Change:
            incident.require_open()
            sections = _unplanned([runbook.section()], incident)
            if not sections:
                raise NothingToChange(f"the {name} runbook is already posted in {incident.id}")
            after = incident.planning({i.id for s in sections for i in s.items}, now, request_id)
            symptoms = "\n".join(f"• {user_text(s)}" for s in runbook.symptoms)
            say = Say(
                target=Target.INCIDENT,
                text=f":book: *Runbook: {user_text(runbook.title)}* (posted by {who(by)})\n"
                f"*Symptoms*\n{symptoms}",
            )
            event = TimelineEvent(at=now, kind=EventKind.RUNBOOK, by=by, text=f"posted the {name} runbook")
            works: list[Work] = [say, *checklist_works({RUNBOOK_PHASE: sections})]
            return Change(after, [event], works)

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    # -- follow-ups, the timeline, the postmortem ----------------------------------------------

    async def add_followup(self, incident_id: str, text: str, by: str, request_id: str) -> Incident:
        now = self.clock()
        safe = user_text(text)

        def decide(incident: Incident) -> Change:
            after = incident.with_followup(safe, by, now, request_id)
            event = TimelineEvent(at=now, kind=EventKind.FOLLOWUP, by=by, text=f"follow-up: {safe}")
            say = Say(target=Target.INCIDENT, text=f":pushpin: Follow-up from {who(by)}: {safe}")
            return Change(after, [event], [say])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def show_timeline(self, incident_id: str, by: str, request_id: str) -> Incident:
        """Post the timeline as it stands in the channel, split within Slack's limits."""
        now = self.clock()
        events = await self.store.timeline(incident_id)
        items = await self.checklist_item_texts(incident_id)

        def decide(incident: Incident) -> Change:
            lines = trace_lines(events, items, who)
            parts = timeline_messages(lines, f"Timeline of {incident.id}")
            works: list[Work] = [
                Say(target=Target.INCIDENT, text=p.text, blocks=tuple(p.block_dicts())) for p in parts
            ]
            event = TimelineEvent(at=now, kind=EventKind.TIMELINE_SHOWN, by=by, text="posted the timeline")
            return Change(incident.noted(now, request_id), [event], works)

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def show_changes(
        self,
        incident_id: str,
        changes: list[ChangeEvent],
        *,
        before: datetime,
        window: timedelta,
        service: str | None,
        by: str,
        request_id: str,
    ) -> Incident:
        """Post `changes` (the change events of `window` before `before`, in the order to show
        them, `bot.changes.recent_changes`) in the incident's channel."""
        now = self.clock()
        shown = recent_changes_message(changes, before=before, window=window, service=service)

        def decide(incident: Incident) -> Change:
            say = Say(target=Target.INCIDENT, text=shown.text, blocks=tuple(shown.block_dicts()))
            text = f"posted the recent changes ({len(changes)} in the last {format_duration(window)})"
            event = TimelineEvent(at=now, kind=EventKind.CHANGES_SHOWN, by=by, text=text)
            return Change(incident.noted(now, request_id), [event], [say])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def request_chart(
        self, incident_id: str, service: str, window: timedelta, by: str, request_id: str
    ) -> Incident:
        """Queue the metrics chart of `service` over the `window` up to now, for the delivery
        loop to draw and upload. KeyError for a service the playbook has no queries for."""
        if service not in self.playbook.services:
            raise KeyError(service)
        now = self.clock()

        def decide(incident: Incident) -> Change:
            chart = UploadChart(service=service, window=window, end=now, by=by)
            text = f"asked for the {service} metrics chart (the last {format_duration(window)})"
            event = TimelineEvent(at=now, kind=EventKind.CHART, by=by, text=text)
            return Change(incident.noted(now, request_id), [event], [chart])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def request_postmortem(self, incident_id: str, by: str, request_id: str) -> Incident:
        now = self.clock()

        def decide(incident: Incident) -> Change:
            event = TimelineEvent(
                at=now, kind=EventKind.POSTMORTEM, by=by, text="asked for the postmortem draft"
            )
            return Change(incident.noted(now, request_id), [event], [UploadPostmortem()])

        incident, _ = await self._apply(incident_id, request_id, decide)
        return incident

    async def postmortem_draft(self, incident_id: str) -> PostmortemDraft:
        incident = await self.store.get_incident(incident_id)
        return PostmortemDraft(
            incident=incident,
            events=await self.store.timeline(incident_id),
            messages=await self.store.checklist_messages(incident_id),
            ticks=await self.store.ticks(incident_id),
            playbook=self.playbook,
        )

    async def checklist_item_texts(self, incident_id: str) -> dict[str, str]:
        """Item id -> text for every checklist item posted for the incident."""
        return {
            item.id: item.text
            for message in await self.store.checklist_messages(incident_id)
            for section in message.sections
            for item in section.items
        }


def _unplanned(sections: list[ChecklistSection], incident: Incident) -> list[ChecklistSection]:
    """The sections with only the items not already posted (or queued) for the incident."""
    fresh = []
    for section in sections:
        items = tuple(i for i in section.items if i.id not in incident.planned_items)
        if items:
            fresh.append(section.model_copy(update={"items": items}))
    return fresh


def _phase_event(phase: Phase, by: str | None, at: datetime) -> TimelineEvent:
    return TimelineEvent(at=at, kind=EventKind.PHASE, by=by, text=f"moved to {PHASE_GUIDE[phase][0]}")
