"""The `/incident` slash command."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import incident as incident_blocks
from bot.commands import Help, IncidentCommand, parse_command
from bot.store import StoreUnavailable
from handlers.declare import open_incident
from handlers.deps import deps_of
from handlers.payloads import SlashCommand

log = logging.getLogger(__name__)

STORE_DOWN = (
    ":warning: I can't reach the incident store (Redis) right now, so nothing was changed. "
    "Please try again in a moment."
)


async def handle_incident_command(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    command = SlashCommand.model_validate(body)
    parsed = parse_command(command.text)
    if isinstance(parsed, Help):
        await ack(text=incident_blocks.usage(parsed.problem))
        return
    try:
        current = await deps.service.incident_in_channel(command.channel_id)
        if isinstance(parsed, IncidentCommand):
            await ack(text=incident_blocks.no_incident_here(parsed.kind))
            return
        if current is not None:
            await ack(text=incident_blocks.already_running(current))
            return
        incident = await deps.service.declare_incident(
            parsed.severity, parsed.title, command.user_id, command.channel_id
        )
    except StoreUnavailable as exc:
        log.warning("/incident %s: store unavailable: %s", parsed.kind, exc)
        await ack(text=STORE_DOWN)
        return
    await ack(text=incident_blocks.declared(incident))
    try:
        await open_incident(deps, incident, respond)
    except StoreUnavailable:
        await respond(text=STORE_DOWN, response_type="ephemeral")


def register(app: AsyncApp) -> None:
    app.command("/incident")(handle_incident_command)
