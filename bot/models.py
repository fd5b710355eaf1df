"""The incident domain: pydantic models shared by the service, the store and the renderers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from bot.changes import ChangeEvent
from bot.errors import IncidentClosed, NothingToChange, UnknownHypothesis


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"

    @property
    def rank(self) -> int:
        """1 is the most severe."""
        return int(self.value[3:])


class Status(StrEnum):
    INVESTIGATING = "Investigating"
    IDENTIFIED = "Identified"
    MONITORING = "Monitoring"
    RESOLVED = "Resolved"


class Phase(StrEnum):
    """The production incident flow, in order."""

    ASSESS = "assess"
    MITIGATE = "mitigate"
    INVESTIGATE = "investigate"
    HYPOTHESIZE = "hypothesize"
    VALIDATE = "validate"
    FIX = "fix"
    VERIFY = "verify"
    POSTMORTEM = "postmortem"


_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_WHOLE = re.compile(r"(?:\d+[smhd])+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """Accept `30s`, `15m`, `1h`, `1h30m` (or a timedelta / whole seconds)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _DURATION_WHOLE.fullmatch(value.strip().lower()):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value.strip().lower()))
    else:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit, like 30s, 15m, 1h")
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration: 90s -> `1m30s`, 3600s -> `1h`."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def item_id(checklist_title: str, text: str) -> str:
    """A short stable id for a checklist item, shared by every severity that lists it."""
    digest = hashlib.sha1(f"{checklist_title}\n{text}".encode(), usedforsecurity=False)
    return digest.hexdigest()[:10]


class ChecklistItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    text: str


class ChecklistSection(BaseModel):
    """One titled checklist as posted (a snapshot, so playbook edits never break old messages)."""

    model_config = ConfigDict(frozen=True)

    title: str
    items: tuple[ChecklistItem, ...]


class ChecklistMessage(BaseModel):
    """A posted checklist message and the items it carries."""

    channel: str
    ts: str
    incident_uid: str = ""  # carried by every item's block_id, so clicks reach only this incident
    phase: Phase
    part: int = 1
    sections: tuple[ChecklistSection, ...]

    def item_ids(self) -> list[str]:
        return [item.id for section in self.sections for item in section.items]

    def has_item(self, item: str) -> bool:
        return item in self.item_ids()


class Tick(BaseModel):
    """Who ticked an item and when."""

    by: str
    at: datetime


class EventKind(StrEnum):
    DECLARED = "declared"
    DELIVERY_FAILED = "delivery_failed"
    CHANNEL = "channel"
    CHECKLIST_POSTED = "checklist_posted"
    TICKED = "ticked"
    UNTICKED = "unticked"
    STATUS_UPDATE = "status_update"
    SEVERITY_CHANGED = "severity_changed"
    REMINDER = "reminder"
    RESOLVED = "resolved"
    NOTE = "note"
    EVIDENCE = "evidence"  # a Slack message added to the timeline
    HYPOTHESIS = "hypothesis"  # proposed
    HYPOTHESIS_STATE = "hypothesis_state"  # Testing, Confirmed, Ruled out
    PHASE = "phase"
    ROLE = "role"
    RUNBOOK = "runbook"
    FOLLOWUP = "followup"
    TIMELINE_SHOWN = "timeline_shown"
    POSTMORTEM = "postmortem"
    ALERT = "alert"  # a notification of the alert group the incident was declared from
    CHART = "chart"  # a metrics chart uploaded (or why it could not be)
    CHANGES_SHOWN = "changes_shown"  # the recent changes posted in the channel


class TimelineEvent(BaseModel):
    at: datetime
    kind: EventKind
    by: str | None = None
    text: str
    item: str | None = None  # the checklist item id, for ticks and unticks
    author: str | None = None  # evidence: who wrote the message added to the timeline
    link: str | None = None  # evidence: the message's permalink


class AlertNote(BaseModel):
    """The alert group an incident was declared from, as it was when declared."""

    model_config = ConfigDict(frozen=True)

    group_key: str  # Alertmanager's groupKey: later notifications of the group find the incident
    summary: str
    severity: Severity  # what the alert asked for (the incident's may differ later)
    service: str | None = None  # its `service` label
    labels: dict[str, str] = Field(default_factory=dict)  # the lead alert's
    started_at: datetime | None = None
    link: str = ""  # generatorURL: the alert's expression in Prometheus
    dashboard: str = ""  # Alertmanager's externalURL


