"""The triage message's buttons: **Declare SEVn** and **Dismiss** on an alert from Alertmanager."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.alert_groups import GroupRecord, TriageState
from bot.blocks import format as fmt
from bot.blocks import incident as incident_blocks
from bot.errors import ChannelTaken, StaleReference, StoreLost, StoreUnavailable
from bot.ids import ActionId, AlertRef
from bot.models import Incident
from bot.triage import Click
from handlers.deps import deps_of
from handlers.messages import store_problem, unknown_incident
from handlers.payloads import ButtonClick

log = logging.getLogger(__name__)

ALERTS_OFF = "Alerts from Alertmanager are switched off here (INCIDENT_ALERT_TOKEN is not set)."
GONE = (
    "I no longer have that alert (its record expired, or it is from before the store was reset), "
    "so nothing was changed."
)


async def handle_declare(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Declare the incident the alert asks for. Stored before the ack, like a tick: a click that
    was acknowledged is never lost."""
    try:
        text = await _click(body, context, declare=True)
    finally:
        await ack()
    if text is not None:
        await respond(text=text, response_type="ephemeral", replace_original=False)


async def handle_dismiss(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    try:
        text = await _click(body, context, declare=False)
    finally:
        await ack()
    if text is not None:
        await respond(text=text, response_type="ephemeral", replace_original=False)


async def _click(body: dict[str, object], context: AsyncBoltContext, *, declare: bool) -> str | None:
    """Apply the click; what to tell the user who clicked, if anything."""
    deps = deps_of(context)
    try:
        click = ButtonClick.model_validate(body)
        ref = click.alert
    except (ValidationError, ValueError):
        log.warning("ignored an alert button click with an unexpected value")
        return None
    if deps.triage is None:
        return ALERTS_OFF
    user = click.user.id
    origin = click.channel.id if click.channel is not None else ""
    try:
        if declare:
            done = await deps.triage.declare(ref, user, origin, create_channel=deps.create_channels)
        else:
            done = await deps.triage.dismiss(ref, user)
    except StoreUnavailable as exc:
        return store_problem(exc)
    except StoreLost as exc:
        return f":warning: Nothing was declared: {exc}."
    except ChannelTaken as exc:
        return (
            f"*{exc.incident_id}* already runs in this channel, so nothing was declared. Resolve it "
            "first, or declare the new incident from another channel with `/incident`."
        )
    except StaleReference:
        return await unknown_incident(deps.service, GONE)
    if declare and done.incident is not None:
        deps.delivery.wake()  # the declaration's Slack work waits in its outbox
        if done.applied:
            return incident_blocks.declared(done.incident)
        if done.unlinked:
            unlinked = _unlinked(done.record, ref, done.incident, origin)
            return f"{incident_blocks.declared(done.incident)}\n{unlinked}"
    elif done.applied:
        return None
    return _not_applied(done, ref, declare)


def _unlinked(record: GroupRecord, ref: AlertRef, incident: Incident, origin: str) -> str:
    """Why the incident a click declared (in `origin`) is not linked to the alert's message."""
    if record.uid == ref.uid and record.episode != ref.episode:
        # Not posted yet: it goes to the triage channel, where the clicked one is.
        channel = record.message.channel if record.message is not None else origin
        where = f" in {fmt.channel(channel)}" if channel else ""
        return (
            f"The alert fired anew meanwhile: its newest message{where} stays in triage, not "
            f"linked to *{incident.id}*."
        )
    return f"I no longer have the alert's record, so its message is not linked to *{incident.id}*."


def _not_applied(done: Click, ref: AlertRef, declare: bool) -> str:
    """Why a click changed nothing: the message it was on is stale, or someone acted first."""
    record = done.record
    nothing = "nothing was declared" if declare else "nothing was dismissed"
    if record.episode != ref.episode:
        where = f" in {fmt.channel(record.message.channel)}" if record.message is not None else ""
        return f"This alert has fired again since that message, so {nothing}: use its newest message{where}."
    if record.state is TriageState.DECLARED:
        by = f" by {fmt.user(record.declared_by)}" if record.declared_by else ""
        incident = done.incident
        where = f": {fmt.channel(incident.channel_id)}" if incident and incident.channel_id else ""
        return f"This alert is already declared as *{record.incident_id}*{by}{where}, so {nothing}."
    if record.state is TriageState.DISMISSED:
        by = fmt.user(record.dismissed_by) if record.dismissed_by else "someone"
        when = f" at {fmt.clock(record.dismissed_at)}" if record.dismissed_at else ""
        if not declare:
            return f"This alert was already dismissed by {by}{when}."
        return (
            f"This alert was dismissed by {by}{when}, so {nothing}. If it needs an incident after "
            f"all, declare one with `/incident {ref.severity.value} <title>`."
        )
    return f"This alert changed meanwhile, so {nothing}; try again on its message."


def register(app: AsyncApp) -> None:
    app.action(ActionId.ALERT_DECLARE.value)(handle_declare)
    app.action(ActionId.ALERT_DISMISS.value)(handle_dismiss)
