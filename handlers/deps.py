"""What the listeners need, put into Bolt's `context` by one middleware."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.change_log import ChangeLog
from bot.delivery import Delivery
from bot.logs import REQUEST
from bot.refresher import ChecklistRefresher
from bot.service import IncidentService
from bot.slack_gateway import SlackGateway
from bot.triage import AlertTriage

CONTEXT_KEY = "incident_bot"


@dataclass(frozen=True)
class Deps:
    service: IncidentService
    slack: SlackGateway
    refresher: ChecklistRefresher
    delivery: Delivery
    create_channels: bool
    # The change events, when the bot takes them (INCIDENT_ALERT_TOKEN set); else None.
    changes: ChangeLog | None = None
    # Alerts from Alertmanager and their triage messages, likewise.
    triage: AlertTriage | None = None
    # Whether a Prometheus is configured (PROMETHEUS_URL), so `/incident metrics` can chart.
    charts: bool = False


def install(app: AsyncApp, deps: Deps) -> None:
    async def inject(
        context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[Any]]
    ) -> Any:
        context[CONTEXT_KEY] = deps
        # Every line logged while serving this request names it (Bolt runs the listener in a
        # task that copies this).
        REQUEST.set(request_id_of(body))
        return await next()

    app.use(inject)


def request_id_of(body: dict[str, Any]) -> str:
    """Slack's trigger id where the request has one (commands, buttons, shortcuts, modals), so a
    line can be matched with Slack's side; else a fresh one."""
    trigger = body.get("trigger_id")
    return trigger if isinstance(trigger, str) and trigger else f"req-{secrets.token_hex(6)}"


def deps_of(context: AsyncBoltContext) -> Deps:
    deps: Deps = context[CONTEXT_KEY]
    return deps
