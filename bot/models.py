"""The incident domain: pydantic models shared by the service, the store and the renderers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from bot.errors import IncidentClosed, NothingToChange


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


class TimelineEvent(BaseModel):
    at: datetime
    kind: EventKind
    by: str | None = None
    text: str
    item: str | None = None  # the checklist item id, for ticks and unticks


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

    @property
    def is_resolved(self) -> bool:
        return self.status is Status.RESOLVED

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
            at, request_id, status=status, status_changed_at=reached, last_update=last, next_update_due=due
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
