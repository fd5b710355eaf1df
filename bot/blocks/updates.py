"""Status updates in the shape of the Incident Update Template, and the messages around them:
the update modal, `/incident status`, reminders, the managers' digest and the resolution."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks import Rendered
from bot.blocks import format as fmt
from bot.ids import INPUT_ACTION, ActionId, CallbackId, IncidentRef, UpdateField
from bot.models import (
    LATE_AFTER,
    Claim,
    Incident,
    Severity,
    Status,
    StatusUpdate,
    format_duration,
    parse_duration,
)
from bot.playbook import SeveritySpec
from bot.text import escape_mrkdwn, truncate

NEXT_UPDATE_CHOICES = ("5m", "10m", "15m", "30m", "1h", "2h", "4h", "8h", "24h")
DIGEST_MAX_INCIDENTS = 40


def incident_line(incident: Incident, spec: SeveritySpec) -> str:
    return f"*{incident.id} · {escape_mrkdwn(spec.label)} · {escape_mrkdwn(incident.title)}*"


def template_lines(update: StatusUpdate) -> str:
    """The four lines of the template, user text escaped."""
    if update.status is Status.RESOLVED:
        next_line = "none, the incident is resolved"
    else:
        next_line = f"{fmt.spoken(update.next_update)} (at {fmt.clock(update.next_due)})"
    return (
        f"*Status:* {update.status.value}\n"
        f"*Impact:* {escape_mrkdwn(update.impact)}\n"
        f"*Current state:* {escape_mrkdwn(update.current_state)}\n"
        f"*Next update:* {next_line}"
    )


def status_update(incident: Incident, spec: SeveritySpec, update: StatusUpdate) -> Rendered:
    body = f"{incident_line(incident, spec)}\n{template_lines(update)}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=truncate(body, 3000))),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Posted by {fmt.user(update.posted_by)} at {fmt.stamp(update.posted_at)}"
                )
            ]
        ),
    ]
    text = f"{incident.id} update: {update.status.value}. {escape_mrkdwn(update.impact)}"
    return Rendered(text=truncate(text, 300), blocks=blocks)


def post_update_button(incident: Incident) -> ActionsBlock:
    return ActionsBlock(
        block_id="incident_actions",
        elements=[
            ButtonElement(
                text=PlainTextObject(text="Post update"),
                action_id=ActionId.OPEN_UPDATE.value,
                value=IncidentRef(incident_id=incident.id, uid=incident.uid).encode(),
                style="primary",
            )
        ],
    )


def _duration_option(delta: timedelta) -> Option:
    return Option(value=format_duration(delta), text=PlainTextObject(text=fmt.spoken(delta)))


def next_update_options(default: timedelta) -> list[Option]:
    """The usual choices plus the severity's cadence, however unusual (e.g. `4s`)."""
    choices = {parse_duration(c) for c in NEXT_UPDATE_CHOICES} | {default}
    return [_duration_option(d) for d in sorted(choices)]


def _text_input(field: UpdateField, label: str, hint: str, initial: str | None) -> InputBlock:
    return InputBlock(
        block_id=field.value,
        label=PlainTextObject(text=label),
        hint=PlainTextObject(text=hint),
        element=PlainTextInputElement(action_id=INPUT_ACTION, multiline=True, initial_value=initial),
    )