class ChartNote(BaseModel):
    """A metrics chart uploaded to the incident channel: what it showed, for the postmortem."""

    model_config = ConfigDict(frozen=True)

    service: str
    window: Duration
    end: datetime
    latest: dict[str, str] = Field(default_factory=dict)  # panel title -> its latest value, shown
    file: str = ""  # the uploaded file's name


class StatusUpdate(BaseModel):
    """One update, in the shape of the playbook's Incident Update Template."""

    status: Status
    impact: str
    current_state: str
    next_update: Duration
    posted_by: str
    posted_at: datetime

    @property
    def next_due(self) -> datetime:
        return self.posted_at + self.next_update


PHASE_GUIDE: dict[Phase, tuple[str, str]] = {
    Phase.ASSESS: ("1. Assess", "Impact? Scope? Trend?"),
    Phase.MITIGATE: ("2. Mitigate", "Can we reduce impact without fixing?"),
    Phase.INVESTIGATE: ("3. Investigate", "Gather evidence from logs, metrics, traces"),
    Phase.HYPOTHESIZE: ("4. Hypothesize", "What could cause this? (based on evidence)"),
    Phase.VALIDATE: ("5. Validate", "Safe experiments to confirm hypothesis"),
    Phase.FIX: ("6. Fix", "Minimal fix, staged rollout"),
    Phase.VERIFY: ("7. Verify", "Confirm resolution via metrics"),
    Phase.POSTMORTEM: ("8. Postmortem", "Document and prevent recurrence"),
}


class HypothesisState(StrEnum):
    OPEN = "Open"
    TESTING = "Testing"
    CONFIRMED = "Confirmed"
    RULED_OUT = "Ruled out"

    @property
    def settled(self) -> bool:
        """Confirmed or ruled out: no more buttons."""
        return self in (HypothesisState.CONFIRMED, HypothesisState.RULED_OUT)


class Hypothesis(BaseModel):
    number: int
    text: str
    state: HypothesisState = HypothesisState.OPEN
    proposed_by: str
    proposed_at: datetime
    changed_by: str | None = None
    changed_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"H{self.number}"


class FollowUp(BaseModel):
    text: str
    by: str
    at: datetime


# Where a change to a hypothesis moves the incident in the flow, when it is further along.
PHASE_AFTER_HYPOTHESIS = {HypothesisState.TESTING: Phase.VALIDATE, HypothesisState.CONFIRMED: Phase.FIX}
PHASE_AFTER_STATUS = {Status.MONITORING: Phase.VERIFY, Status.RESOLVED: Phase.POSTMORTEM}
PHASE_ORDER = list(Phase)

REQUESTS_KEPT = 20  # request ids remembered per incident, to apply each request once


