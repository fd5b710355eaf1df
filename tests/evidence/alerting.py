"""The bot taking alerts, against the Slack stand-in, for the triage loop and alert flow tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot import keys
from bot.alert_groups import GroupRecord
from bot.demo.harness import Running, running_bot
from bot.demo.standin import SlackStandIn
from bot.demo.standin.workspace import DEFAULT_CHANNELS, Message, SeedChannel
from bot.intake import ALERTS_PATH
from bot.slack_gateway import EFFECT_EVENT
from bot.triage_delivery import TriageDelivery

TOKEN = "test-alert-token"
TRIAGE = "C0TRIAGE"


def standin() -> SlackStandIn:
    """The stand-in with a triage channel, `#alerts`."""
    return SlackStandIn(channels=[*DEFAULT_CHANNELS, SeedChannel(id=TRIAGE, name="alerts")])


@contextlib.asynccontextmanager
async def alerting_bot(
    slack: SlackStandIn, *, redis: aioredis.Redis | None = None, **settings: str
) -> AsyncIterator[Running]:
    """The bot taking alerts with TOKEN and posting them to TRIAGE (its embedded store unless
    `redis` is given); `settings` override by variable name."""
    configured = {"INCIDENT_ALERT_TOKEN": TOKEN, "INCIDENT_TRIAGE_CHANNEL": TRIAGE, **settings}
    async with running_bot(slack=slack, redis=redis, settings=configured) as running:
        yield running


def alerts_url(running: Running) -> str:
    return running.url.removesuffix("/slack/events") + ALERTS_PATH


async def notify(running: Running, body: bytes, token: str | None = TOKEN) -> tuple[int, Any]:
    """POST a webhook body to the bot as Alertmanager does; (status, JSON answer)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(alerts_url(running), data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def triage_messages(slack: SlackStandIn, channel: str = TRIAGE) -> list[Message]:
    """The triage messages in `channel`: those whose metadata names an alert group's episode."""
    return [
        m
        for m in slack.messages(channel)
        if (m.metadata or {}).get("event_type") == EFFECT_EVENT
        and str((m.metadata or {}).get("event_payload", {}).get("effect", "")).startswith("alert/")
    ]


async def records(redis: aioredis.Redis) -> list[GroupRecord]:
    found = []
    async for key in redis.scan_iter(match=keys.alert_group("*")):
        if str(key).endswith("}"):
            raw = await redis.get(key)
            if raw is not None:
                found.append(GroupRecord.model_validate_json(raw))
    return found


async def settled(running: Running, timeout: float = 10.0) -> list[GroupRecord]:
    """Wait until every alert group's Slack side is done (its message shows its newest revision,
    its incident got its notes, nothing backs off) and the incidents' outboxes are delivered;
    returns the records."""
    redis = running.bot.store.redis
    deadline = time.monotonic() + timeout
    while True:
        found = await records(redis)
        if not any(r.needs_work for r in found):
            await running.settle(max(0.1, deadline - time.monotonic()))
            found = await records(redis)
            if not any(r.needs_work for r in found):
                return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"alert groups not settled: {[r for r in found if r.needs_work]}")
        await asyncio.sleep(0.02)


def triage_loop(running: Running) -> TriageDelivery:
    loop = running.bot.triage
    assert loop is not None, "the bot takes no alerts: INCIDENT_ALERT_TOKEN is unset"
    return loop