def update_modal(incident: Incident, spec: SeveritySpec) -> View:
    """The update modal, prefilled from the previous update."""
    last = incident.last_update
    statuses = [Option(value=s.value, text=PlainTextObject(text=s.value)) for s in Status]
    current = next(o for o in statuses if o.value == incident.status.value)
    default_next = _duration_option(spec.update_every)
    return View(
        type="modal",
        callback_id=CallbackId.UPDATE.value,
        private_metadata=IncidentRef(incident_id=incident.id, uid=incident.uid).encode(),
        title=PlainTextObject(text=truncate(f"Update {incident.id}", 24)),
        submit=PlainTextObject(text="Post update"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=incident_line(incident, spec))),
            InputBlock(
                block_id=UpdateField.STATUS.value,
                label=PlainTextObject(text="Status"),
                element=StaticSelectElement(action_id=INPUT_ACTION, options=statuses, initial_option=current),
            ),
            _text_input(
                UpdateField.IMPACT,
                "Impact",
                "What users experience, e.g. ~5% of checkout requests failing",
                last.impact if last else None,
            ),
            _text_input(
                UpdateField.CURRENT_STATE,
                "Current state",
                "What is happening now, e.g. deploying a fix",
                last.current_state if last else None,
            ),
            InputBlock(
                block_id=UpdateField.NEXT_UPDATE.value,
                label=PlainTextObject(text="Next update"),
                element=StaticSelectElement(
                    action_id=INPUT_ACTION,
                    options=next_update_options(spec.update_every),
                    initial_option=default_next,
                ),
            ),
        ],
    )


def status_reply(incident: Incident, spec: SeveritySpec, now: datetime) -> str:
    """`/incident status`, for the user who asked."""
    lines = [incident_line(incident, spec)]
    if incident.last_update is not None:
        lines.append(template_lines(incident.last_update))
        lines.append(f"_Last update {fmt.stamp(incident.last_update.posted_at)}_")
    else:
        lines.append(f"*Status:* {incident.status.value} (no update posted yet)")
    lines.append(
        f"*Severity:* {escape_mrkdwn(spec.label)}: {escape_mrkdwn(spec.description)} · "
        f"*Commander:* {fmt.user(incident.commander)}"
    )
    if incident.is_resolved:
        resolved_at = incident.status_changed_at.get(Status.RESOLVED, now)
        lines.append(f"*Resolved* after {fmt.elapsed(resolved_at - incident.declared_at)}")
    else:
        lines.append(
            f"*Open for* {fmt.elapsed(now - incident.declared_at)} · "
            f"*Next update due:* {fmt.due(incident.next_update_due, now)}"
        )
    return "\n".join(lines)


def reminder(incident: Incident, spec: SeveritySpec, claim: Claim, now: datetime) -> Rendered:
    """In the incident channel: the next update is due. Mentions the commander and the
    communications lead (who writes updates, where there is one)."""
    promised = incident.next_update_due or claim.due_at
    when = "is due now" if promised >= now - LATE_AFTER else f"was due at {fmt.due(promised, now)}"
    people = [fmt.user(incident.commander)]
    comms = incident.roles.get("comms")
    if comms and comms != incident.commander:
        people.append(fmt.user(comms))
    line = (
        f":alarm_clock: {' '.join(people)} the next update for "
        f"{incident_line(incident, spec)} {when}. Post one so nobody has to ask."
    )
    context = f"Reminder {claim.missed} since the last update"
    if claim.is_late(now):
        context += (
            f" · this reminder is {fmt.elapsed(claim.lateness(now))} late "
            "(no bot process was running when it fell due)"
        )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=line)),
        ContextBlock(elements=[MarkdownTextObject(text=context)]),
        post_update_button(incident),
    ]
    return Rendered(text=f"{incident.id}: the next status update is due", blocks=blocks)


def overdue_note(incident: Incident, spec: SeveritySpec, now: datetime) -> Rendered:
    """For managers: an honest note that an update is late, and by how long."""
    promised = incident.next_update_due or now
    last = incident.last_update
    since = (
        f"Last update {fmt.stamp(last.posted_at)} ({last.status.value})."
        if last
        else f"No update yet since it was declared at {fmt.stamp(incident.declared_at)}."
    )
    line = (
        f":warning: The status update for {incident_line(incident, spec)} is overdue by "
        f"{fmt.elapsed(now - promised)} (it was due at {fmt.clock(promised)}). {since} "
        f"Commander: {fmt.user(incident.commander)}."
    )
    return Rendered(text=line, blocks=[SectionBlock(text=MarkdownTextObject(text=line))])


