"""The `/incident` slash command."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import incident as incident_blocks
from bot.blocks import updates as update_blocks
from bot.commands import Declare, Help, IncidentCommand, parse_command
from bot.models import Incident
from bot.service import IncidentClosed
from bot.store import StoreUnavailable
from handlers.announce import announce_resolution, announce_severity_change
from handlers.declare import RespondDeclarer, open_incident
from handlers.deps import Deps, deps_of
from handlers.messages import STORE_DOWN, already_resolved
from handlers.payloads import SlashCommand
from handlers.updates import open_update_modal

log = logging.getLogger(__name__)

SETUP_INTERRUPTED = (
    ":warning: The incident is recorded, but the incident store (Redis) became unreachable while "
    "its channel was being set up. I'll finish setting it up as soon as the store is back."
)


async def handle_incident_command(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    command = SlashCommand.model_validate(body)
    parsed = parse_command(command.text)
    if isinstance(parsed, Help):
        await ack(text=incident_blocks.usage(parsed.problem), response_type="ephemeral")
        return
    try:
        current = await deps.service.incident_in_channel(command.channel_id)
        if isinstance(parsed, IncidentCommand):
            await _in_incident(deps, parsed, current, command, ack)
        elif current is not None:
            await _change_severity(deps, parsed, current, command, ack)
        else:
            incident = await deps.service.declare_incident(
                parsed.severity, parsed.title, command.user_id, command.channel_id
            )
            await ack(text=incident_blocks.declared(incident), response_type="ephemeral")
            await open_incident(deps, incident, RespondDeclarer(respond))
    except StoreUnavailable as exc:
        log.warning("/incident %s: store unavailable: %s", parsed.kind, exc)
        if ack.response is None:
            await ack(text=STORE_DOWN, response_type="ephemeral")
        else:
            # Declared and acked, then Redis went away mid-setup: the setup entry in the
            # schedule makes a bot process finish the job once Redis is back.
            await respond(text=SETUP_INTERRUPTED, response_type="ephemeral")
    except IncidentClosed:
        await ack(
            text="This incident is already resolved, so nothing was changed.", response_type="ephemeral"
        )


async def _in_incident(
    deps: Deps,
    parsed: IncidentCommand,
    incident: Incident | None,
    command: SlashCommand,
    ack: AsyncAck,
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
        await ack()
        await open_update_modal(deps, incident, command.trigger_id)
        return
    resolved = await deps.service.resolve(incident.id, command.user_id)
    await ack(text=f"Resolving *{resolved.id}*.", response_type="ephemeral")
    await announce_resolution(deps, resolved)


async def _change_severity(
    deps: Deps, parsed: Declare, incident: Incident, command: SlashCommand, ack: AsyncAck
) -> None:
    if incident.is_resolved:
        await ack(text=incident_blocks.already_running(incident), response_type="ephemeral")
        return
    if parsed.severity is incident.severity:
        label = deps.service.severity_spec(incident.severity).label
        await ack(text=f"*{incident.id}* is already {label}; nothing was changed.", response_type="ephemeral")
        return
    change = await deps.service.change_severity(incident.id, parsed.severity, command.user_id)
    await ack()
    await announce_severity_change(deps, change, command.user_id)


def register(app: AsyncApp) -> None:
    app.command("/incident")(handle_incident_command)
