"""Short answers to the user who acted (ephemeral), shared by the listeners."""

from __future__ import annotations

from bot.models import Incident

STORE_DOWN = (
    ":warning: I can't reach the incident store (Redis) right now, so nothing was changed. "
    "Please try again in a moment."
)


def already_resolved(incident: Incident) -> str:
    return f"*{incident.id}* is already resolved, so nothing was changed."