def digest(incidents: list[tuple[Incident, SeveritySpec]], now: datetime) -> Rendered:
    """Every open incident, most severe first: what managers read without asking."""
    ordered = sorted(incidents, key=lambda pair: (pair[0].severity.rank, pair[0].declared_at))
    header = f":clipboard: *Open incidents at {fmt.stamp(now)}*: {len(ordered)}"
    lines = []
    for incident, spec in ordered[:DIGEST_MAX_INCIDENTS]:
        lines.append(
            f"• {incident_line(incident, spec)}: {incident.status.value}"
            f" · next update {fmt.due(incident.next_update_due, now)}"
        )
    if len(ordered) > DIGEST_MAX_INCIDENTS:
        lines.append(f"…and {len(ordered) - DIGEST_MAX_INCIDENTS} more.")
    if not ordered:
        lines.append("None. All quiet.")
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=header))]
    chunk: list[str] = []
    for line in lines:
        # Section text is capped at 3000 characters: start a new section before it overflows.
        if chunk and len("\n".join([*chunk, line])) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return Rendered(text=f"Open incidents: {len(ordered)}", blocks=blocks)


def _time_to(incident: Incident, status: Status) -> str:
    reached = incident.status_changed_at.get(status)
    return fmt.elapsed(reached - incident.declared_at) if reached else "not reached"


def resolution(incident: Incident, spec: SeveritySpec, open_verification: list[str] | None) -> Rendered:
    """The final message, for the channel and for stakeholders."""
    lines = [f":white_check_mark: {incident_line(incident, spec)} is *resolved*."]
    if incident.last_update is not None:
        # The last reported impact and state, under the status the incident has now.
        lines.append(template_lines(incident.last_update.model_copy(update={"status": Status.RESOLVED})))
    lines.append(
        f"Time to identified: {_time_to(incident, Status.IDENTIFIED)} · "
        f"to monitoring: {_time_to(incident, Status.MONITORING)} · "
        f"to resolved: {_time_to(incident, Status.RESOLVED)}"
    )
    if open_verification is None:
        lines.append("The Verification checklist was never run: the incident did not reach Monitoring.")
    elif open_verification:
        items = "\n".join(f"• {escape_mrkdwn(t)}" for t in open_verification)
        lines.append(f"*Verification items still open:*\n{items}")
    else:
        lines.append("All Verification items were ticked.")
    cause = incident.cause
    if cause is not None:
        lines.append(f"*Cause* ({cause.label}): {fmt.clip(cause.text, 500)}")
    if incident.followups:
        # Follow-up texts are stored safe for mrkdwn (bot.text.user_text).
        shown = "\n".join(f"• {fmt.clip(f.text, 200)} ({fmt.user(f.by)})" for f in incident.followups[:10])
        more = len(incident.followups) - 10
        lines.append(f"*Follow-ups*\n{shown}" + (f"\n…and {more} more" if more > 0 else ""))
    lines.append("Next: the postmortem draft follows; complete it to document and prevent recurrence.")
    body = fmt.clip("\n".join(lines), 3000)
    return Rendered(
        text=f"{incident.id} resolved: {escape_mrkdwn(incident.title)}",
        blocks=[SectionBlock(text=MarkdownTextObject(text=body))],
    )


def severity_changed(
    incident: Incident,
    previous: Severity,
    severity: Severity,
    previous_spec: SeveritySpec,
    spec: SeveritySpec,
    by: str,
) -> Rendered:
    direction = "raised" if severity.rank < previous.rank else "lowered"
    line = (
        f":rotating_light: {fmt.user(by)} {direction} *{incident.id}* from "
        f"{escape_mrkdwn(previous_spec.label)} to *{escape_mrkdwn(spec.label)}* "
        f"({escape_mrkdwn(spec.description)}; expected response: {escape_mrkdwn(spec.response)}): "
        f"{escape_mrkdwn(incident.title)}. Updates are now due every {fmt.spoken(spec.update_every)}."
    )
    return Rendered(text=line, blocks=[SectionBlock(text=MarkdownTextObject(text=line))])
