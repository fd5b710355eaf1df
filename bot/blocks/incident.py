"""Incident messages: the header of the incident channel and the declaration announcement."""

from __future__ import annotations

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
from bot.commands import USAGE
from bot.models import Incident
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


def header(incident: Incident, spec: SeveritySpec) -> Rendered:
    """The first message of the incident channel; refreshed whenever the incident changes."""
    label = escape_mrkdwn(spec.label)
    fields = [
        MarkdownTextObject(text=f"*Severity*\n{label}: {escape_mrkdwn(spec.description)}"),
        MarkdownTextObject(text=f"*Expected response*\n{escape_mrkdwn(spec.response)}"),
        MarkdownTextObject(text=f"*Commander*\n{fmt.user(incident.commander)}"),
        MarkdownTextObject(text=f"*Status*\n{incident.status.value}"),
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
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(f"{incident.id} · {spec.label}", 150), emoji=True)),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{SEVERITY_EMOJI.get(incident.severity.value, '')} *{_title(incident)}*"
            )
        ),
        SectionBlock(fields=fields),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Work the checklists below: assess, mitigate, then verify. "
                    "`/incident help` lists the commands."
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
