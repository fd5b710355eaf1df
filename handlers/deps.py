"""What the listeners need, put into Bolt's `context` by one middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.delivery import Delivery
from bot.refresher import ChecklistRefresher
from bot.service import IncidentService
from bot.slack_gateway import SlackGateway

CONTEXT_KEY = "incident_bot"


@dataclass(frozen=True)
class Deps:
    service: IncidentService
    slack: SlackGateway
    refresher: ChecklistRefresher
    delivery: Delivery
    create_channels: bool


def install(app: AsyncApp, deps: Deps) -> None:
    async def inject(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
        context[CONTEXT_KEY] = deps
        return await next()

    app.use(inject)


def deps_of(context: AsyncBoltContext) -> Deps:
    deps: Deps = context[CONTEXT_KEY]
    return deps
