"""The triage message: an alert group that belongs to no incident, in the triage channel, with
**Declare SEVn** and **Dismiss** while nobody has acted on it; and the alert line of an incident
declared from one."""

from __future__ import annotations

from typing import assert_never

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.alert_groups import AlertView, GroupRecord, TriageState
from bot.blocks import MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.ids import ActionId, AlertRef
from bot.models import AlertNote, Incident
from bot.text import escape_mrkdwn, truncate

LABELS_SHOWN_CHARS = 1500
FIELD_MAX_CHARS = 2000
BUTTON_MAX_CHARS = 75
FALLBACK_MAX_CHARS = 300


def triage_message(record: GroupRecord, severity_label: str, incident: Incident | None = None) -> Rendered:
    """The message of `record`'s episode as it stands. `severity_label`: the playbook's label of
    the severity the alert maps to; `incident`: the one it was declared as, if still there."""
    view = record.alert
    summary = escape_mrkdwn(view.summary)
    if view.firing:
        title = f":rotating_light: *{summary}*"
        if record.flapping and record.fired_at is not None:
            title += f" (firing again since {fmt.clock(record.fired_at)})"
    else:
        ended = view.ended_at or record.resolved_at or record.notified_at
        title = f":white_check_mark: *{summary}* (resolved at {fmt.clock(ended)})"
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=fmt.clip(title, MAX_SECTION_TEXT)))]
    if record.flapping:
        flaps = (
            f":repeat: It has fired {record.firings} times since "
            f"{fmt.stamp(record.episode_started_at)}, resolving in between."
        )
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=flaps)]))
    blocks.append(SectionBlock(fields=_fields(view, severity_label)))
    labels = labels_line(view.labels)
    if labels:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=labels)]))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_sources(record))]))
    blocks += _state_blocks(record, severity_label, incident)
    status = "FIRING" if view.firing else "RESOLVED"
    text = f"[{status}] {truncate(view.summary, FALLBACK_MAX_CHARS)} ({severity_label})"
    return Rendered(text=escape_mrkdwn(text), blocks=blocks)


def _fields(view: AlertView, severity_label: str) -> list[MarkdownTextObject]:
    severity = escape_mrkdwn(severity_label)
    if view.severity_label:
        severity += f" (alert severity `{_code(view.severity_label)}`)"
    fields = [
        MarkdownTextObject(text=f"*Severity*\n{severity}"),
        MarkdownTextObject(text=f"*Alerts*\n{view.counted()}"),
        MarkdownTextObject(
            text=f"*Started*\n{fmt.stamp(view.started_at) if view.started_at else 'not given'}"
        ),
    ]
    if view.service:
        fields.append(MarkdownTextObject(text=f"*Service*\n{escape_mrkdwn(view.service)}"))
    return [MarkdownTextObject(text=fmt.clip(f.text, FIELD_MAX_CHARS)) for f in fields]


def labels_line(labels: dict[str, str], limit: int = LABELS_SHOWN_CHARS) -> str:
    """`alertname=X · service=checkout · severity=critical`, in code spans, cut to `limit`."""
    shown = " · ".join(f"`{_code(name)}={_code(value)}`" for name, value in labels.items())
    return fmt.clip(shown, limit) if shown else ""


def _code(text: str) -> str:
    """Text for a code span, where a backtick would end it early."""
    return escape_mrkdwn(text).replace("`", "'")


def _sources(record: GroupRecord) -> str:
    view = record.alert
    parts = []
    if view.link:
        parts.append(f"<{escape_mrkdwn(view.link)}|Source>")
    if view.dashboard:
        parts.append(f"<{escape_mrkdwn(view.dashboard)}|Alertmanager>")
    parts.append(f"Last notified {fmt.stamp(record.notified_at)}")
    return " · ".join(parts)


def _state_blocks(record: GroupRecord, severity_label: str, incident: Incident | None) -> list[Block]:
    match record.state:
        case TriageState.TRIAGE:
            declare = truncate(f"Declare {severity_label}", BUTTON_MAX_CHARS)
            ref = AlertRef(
                group_id=record.id, uid=record.uid, episode=record.episode, severity=record.alert.severity
            ).encode()
            return [
                ActionsBlock(
                    block_id=f"alert_actions.{record.episode}",
                    elements=[
                        ButtonElement(
                            text=PlainTextObject(text=declare),
                            action_id=ActionId.ALERT_DECLARE.value,
                            value=ref,
                            style="primary",
                        ),
                        ButtonElement(
                            text=PlainTextObject(text="Dismiss"),
                            action_id=ActionId.ALERT_DISMISS.value,
                            value=ref,
                        ),
                    ],
                )
            ]
        case TriageState.DECLARED:
            line = f":white_check_mark: Declared as *{escape_mrkdwn(record.incident_id or '?')}*"
            if record.declared_by:
                line += f" by {fmt.user(record.declared_by)}"
            if incident is not None and incident.channel_id is not None:
                line += f": {fmt.channel(incident.channel_id)}"
            return [SectionBlock(text=MarkdownTextObject(text=line))]
        case TriageState.DISMISSED:
            by = fmt.user(record.dismissed_by) if record.dismissed_by else "someone"
            when = f" at {fmt.clock(record.dismissed_at)}" if record.dismissed_at else ""
            line = (
                f":no_bell: Dismissed by {by}{when}. It is not posted again until it resolves and fires anew."
            )
            return [SectionBlock(text=MarkdownTextObject(text=line))]
        case _:
            assert_never(record.state)


def alert_line(note: AlertNote, limit: int = MAX_SECTION_TEXT) -> str:
    """The incident header's line about the alert it was declared from: its summary (linked to
    its source), service, start and labels, safe mrkdwn within `limit`."""
    summary = escape_mrkdwn(note.summary)
    if note.link:
        summary = f"<{escape_mrkdwn(note.link)}|{summary}>"
    parts = [f":rotating_light: *Declared from the alert* {summary}"]
    if note.service:
        parts.append(f"service {escape_mrkdwn(note.service)}")
    if note.started_at is not None:
        parts.append(f"since {fmt.stamp(note.started_at)}")
    line = " · ".join(parts)
    labels = labels_line(note.labels, max(0, limit - len(line) - 1))
    return fmt.clip(f"{line}\n{labels}" if labels else line, limit)