class Incident(BaseModel):
    id: str
    uid: str = ""  # unique across every incident ever declared, even when a number repeats
    number: int
    severity: Severity
    title: str
    status: Status = Status.INVESTIGATING
    declared_by: str
    commander: str
    declared_at: datetime
    updated_at: datetime
    origin_channel: str
    channel_id: str | None = None
    channel_name: str | None = None
    dedicated_channel: bool = False
    channel_note: str | None = None  # why the incident runs where it runs, when not in its own channel
    header_ts: str | None = None
    status_changed_at: dict[Status, datetime] = Field(default_factory=dict)
    last_update: StatusUpdate | None = None
    next_update_due: datetime | None = None  # the promise made to readers; None once resolved
    verification_ts: str | None = None  # the Verification checklist message, once posted
    revision: int = 0  # bumped by every stored change; orders the Slack work each change implies
    requests: tuple[str, ...] = ()  # the latest requests applied (ids), so a retry changes nothing
    planned_items: frozenset[str] = frozenset()  # checklist items posted or queued for posting
    phase: Phase = Phase.ASSESS
    phases_entered: frozenset[Phase] = frozenset({Phase.ASSESS})
    roles: dict[str, str] = Field(default_factory=dict)  # role key -> user, besides the commander
    hypotheses: tuple[Hypothesis, ...] = ()
    hypotheses_ts: str | None = None  # the live Hypotheses message, once posted
    followups: tuple[FollowUp, ...] = ()
    evidence: frozenset[str] = frozenset()  # Slack messages (`channel/ts`) on the timeline as evidence
    alert: AlertNote | None = None  # declared from an alert (the triage message's Declare)
    changes: tuple[ChangeEvent, ...] = ()  # the changes recorded in the two hours before declaring
    changes_total: int = 0  # how many there were: `changes` keeps those Recent changes listed
    charts: tuple[ChartNote, ...] = ()  # metrics charts uploaded, oldest first

    @property
    def is_resolved(self) -> bool:
        return self.status is Status.RESOLVED

    @property
    def cause(self) -> Hypothesis | None:
        """The confirmed hypothesis (the latest confirmed, if several were)."""
        confirmed = [h for h in self.hypotheses if h.state is HypothesisState.CONFIRMED]
        return max(confirmed, key=lambda h: h.changed_at or h.proposed_at) if confirmed else None

    def identified(self) -> tuple[datetime | None, str]:
        """When the cause was first known, and how: the status Identified or a confirmed
        hypothesis, whichever came first (None, "" before either)."""
        found: list[tuple[datetime, int, str]] = []
        status = self.status_changed_at.get(Status.IDENTIFIED)
        if status is not None:
            found.append((status, 0, "status Identified"))
        for hypothesis in self.hypotheses:
            if hypothesis.state is HypothesisState.CONFIRMED and hypothesis.changed_at is not None:
                found.append((hypothesis.changed_at, hypothesis.number, f"{hypothesis.label} confirmed"))
        if not found:
            return None, ""
        at, _, how = min(found)
        return at, how

    def role_holders(self) -> dict[str, str]:
        """Role key -> user, the commander first."""
        return {"commander": self.commander, **self.roles}

    def hypothesis(self, number: int) -> Hypothesis:
        for found in self.hypotheses:
            if found.number == number:
                return found
        raise UnknownHypothesis(f"{self.id} has no hypothesis H{number}")

    def require_open(self) -> None:
        if self.is_resolved:
            raise IncidentClosed(self.id)

    def has_applied(self, request_id: str | None) -> bool:
        return request_id is not None and request_id in self.requests

    def _changed(self, at: datetime, request_id: str | None, **fields: Any) -> Incident:
        """A validated copy with `fields` changed, one revision on, remembering the request."""
        requests = self.requests
        if request_id is not None:
            requests = (*requests, request_id)[-REQUESTS_KEPT:]
        data = self.model_dump()
        data.update(fields, updated_at=at, revision=self.revision + 1, requests=requests)
        return Incident.model_validate(data)

    def moved_to(
        self, status: Status, at: datetime, update: StatusUpdate | None = None, request_id: str | None = None
    ) -> Incident:
        """The incident in `status`, remembering when it first reached each status."""
        self.require_open()
        reached = dict(self.status_changed_at)
        reached.setdefault(status, at)
        last = update or self.last_update
        due = None if status is Status.RESOLVED or last is None else last.next_due
        if update is None and status is not Status.RESOLVED:
            due = self.next_update_due
        return self._changed(
            at,
            request_id,
            status=status,
            status_changed_at=reached,
            last_update=last,
            next_update_due=due,
            **self._flowing_to(PHASE_AFTER_STATUS.get(status)),
        )

    def resolved(self, at: datetime, request_id: str | None = None) -> Incident:
        return self.moved_to(Status.RESOLVED, at, request_id=request_id)

    def with_severity(
        self, severity: Severity, at: datetime, every: timedelta, request_id: str | None = None
    ) -> Incident:
        """A severity change never postpones an update already promised; it can bring it closer."""
        self.require_open()
        if severity is self.severity:
            raise NothingToChange(f"{self.id} is already {severity.value}")
        due = at + every
        if self.next_update_due is not None:
            due = min(due, self.next_update_due)
        return self._changed(at, request_id, severity=severity, next_update_due=due)

    def in_channel(
        self, channel_id: str, name: str | None, dedicated: bool, at: datetime, note: str | None = None
    ) -> Incident:
        return self._changed(
            at, None, channel_id=channel_id, channel_name=name, dedicated_channel=dedicated, channel_note=note
        )

    def with_header(self, ts: str, at: datetime) -> Incident:
        return self._changed(at, None, header_ts=ts)

    def with_verification(self, ts: str, at: datetime) -> Incident:
        return self._changed(at, None, verification_ts=ts)

    def planning(self, items: set[str], at: datetime, request_id: str | None = None) -> Incident:
        """Checklist items now queued for posting, so no later change queues them again."""
        return self._changed(at, request_id, planned_items=self.planned_items | items)

    def noted(self, at: datetime, request_id: str | None = None) -> Incident:
        """Unchanged but for the request it applied: for changes that live on the timeline and
        in the work they queue (a note, evidence, the timeline posted)."""
        return self._changed(at, request_id)

    def in_phase(self, phase: Phase, at: datetime, request_id: str | None = None) -> Incident:
        """The incident at `phase` of the flow (NothingToChange if it is there already)."""
        self.require_open()
        if phase is self.phase:
            raise NothingToChange(f"{self.id} is already at {phase.value}")
        return self._changed(at, request_id, phase=phase, phases_entered=self.phases_entered | {phase})

    def _flowing_to(self, phase: Phase | None) -> dict[str, Any]:
        """The fields of a move forward to `phase` made by the flow itself (never backwards)."""
        if phase is None or PHASE_ORDER.index(phase) <= PHASE_ORDER.index(self.phase):
            return {}
        return {"phase": phase, "phases_entered": self.phases_entered | {phase}}

    def with_hypothesis(self, text: str, by: str, at: datetime, request_id: str | None = None) -> Incident:
        self.require_open()
        number = max((h.number for h in self.hypotheses), default=0) + 1
        added = Hypothesis(number=number, text=text, proposed_by=by, proposed_at=at)
        return self._changed(at, request_id, hypotheses=(*self.hypotheses, added))

    def with_hypothesis_state(
        self, number: int, state: HypothesisState, by: str, at: datetime, request_id: str | None = None
    ) -> Incident:
        """One hypothesis moved to `state`; a settled one (confirmed, ruled out) stays as it is."""
        self.require_open()
        current = self.hypothesis(number)
        if current.state is state or current.state.settled:
            raise NothingToChange(f"H{number} of {self.id} is already {current.state.value}")
        changed = current.model_copy(update={"state": state, "changed_by": by, "changed_at": at})
        hypotheses = tuple(changed if h.number == number else h for h in self.hypotheses)
        flow = self._flowing_to(PHASE_AFTER_HYPOTHESIS.get(state))
        return self._changed(at, request_id, hypotheses=hypotheses, **flow)

    def with_hypotheses_message(self, ts: str, at: datetime) -> Incident:
        return self._changed(at, None, hypotheses_ts=ts)

    def with_role(self, role: str, user: str, at: datetime, request_id: str | None = None) -> Incident:
        self.require_open()
        if self.role_holders().get(role) == user:
            raise NothingToChange(f"{user} already holds {role} of {self.id}")
        if role == "commander":
            return self._changed(at, request_id, commander=user)
        return self._changed(at, request_id, roles={**self.roles, role: user})

    def with_evidence(self, message: str, at: datetime, request_id: str | None = None) -> Incident:
        """A Slack message (`channel/ts`) recorded as evidence (NothingToChange if it is)."""
        if message in self.evidence:
            raise NothingToChange(f"{message} is already evidence of {self.id}")
        return self._changed(at, request_id, evidence=self.evidence | {message})

    def with_followup(self, text: str, by: str, at: datetime, request_id: str | None = None) -> Incident:
        """Follow-ups are taken after resolving too: they are for the postmortem."""
        added = FollowUp(text=text, by=by, at=at)
        return self._changed(at, request_id, followups=(*self.followups, added))

    def with_chart(self, chart: ChartNote, at: datetime) -> Incident:
        """A metrics chart uploaded to the channel (after resolving too), for the postmortem."""
        return self._changed(at, None, charts=(*self.charts, chart))


class MessageState(BaseModel):
    """A checklist message and the ticks it shows, read atomically from the store."""

    incident_id: str
    message: ChecklistMessage
    ticks: dict[str, Tick]
    rev: int


def incident_id_for(number: int) -> str:
    return f"INC-{number}"


# Polling runs every fraction of a second; a claim later than this was missed by a dead process.
LATE_AFTER = timedelta(seconds=2)


class Claim(BaseModel):
    """A due reminder (or digest) this process now owns until it confirms delivery."""

    member: str
    due_at: datetime
    token: str  # the due time exactly as Redis holds it, to confirm this claim and no other
    missed: int  # 1 for the first reminder since the last update, 2 for the second, ...

    def lateness(self, now: datetime) -> timedelta:
        return now - self.due_at

    def is_late(self, now: datetime) -> bool:
        """Later than polling explains: no bot process was running when it fell due."""
        return self.lateness(now) > LATE_AFTER
