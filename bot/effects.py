"""The Slack work that a change of an incident implies, stored with the change.

Each change writes its effects in the same atomic write as the incident (`IncidentStore`), and a
delivery loop (`bot.delivery`) performs them in order, retries what failed for a passing reason,
and records what Slack refused for good. An effect's id orders it within its incident and names it
in the message metadata, so a post whose answer was lost is found instead of posted twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.models import ChecklistSection, Duration, Phase, Severity, StatusUpdate


class Target(StrEnum):
    """Where a message goes: resolved at delivery, since the incident's channel may not exist yet."""

    INCIDENT = "incident"
    ORIGIN = "origin"  # where /incident was typed
    STAKEHOLDERS = "stakeholders"


class _Work(BaseModel):
    model_config = ConfigDict(frozen=True)


class OpenChannel(_Work):
    kind: Literal["open_channel"] = "open_channel"
    create: bool  # False: run in the channel it was declared in (channel creation is off)


class InviteDeclarer(_Work):
    kind: Literal["invite"] = "invite"


class PostHeader(_Work):
    kind: Literal["header"] = "header"


class RefreshHeader(_Work):
    kind: Literal["refresh_header"] = "refresh_header"


class PostChecklist(_Work):
    kind: Literal["checklist"] = "checklist"
    phase: Phase
    part: int
    sections: tuple[ChecklistSection, ...]


class Announce(_Work):
    """The declaration, with a link to the incident's channel."""

    kind: Literal["announce"] = "announce"
    target: Target
    response_url: str | None = None  # the slash command's, for an origin the bot cannot post in


class PostUpdate(_Work):
    kind: Literal["update"] = "update"
    target: Target
    update: StatusUpdate


class SeverityNote(_Work):
    kind: Literal["severity"] = "severity"
    target: Target
    previous: Severity
    severity: Severity
    by: str


class Resolution(_Work):
    kind: Literal["resolution"] = "resolution"
    target: Target


class Reminder(_Work):
    kind: Literal["reminder"] = "reminder"
    missed: int
    due_at: datetime
    late: bool


class OverdueNote(_Work):
    kind: Literal["overdue"] = "overdue"
    missed: int


class Say(_Work):
    """A message composed when the change was made (a note, a hand-off, a runbook's symptoms, a
    part of the timeline): safe mrkdwn, posted as it is."""

    kind: Literal["say"] = "say"
    target: Target
    text: str
    context: str | None = None  # a smaller line under it
    blocks: tuple[dict[str, Any], ...] = ()  # Block Kit, when more than one section is needed


class ShowHypotheses(_Work):
    """Post the live Hypotheses message, or update it in place once it exists."""

    kind: Literal["hypotheses"] = "hypotheses"


class UploadPostmortem(_Work):
    """Upload the postmortem draft, rendered from the incident as stored at delivery."""

    kind: Literal["postmortem"] = "postmortem"


class UploadChart(_Work):
    """Query Prometheus for a service's panels over `window` up to `end`, draw the chart and
    upload it to the incident channel with each panel's latest value; when Prometheus cannot
    answer, say so there instead, naming the query and the error."""

    kind: Literal["chart"] = "chart"
    service: str
    window: Duration
    end: datetime
    by: str | None = None  # who asked (None: posted by itself, for an incident declared from an alert)
    # Panel title -> its latest value, as drawn by the attempt to upload (saved with it, before the
    # upload): what is recorded when that upload is found after its answer was lost.
    latest: dict[str, str] | None = None


class Notice(_Work):
    """Something one person must know (a refusal and what to do about it), told to them alone."""

    kind: Literal["notice"] = "notice"
    user: str
    text: str


Work = Annotated[
    OpenChannel
    | InviteDeclarer
    | PostHeader
    | RefreshHeader
    | PostChecklist
    | Announce
    | PostUpdate
    | SeverityNote
    | Resolution
    | Reminder
    | OverdueNote
    | Say
    | ShowHypotheses
    | UploadPostmortem
    | UploadChart
    | Notice,
    Field(discriminator="kind"),
]


class EffectState(StrEnum):
    PENDING = "pending"
    FAILED = "failed"  # refused for good; on the timeline, and told to whom it concerns


class Effect(BaseModel):
    id: str  # `<revision>.<index>.<kind>`: sorts in the order the changes were made
    work: Work
    state: EffectState = EffectState.PENDING
    attempts: int = 0
    in_doubt_since: datetime | None = None  # an attempt started then and its answer never came
    not_before: datetime | None = None  # backing off: not tried again before then
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.state is EffectState.PENDING


def effects_for(revision: int, works: list[Work]) -> list[Effect]:
    """Effects for the works one change implies, in the order given."""
    return [Effect(id=f"{revision:07d}.{i:02d}.{w.kind}", work=w) for i, w in enumerate(works)]


def reminder_effects(revision: int, token: str, works: list[Work]) -> list[Effect]:
    """Effects of a reminder claim: the claim's token names them, so queuing them again for the
    same claim (after a crash before it was confirmed) adds nothing."""
    return [
        Effect(id=f"{revision:07d}.r{token}.{i:02d}.{w.kind}", work=w) for i, w in enumerate(works)
    ]
