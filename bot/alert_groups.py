"""Alertmanager alert groups as the bot keeps them: one record per group (`groupKey`), its
episodes, its triage message and the notes it owes the incident it was declared as. Pure: models
and their transitions, no I/O, no Slack.

A group fires and is posted to the triage channel (TRIAGE); someone declares it (DECLARED, linked
to the incident) or dismisses it (DISMISSED). Alertmanager notifies the same group again and
again (every `repeat_interval` while it fires, when it changes, and after a failed delivery):
each notification updates the record, and in triage the message shows it, in place, a group that
resolves and fires again (flaps) included. A new *episode*, in triage again with a message of its
own, starts only when
- a dismissed group fires after it was resolved;
- a declared group fires once its incident is resolved (or gone).

Slack work is never done here: a record says what the triage message should show (`revision`)
and what Slack last accepted (`shown`), and holds the notes still owed to its incident; the
triage loop (`bot.triage_delivery`) does the difference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.alerts import SEVERITY_LABEL, AlertGroup, AlertStatus, assess_group
from bot.blocks import format as fmt
from bot.models import AlertNote, Severity
from bot.text import escape_mrkdwn, truncate

# A group's record expires this long after the group last notified: Redis does not keep every
# group that ever fired. (A group firing after that starts afresh, in triage.)
KEPT_FOR = timedelta(days=7)
LABELS_KEPT = 20
LABEL_NAME_MAX_CHARS = 100
LABEL_VALUE_MAX_CHARS = 200
LINK_MAX_CHARS = 1000
# A link Slack can show as `<url|text>`: http(s), without blanks, `<`, `>` or `|`.
_LINK = re.compile(r"https?://[^\s<>|]+", re.IGNORECASE)

SeverityLabel = Callable[[Severity], str]


def group_id(group_key: str) -> str:
    """The id a group is kept under: the first 16 hex digits of sha256(groupKey)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:16]


def _link(url: str) -> str:
    url = url.strip()
    return url if len(url) <= LINK_MAX_CHARS and _LINK.fullmatch(url) else ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class TriageState(StrEnum):
    TRIAGE = "triage"  # posted, waiting for someone to declare or dismiss it
    DECLARED = "declared"  # an incident was declared from it
    DISMISSED = "dismissed"  # someone said it needs no incident


class AlertView(BaseModel):
    """What the bot shows of a group, as its latest notification had it."""

    model_config = ConfigDict(frozen=True)

    summary: str
    severity: Severity  # the incident severity it maps to
    severity_label: str = ""  # the alert's own `severity` label, as sent
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # the lead alert's
    started_at: datetime | None = None
    ended_at: datetime | None = None  # once resolved: when its last alert ended
    link: str = ""  # the lead alert's generatorURL, when it is a link Slack can show
    dashboard: str = ""  # Alertmanager's externalURL, likewise
    firing: bool
    alerts: int  # as sent, plus those Alertmanager left out
    firing_alerts: int

    @classmethod
    def of(cls, group: AlertGroup, mapping: dict[str, Severity]) -> AlertView:
        """The view of a notification, its severity mapped through `mapping` (the playbook's)."""
        assessed = assess_group(group, mapping)
        lead = assessed.lead
        labels = {
            truncate(name, LABEL_NAME_MAX_CHARS): truncate(value, LABEL_VALUE_MAX_CHARS)
            for name, value in sorted(lead.labels.items())[:LABELS_KEPT]
        }
        ends = [a.ends_at for a in group.alerts if a.ends_at is not None]
        return cls(
            summary=assessed.summary,
            severity=assessed.severity,
            severity_label=truncate(lead.labels.get(SEVERITY_LABEL, ""), LABEL_VALUE_MAX_CHARS),
            service=assessed.service,
            labels=labels,
            started_at=assessed.started_at,
            ended_at=max(ends) if ends and group.status is AlertStatus.RESOLVED else None,
            link=_link(lead.generator_url),
            dashboard=_link(group.external_url),
            firing=assessed.firing,
            alerts=assessed.alert_count,
            firing_alerts=assessed.firing_count,
        )

    def note(self, group_key: str) -> AlertNote:
        """What the incident keeps of the alert it was declared from."""
        return AlertNote(
            group_key=group_key,
            summary=self.summary,
            severity=self.severity,
            service=self.service,
            labels=self.labels,
            started_at=self.started_at,
            link=self.link,
            dashboard=self.dashboard,
        )

    def counted(self) -> str:
        """`3 alerts firing`, `1 alert resolved`, `2 of 3 alerts firing`."""
        if not self.firing:
            return f"{_plural(self.alerts, 'alert')} resolved"
        if self.firing_alerts == self.alerts:
            return f"{_plural(self.alerts, 'alert')} firing"
        return f"{self.firing_alerts} of {_plural(self.alerts, 'alert')} firing"


