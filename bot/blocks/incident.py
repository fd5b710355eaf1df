"""Incident messages: the header of the incident channel, the declaration announcement and the
list of open incidents."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks import Rendered, updates
from bot.blocks import format as fmt
from bot.blocks.triage import alert_line
from bot.commands import USAGE
from bot.models import PHASE_GUIDE, Incident
from bot.playbook import SeveritySpec
from bot.text import escape_mrkdwn, truncate

SEVERITY_EMOJI = {
    "sev1": ":red_circle:",
    "sev2": ":large_orange_circle:",
    "sev3": ":large_yellow_circle:",
    "sev4": ":white_circle:",
}


def _title(incident: Incident) -> str:
    return escape_mrkdwn(incident.title)


def header(incident: Incident, spec: SeveritySpec, role_labels: dict[str, str] | None = None) -> Rendered:
    """The first message of the incident channel; refreshed whenever the incident changes.
    `role_labels`: role key -> label, from the playbook."""
    label = escape_mrkdwn(spec.label)
    labels = role_labels or {}
    roles = "\n".join(
        f"{escape_mrkdwn(labels.get(role, role))}: {fmt.user(user)}"
        for role, user in incident.role_holders().items()
    )
    step, question = PHASE_GUIDE[incident.phase]
    fields = [
        MarkdownTextObject(text=f"*Severity*\n{label}: {escape_mrkdwn(spec.description)}"),
        MarkdownTextObject(text=f"*Expected response*\n{escape_mrkdwn(spec.response)}"),
        MarkdownTextObject(text=f"*Roles*\n{roles}"),
        MarkdownTextObject(text=f"*Status*\n{incident.status.value}"),
        MarkdownTextObject(text=f"*Phase*\n{step}: {question}"),
        MarkdownTextObject(
            text=f"*Declared*\n{fmt.stamp(incident.declared_at)} by {fmt.user(incident.declared_by)}"
        ),
    ]
    last = incident.last_update
    if last is not None:
        fields.append(
            MarkdownTextObject(
                text=f"*Last update*\n{fmt.stamp(last.posted_at)} by {fmt.user(last.posted_by)}"
            )
        )
    if incident.next_update_due is not None:
        fields.append(MarkdownTextObject(text=f"*Next update due*\n{fmt.stamp(incident.next_update_due)}"))
    cause = incident.cause
    if cause is not None:
        # Hypothesis text is stored safe for mrkdwn (bot.text.user_text).
        cause_text = fmt.clip(cause.text, 1900)
        fields.append(MarkdownTextObject(text=f"*Cause* ({cause.label}, confirmed)\n{cause_text}"))
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(f"{incident.id} · {spec.label}", 150), emoji=True)),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{SEVERITY_EMOJI.get(incident.severity.value, '')} *{_title(incident)}*"
            )
        ),
        SectionBlock(fields=fields),
    ]
    if incident.alert is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=alert_line(incident.alert))]))
    blocks += [
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Work the checklists below. Note evidence with `/incident note`, propose causes "
                    "with `/incident hypothesis`; `/incident help` lists the commands."
                )
            ]
        ),
    ]
    if not incident.is_resolved:
        blocks.append(updates.post_update_button(incident))
    text = f"{incident.id} ({label}): {_title(incident)}. Status: {incident.status.value}"
    return Rendered(text=text, blocks=blocks)


def announcement(incident: Incident, spec: SeveritySpec, note: str | None = None) -> Rendered:
    """The short notice of a declaration, for the channel it was declared in and stakeholders."""
    where = (
        f"Join {fmt.channel(incident.channel_id)}."
        if incident.channel_id and incident.dedicated_channel
        else ""
    )
    line = (
        f"{SEVERITY_EMOJI.get(incident.severity.value, '')} {fmt.user(incident.declared_by)} declared "
        f"*{incident.id}* ({escape_mrkdwn(spec.label)}: {escape_mrkdwn(spec.description)}): "
        f"{_title(incident)}. {where}"
    ).strip()
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=line))]
    context = f"Commander: {fmt.user(incident.commander)} · Status: {incident.status.value}"
    if note:
        context += f" · {escape_mrkdwn(note)}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return Rendered(text=line, blocks=blocks)


def usage(problem: str | None = None) -> str:
    """Help text for the user who typed the command; `problem` is already safe mrkdwn."""
    return f"{problem}\n\n{USAGE}" if problem else USAGE


def declared(incident: Incident) -> str:
    """The immediate answer to the declarer, before the channel exists."""
    return f":white_check_mark: *{incident.id}* declared: {_title(incident)}. Opening its channel…"


def already_running(incident: Incident) -> str:
    if incident.is_resolved:
        return (
            f"This is the channel of *{incident.id}*, which is resolved, so nothing was changed. "
            "Declare a new incident from another channel."
        )
    return (
        f"*{incident.id}* already runs in this channel ({incident.status.value}), so nothing was "
        "declared. Declare a new incident from another channel; to change this one's severity, "
        "type `/incident sev1` (or another severity) without a title."
    )


def no_incident_here(kind: str) -> str:
    return (
        f"There is no incident in this channel, so `/incident {kind}` changed nothing. "
        "Run it in an incident's channel, or declare one with `/incident sev2 <title>`."
    )


LIST_MAX_CHARS = 3000  # what an ephemeral reply shows whole in practice
LIST_TITLE_CHARS = 80


def incident_list(incidents: list[tuple[Incident, SeveritySpec]], now: datetime, limit: int = 20) -> str:
    """`/incident list`: the open incidents, newest first, one line each. Past `limit`, and
    past `LIST_MAX_CHARS` of text, the newest ones and `…and N more.`"""
    if not incidents:
        return "No open incidents. All quiet."
    ordered = sorted(incidents, key=lambda pair: (pair[0].declared_at, pair[0].number), reverse=True)
    lines = [_list_line(incident, spec, now) for incident, spec in ordered]
    shown = max(0, min(limit, len(lines)))
    while True:
        listed = [f"*Open incidents: {len(lines)}* (newest first)", *lines[:shown]]
        if shown < len(lines):
            listed.append(f"…and {len(lines) - shown} more.")
        text = "\n".join(listed)
        if len(text) <= LIST_MAX_CHARS or shown == 0:
            return text
        shown -= 1


def _list_line(incident: Incident, spec: SeveritySpec, now: datetime) -> str:
    """`• *INC-9* · SEV1 · Checkout down · Investigating · 3. Investigate · commander @a · open 2h 5m
    · next update in 12m`."""
    due = incident.next_update_due
    if due is None:
        next_update = "no update due"
    elif due >= now:
        next_update = f"next update in {fmt.elapsed(due - now)}"
    else:
        next_update = f"update overdue by {fmt.elapsed(now - due)}"
    return " · ".join(
        [
            f"• {SEVERITY_EMOJI.get(incident.severity.value, '')} *{incident.id}*",
            escape_mrkdwn(spec.label),
            escape_mrkdwn(truncate(incident.title, LIST_TITLE_CHARS)),
            incident.status.value,
            PHASE_GUIDE[incident.phase][0],
            f"commander {fmt.user(incident.commander)}",
            f"open {fmt.elapsed(now - incident.declared_at)}",
            next_update,
        ]
    )
