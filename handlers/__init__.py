"""Slack listeners: parse the payload, ack fast, call the service, send what the renderer returns."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import alerts, checklists, commands, investigation, updates


def register(app: AsyncApp) -> None:
    commands.register(app)
    checklists.register(app)
    updates.register(app)
    investigation.register(app)
    alerts.register(app)
