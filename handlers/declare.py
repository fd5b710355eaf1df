"""After a declaration is stored and acked: open the channel, post header and checklists, announce."""

from __future__ import annotations

import logging
from typing import Protocol

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import Rendered
from bot.blocks import incident as incident_blocks
from bot.models import Incident
from bot.naming import channel_name
from handlers.announce import post_checklists, to_stakeholders
from handlers.deps import Deps

log = logging.getLogger(__name__)

# What to tell people when Slack will not create a channel for us.
_REFUSALS = {
    "missing_scope": "the app lacks the scope to create channels",
    "restricted_action": "this workspace restricts who can create channels",
}


async def _open_channel(deps: Deps, incident: Incident) -> tuple[Incident, str | None]:
    """Create the incident's channel, or fall back to the channel it was declared in (and say why)."""
    if deps.create_channels:
        name = channel_name(deps.channel_prefix, incident.number, incident.title)
        created = await deps.slack.create_channel(name)
        if created.ok:
            channel = created.data["channel"]
            opened = await deps.service.attach_channel(
                incident.id, channel["id"], channel["name"], True, f"Opened #{channel['name']}"
            )
            return opened, None
        reason = _REFUSALS.get(created.error or "", f"Slack refused ({created.error})")
        note = f"Running in the channel it was declared in: {reason} to create a channel."
    else:
        note = "Running in the channel it was declared in: channel creation is switched off."
    fallback = await deps.service.attach_channel(incident.id, incident.origin_channel, None, False, note)
    return fallback, note


class Declarer(Protocol):
    """How to reach the people around a declaration: through the slash command's response_url
    right after it, or through the Web API when another process finishes an interrupted one."""

    async def announce_in_origin(self, notice: Rendered) -> None: ...

    async def tell_declarer(self, text: str) -> None: ...


class RespondDeclarer:
    def __init__(self, respond: AsyncRespond) -> None:
        self.respond = respond

    async def announce_in_origin(self, notice: Rendered) -> None:
        await self.respond(text=notice.text, blocks=notice.block_dicts(), response_type="in_channel")

    async def tell_declarer(self, text: str) -> None:
        await self.respond(text=text, response_type="ephemeral")


class ApiDeclarer:
    def __init__(self, deps: Deps, incident: Incident) -> None:
        self.deps = deps
        self.incident = incident

    async def announce_in_origin(self, notice: Rendered) -> None:
        await self.deps.slack.post_message(self.incident.origin_channel, notice)

    async def tell_declarer(self, text: str) -> None:
        await self.deps.slack.post_ephemeral(self.incident.origin_channel, self.incident.declared_by, text)


async def open_incident(deps: Deps, incident: Incident, declarer: Declarer) -> None:
    """Everything after a declaration is stored; safe to run again for an interrupted one."""
    spec = deps.service.severity_spec(incident.severity)
    fallback_note = None
    if incident.channel_id is None:
        incident, fallback_note = await _open_channel(deps, incident)
    assert incident.channel_id is not None
    channel = incident.channel_id
    if incident.dedicated_channel:
        await deps.slack.invite(channel, [incident.declared_by])

    header_ts = await deps.slack.post_message(channel, incident_blocks.header(incident, spec))
    if header_ts is None:
        await deps.service.setup_finished(incident.id)
        await declarer.tell_declarer(
            f"{incident.id} is recorded, but I can't post in <#{channel}>. "
            "Invite me to the channel (`/invite @incident-bot`) and run `/incident status`."
        )
        return
    incident = await deps.service.record_header(incident.id, header_ts)
    await deps.service.setup_finished(incident.id)
    await post_checklists(deps, incident, deps.service.checklists_for(incident.severity))

    notice = incident_blocks.announcement(incident, spec, fallback_note)
    await declarer.announce_in_origin(notice)
    await to_stakeholders(deps, notice)