class IncidentNote(BaseModel):
    """A line the incident's timeline is owed (and, with `say`, a message in its channel),
    applied once under `id` by the triage loop."""

    model_config = ConfigDict(frozen=True)

    id: str  # the request id it is applied under
    text: str  # the timeline line: safe mrkdwn
    say: str | None = None  # said in the incident's channel too: safe mrkdwn


class TriageMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    ts: str


class GroupRecord(BaseModel):
    """One alert group, as kept in Redis (`keys.alert_group`)."""

    model_config = ConfigDict(frozen=True)

    id: str  # group_id(group_key)
    uid: str  # made with the record: names its messages and buttons, so none outlives it
    group_key: str
    episode: int = Field(default=1, ge=1)
    state: TriageState = TriageState.TRIAGE
    alert: AlertView
    notified_at: datetime  # the latest notification
    episode_started_at: datetime
    resolved_at: datetime | None = None  # when this episode's group was notified resolved
    # How often the group started firing in this episode (0: heard of resolved only): more than
    # once in triage, it resolved and fired again in between; `fired_at` is the latest.
    firings: int = Field(default=1, ge=0)
    fired_at: datetime | None = None

    # The triage message of this episode. `revision` is bumped by every change to what it shows;
    # `shown` is the newest revision Slack accepted, or that needs no showing.
    revision: int = 1
    shown: int = 0
    message: TriageMessage | None = None
    posting_since: datetime | None = None  # a post was attempted then; its answer may be lost
    attempts: int = 0  # failures in a row, for the backoff
    not_before: datetime | None = None  # backing off: not tried again before then
    refused: str | None = None  # what Slack last refused for good (logged once per error)

    incident_id: str | None = None
    declared_by: str | None = None
    declared_at: datetime | None = None
    dismissed_by: str | None = None
    dismissed_at: datetime | None = None
    notes: tuple[IncidentNote, ...] = ()  # owed to the incident, oldest first
    notes_made: int = 0  # numbers the notes' ids

    @property
    def message_key(self) -> str:
        """What the triage message of this episode carries in its metadata, so a post whose
        answer was lost is found instead of posted twice."""
        return f"alert/{self.uid}/{self.episode}"

    @property
    def needs_work(self) -> bool:
        return self.shown < self.revision or bool(self.notes)

    @property
    def flapping(self) -> bool:
        """It resolved and fired again in this episode."""
        return self.firings > 1

    @property
    def wants_message(self) -> bool:
        """A message to post, when there is none: a group in triage that fires."""
        return self.state is TriageState.TRIAGE and self.alert.firing

    def _changed(self, **fields: Any) -> GroupRecord:
        data = self.model_dump()
        data.update(fields)
        return GroupRecord.model_validate(data)

    # -- notifications -----------------------------------------------------------------------

    @classmethod
    def first(cls, group_key: str, uid: str, view: AlertView, at: datetime) -> GroupRecord:
        """A group notified for the first time. One that is resolved already is kept, not posted."""
        return cls(
            id=group_id(group_key),
            uid=uid,
            group_key=group_key,
            alert=view,
            notified_at=at,
            episode_started_at=at,
            resolved_at=None if view.firing else at,
            firings=1 if view.firing else 0,
            fired_at=at if view.firing else None,
            shown=0 if view.firing else 1,
        )

    def notified(
        self, view: AlertView, at: datetime, incident_open: bool, label: SeverityLabel
    ) -> GroupRecord:
        """The record after a notification. `incident_open`: whether the incident it was declared
        as is still open (asked only of a declared group)."""
        resolved_at = None if view.firing else (self.resolved_at or at)
        seen: dict[str, Any] = {"alert": view, "notified_at": at, "resolved_at": resolved_at}
        if self.state is TriageState.DECLARED:
            if not incident_open:
                return self._new_episode(view, at) if view.firing else self._changed(**seen)
            note = self._incident_note(view, at, label)
            if note is None:
                return self._changed(**seen)
            return self._changed(**seen, notes=(*self.notes, note), notes_made=self.notes_made + 1)
        fired = view.firing and not self.alert.firing  # resolved, and firing again
        if self.state is TriageState.DISMISSED:
            # Quiet until it fires anew: then it is worth a look again, on a message of its own.
            return self._new_episode(view, at) if fired else self._changed(**seen)
        if fired:  # in triage: the same message says it fired again; its buttons still count
            return self._changed(**seen, revision=self.revision + 1, firings=self.firings + 1, fired_at=at)
        return self._changed(**seen, revision=self.revision + 1)

    def _new_episode(self, view: AlertView, at: datetime) -> GroupRecord:
        return GroupRecord(
            id=self.id,
            uid=self.uid,
            group_key=self.group_key,
            episode=self.episode + 1,
            alert=view,
            notified_at=at,
            episode_started_at=at,
            fired_at=at,
            revision=self.revision + 1,
            shown=self.revision,
        )

    def _incident_note(self, view: AlertView, at: datetime, label: SeverityLabel) -> IncidentNote | None:
        """What the incident hears of a notification: a line when something changed (whether it
        fires, how many alerts, the severity), and a message in its channel when it resolved or
        fired again. Nothing for a notification that only repeats the last."""
        before = self.alert
        summary = f"*{escape_mrkdwn(view.summary)}*"
        say: str | None = None
        if before.firing and not view.firing:
            ended = view.ended_at or at
            text = f"Alertmanager: resolved ({view.counted()}) at {fmt.clock(ended)}"
            say = (
                f":white_check_mark: The alert {summary} resolved at {fmt.stamp(ended)}; the "
                "incident stays open until you resolve it."
            )
        elif view.firing and not before.firing:
            text = f"Alertmanager: firing again, {view.counted()}"
            say = f":rotating_light: The alert {summary} is firing again ({view.counted()})."
        elif view.firing:
            changed = []
            if (view.firing_alerts, view.alerts) != (before.firing_alerts, before.alerts):
                changed.append(f"{view.counted()} (was {before.counted().removesuffix(' firing')})")
            if view.severity is not before.severity:
                changed.append(f"it asks for {label(view.severity)} (was {label(before.severity)})")
            if not changed:
                return None
            text = f"Alertmanager: still firing, {'; '.join(changed)}"
        else:
            return None
        number = self.notes_made + 1
        return IncidentNote(id=f"alert:{self.uid}:{self.episode}:{number}", text=text, say=say)

    # -- clicks ------------------------------------------------------------------------------

    def declared_as(self, incident_id: str, by: str, at: datetime) -> GroupRecord:
        """Linked to the incident declared from it; its timeline hears how the alert stands."""
        note = IncidentNote(
            id=f"alert:{self.uid}:{self.episode}:{self.notes_made + 1}",
            text=f"Alertmanager: {self.alert.counted()}"
            + (f" since {fmt.clock(self.alert.started_at)}" if self.alert.started_at else ""),
        )
        return self._changed(
            state=TriageState.DECLARED,
            incident_id=incident_id,
            declared_by=by,
            declared_at=at,
            revision=self.revision + 1,
            notes=(*self.notes, note),
            notes_made=self.notes_made + 1,
        )

    def dismissed(self, by: str, at: datetime) -> GroupRecord:
        return self._changed(
            state=TriageState.DISMISSED, dismissed_by=by, dismissed_at=at, revision=self.revision + 1
        )

    # -- the triage loop's bookkeeping ---------------------------------------------------------

    def note_applied(self, note_id: str) -> GroupRecord:
        return self._changed(notes=tuple(n for n in self.notes if n.id != note_id))

    def attempting(self, at: datetime) -> GroupRecord:
        """A post is about to be attempted: recorded first, so a lost answer is looked for."""
        return self._changed(posting_since=self.posting_since or at)

    def posted(self, episode: int, message: TriageMessage, revision: int) -> GroupRecord:
        """Slack took this episode's message, showing `revision` (0 when found after a lost
        answer: what it shows is not known, so it is updated)."""
        if episode != self.episode or self.message is not None:
            return self
        return self._changed(
            message=message,
            posting_since=None,
            shown=max(self.shown, revision),
            attempts=0,
            not_before=None,
            refused=None,
        )

    def shown_up_to(self, revision: int) -> GroupRecord:
        return self._changed(shown=max(self.shown, revision), attempts=0, not_before=None, refused=None)

    def refused_for_good(self, error: str, revision: int) -> GroupRecord:
        """Slack will not take it (until something changes): not tried again before the next
        revision."""
        return self._changed(
            shown=max(self.shown, revision), refused=error, attempts=0, not_before=None, posting_since=None
        )

    def backing_off(self, until: datetime) -> GroupRecord:
        return self._changed(attempts=self.attempts + 1, not_before=until)
