"""The `/incident` slash command."""

from __future__ import annotations

import logging
import secrets

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import incident as incident_blocks
from bot.blocks import updates as update_blocks
from bot.commands import Declare, Help, IncidentCommand, parse_command
from bot.errors import ChannelTaken, IncidentClosed, NothingToChange, StoreLost, StoreUnavailable
from bot.models import Incident
from handlers.deps import Deps, deps_of
from handlers.messages import already_resolved, store_problem
from handlers.payloads import SlashCommand
from handlers.updates import MODAL_FAILED, open_update_modal

log = logging.getLogger(__name__)

# How long a command's trigger_id is remembered, so that Slack re-sending the command is known.
RESENT_WITHIN = 600.0


async def handle_incident_command(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    command = SlashCommand.model_validate(body)
    parsed = parse_command(command.text)
    # Slack sends one trigger_id per invocation: a re-sent request carries the same one.
    request_id = f"cmd:{command.trigger_id}" if command.trigger_id else f"cmd:{secrets.token_hex(8)}"
    if isinstance(parsed, Help):
        await ack(text=incident_blocks.usage(parsed.problem), response_type="ephemeral")
        return
    try:
        current = await deps.service.incident_in_channel(command.channel_id)
        if isinstance(parsed, IncidentCommand):
            await _in_incident(deps, parsed, current, command, request_id, ack, respond)
        elif current is not None:
            await _change_severity(deps, parsed, current, command, request_id, ack)
        else:
            incident = await deps.service.declare_incident(
                parsed.severity,
                parsed.title,
                command.user_id,
                command.channel_id,
                request_id=request_id,
                response_url=command.response_url,
                create_channel=deps.create_channels,
            )
            await ack(text=incident_blocks.declared(incident), response_type="ephemeral")
            deps.delivery.wake()
    except StoreUnavailable as exc:
        log.warning("/incident %s: store unavailable: %s", parsed.kind, exc)
        await ack(text=store_problem(exc), response_type="ephemeral")
    except StoreLost as exc:
        log.error("/incident %s refused: %s", parsed.kind, exc)
        await ack(text=f":warning: Nothing was declared: {exc}.", response_type="ephemeral")
    except ChannelTaken as exc:
        await ack(
            text=f"*{exc.incident_id}* already runs in this channel, so nothing was declared. "
            "Declare the new incident from another channel, or resolve that one first.",
            response_type="ephemeral",
        )
    except IncidentClosed:
        closed = "This incident is already resolved, so nothing was changed."
        await ack(text=closed, response_type="ephemeral")


async def _in_incident(
    deps: Deps,
    parsed: IncidentCommand,
    incident: Incident | None,
    command: SlashCommand,
    request_id: str,
    ack: AsyncAck,
    respond: AsyncRespond,
) -> None:
    if incident is None:
        await ack(text=incident_blocks.no_incident_here(parsed.kind), response_type="ephemeral")
        return
    spec = deps.service.severity_spec(incident.severity)
    if parsed.kind == "status":
        await ack(
            text=update_blocks.status_reply(incident, spec, deps.service.clock()), response_type="ephemeral"
        )
        return
    if incident.is_resolved:
        await ack(text=already_resolved(incident), response_type="ephemeral")
        return
    if parsed.kind == "update":
        # A re-sent command opens nothing more: its trigger_id was spent on the modal already
        # open, and views.open failing on it again must not tell the user to try again.
        first = await deps.service.first_of_repeats(f"modal:{request_id}", seconds=RESENT_WITHIN)
        await ack()
        if first and not await open_update_modal(deps, incident, command.trigger_id):
            await respond(text=MODAL_FAILED, response_type="ephemeral")
        return
    resolved, _ = await deps.service.resolve(incident.id, command.user_id, request_id)
    await ack(text=f"Resolving *{resolved.id}*.", response_type="ephemeral")
    deps.delivery.wake()


async def _change_severity(
    deps: Deps, parsed: Declare, incident: Incident, command: SlashCommand, request_id: str, ack: AsyncAck
) -> None:
    if incident.is_resolved or parsed.title:
        # A title means a new incident: never fold it into the one this channel runs.
        await ack(text=incident_blocks.already_running(incident), response_type="ephemeral")
        return
    try:
        await deps.service.change_severity(incident.id, parsed.severity, command.user_id, request_id)
    except NothingToChange:
        label = deps.service.severity_spec(parsed.severity).label
        await ack(text=f"*{incident.id}* is already {label}; nothing was changed.", response_type="ephemeral")
        return
    await ack()
    deps.delivery.wake()


def register(app: AsyncApp) -> None:
    app.command("/incident")(handle_incident_command)
