"""Short answers to the user who acted (ephemeral), shared by the listeners."""

from __future__ import annotations

from bot.blocks import format as fmt
from bot.errors import StoreUnavailable
from bot.models import Incident
from bot.service import IncidentService
from handlers.deps import Deps

STORE_DOWN = (
    ":warning: I can't reach the incident store (Redis) right now, so nothing was changed. "
    "Please try again in a moment."
)
STORE_UNSURE = (
    ":warning: The incident store (Redis) stopped answering while I was saving this, so I can't "
    "tell whether it was saved. If it was, I'll finish the work by myself; check with "
    "`/incident status` in a moment before trying again."
)
STALE = (
    "That button belongs to an incident I no longer have (or to an older incident with the same "
    "number), so nothing was changed."
)


STORE_PARTLY = (
    ":warning: Saved, but the incident store (Redis) stopped answering right after; I'll finish "
    "the rest by myself once it is back."
)


def store_problem(exc: StoreUnavailable) -> str:
    """Tell the truth: "nothing was changed" only when nothing was stored."""
    if exc.written is True:
        return STORE_PARTLY
    return STORE_DOWN if exc.written is False else STORE_UNSURE


def already_resolved(incident: Incident) -> str:
    return f"*{incident.id}* is already resolved, so nothing was changed."


async def unknown_incident(service: IncidentService, usual: str) -> str:
    """What to say about a click on an incident the store does not have: `usual`, unless the
    store lost its data, which the user and whoever runs the bot must hear about."""
    lost = await service.store_lost()
    return usual if lost is None else f":warning: Nothing was changed: {lost}."


async def not_a_member(deps: Deps, incident: Incident, user: str) -> str | None:
    """Why `user` may not act on `incident` (they are not in its channel), or None if they may.
    An incident whose channel is not open yet takes anyone."""
    if incident.channel_id is None:
        return None
    return await not_in_channel(deps, incident.channel_id, incident.id, user)


async def not_in_channel(deps: Deps, channel: str, incident_id: str, user: str) -> str | None:
    """Why `user` may not act on the incident of `channel`, or None if they are a member. A
    member list Slack would not give refuses, saying so, rather than let anyone act."""
    result = await deps.slack.is_member(channel, user)
    if not result.ok:
        then = (
            "Please try again in a moment."
            if result.retryable
            else "Invite me there (`/invite @incident-bot`) so I can see who is in it."
        )
        return (
            f":warning: I couldn't check that you are in {fmt.channel(channel)} (Slack said "
            f"`{result.error}`), so nothing was changed. {then}"
        )
    if result.data.get("member"):
        return None
    return (
        f"Only members of {fmt.channel(channel)} can act on *{incident_id}*. Join the channel "
        "first; nothing was changed."
    )

