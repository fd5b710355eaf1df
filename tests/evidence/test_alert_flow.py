"""End to end with a real Alertmanager: its webhook points at the bot (over HTTP, against the Slack
stand-in, on a real Redis) with the bearer token, and alerts are fired through its API.

Alertmanager here groups by alert name and service, notifies 1 s after the first alert, and
re-sends a firing group every 2 s: each test waits for at least two re-sends, at most 20 s."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.alert_groups import TriageState
from bot.demo.harness import Running, eventually
from bot.demo.standin import SlackStandIn
from bot.intake import ALERTS_PATH, CHANGES_PATH, Answer, Receiver
from bot.models import EventKind, Status
from tests.e2e.conftest import connect_like
from tests.evidence.alert_payloads import encoded
from tests.evidence.alerting import (
    TOKEN,
    TRIAGE,
    alerting_bot,
    alerts_url,
    notify,
    settled,
    standin,
    triage_messages,
)
from tests.evidence_servers import SERVICE, AlertmanagerServer, alert, utcnow

ALICE, BOB = "U0ALICE", "U0BOB"
SUMMARY = "Checkout 5xx above 5%"
SOURCE = "http://prometheus.example:9090/graph?g0.expr=checkout_errors"
FIRING = alert(
    "CheckoutErrors",
    labels={"service": SERVICE, "severity": "critical"},
    summary=SUMMARY,
    generator_url=SOURCE,
)
RESENDS = 2  # re-sends of the same group each test waits for, besides the first notification


class Counting:
    """The bot's receiver, counting the notifications that reach it."""

    def __init__(self, inner: Receiver) -> None:
        self.inner = inner
        self.max_body_bytes = inner.max_body_bytes
        self.answers: list[Answer] = []

    async def receive(self, body: bytes) -> Answer:
        answer = await self.inner.receive(body)
        self.answers.append(answer)
        return answer

    async def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        await eventually(lambda: len(self.answers) >= count, timeout=max(0.0, deadline - time.monotonic()))


@contextlib.asynccontextmanager
async def alerting(
    redis: aioredis.Redis,
) -> AsyncIterator[tuple[SlackStandIn, Running, Counting, AlertmanagerServer]]:
    """The bot taking alerts, and an Alertmanager of its own sending them to it."""
    async with standin() as slack, alerting_bot(slack, redis=connect_like(redis)) as running:
        counting = Counting(running.bot.receivers[ALERTS_PATH])
        running.bot.receivers[ALERTS_PATH] = counting
        try:
            server = AlertmanagerServer(alerts_url(running), TOKEN, repeat_interval="2s")
        except FileNotFoundError as exc:
            if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide a broken step
                pytest.fail(f"CI needs it: {exc}")
            pytest.skip(str(exc))
        with server:
            yield slack, running, counting, server


def channel_text(slack: SlackStandIn, channel: str) -> str:
    return json.dumps([[m.text, m.blocks] for m in slack.messages(channel)])


async def record_deploy(running: Running) -> None:
    url = running.url.removesuffix("/slack/events") + CHANGES_PATH
    change = {"service": SERVICE, "kind": "deploy", "version": "v2.3.1", "by": "ci"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=change, headers={"Authorization": f"Bearer {TOKEN}"}) as response,
    ):
        assert response.status == 200, await response.text()


@pytest.mark.redis
async def test_an_alert_is_triaged_once_declared_and_followed_to_its_incident(
    real_redis: aioredis.Redis,
) -> None:
    async with alerting(real_redis) as (slack, running, counting, alertmanager):
        await record_deploy(running)
        await alertmanager.post_alerts([FIRING])

        # However many times Alertmanager sends the group, it reaches the triage channel once.
        await counting.wait_for(1 + RESENDS)
        (record,) = await settled(running)
        assert {a.status for a in counting.answers} == {200}
        (message,) = triage_messages(slack)
        shown = json.dumps(slack.message(TRIAGE, message.ts).blocks)
        assert SUMMARY in shown and "Declare SEV2" in shown and "`severity=critical`" in shown
        assert f"<{SOURCE}|Source>" in shown
        assert record.episode == 1 and record.revision >= 1 + RESENDS  # each one updated it

        reply = await running.user.click_button(ALICE, TRIAGE, message.ts, "alert_declare")
        assert reply.status == 200
        await settled(running)

        incident = await running.bot.service.get_incident("INC-1")
        assert incident.declared_by == ALICE and incident.origin_channel == TRIAGE
        assert incident.alert is not None and incident.alert.summary == SUMMARY
        assert incident.channel_id is not None
        channel = incident.channel_id
        header = json.dumps(slack.messages(channel)[0].blocks)
        assert "Declared from the alert" in header and f"<{SOURCE}|{SUMMARY}>" in header
        said = channel_text(slack, channel)
        assert "Recent changes" in said and "v2.3.1" in said
        timeline = await running.bot.store.timeline("INC-1")
        assert f'(from the alert "{SUMMARY}")' in timeline[0].text
        started = incident.alert.started_at
        assert started is not None
        assert [e.text for e in timeline if e.kind is EventKind.ALERT] == [
            f"Alertmanager: 1 alert firing since {started:%H:%M} UTC"
        ]
        triaged = json.dumps(slack.message(TRIAGE, message.ts).blocks)
        assert f"Declared as *INC-1* by <@{ALICE}>: <#{channel}>" in triaged
        assert "alert_declare" not in triaged

        # Later notifications go to the incident, not to triage; repeats add nothing.
        seen = len(counting.answers)
        await counting.wait_for(seen + RESENDS)
        await settled(running)
        assert len(triage_messages(slack)) == 1
        timeline = await running.bot.store.timeline("INC-1")
        assert len([e for e in timeline if e.kind is EventKind.ALERT]) == 1

        # Resolved: a note in the incident's channel; the incident stays open.
        resolved_at = utcnow()
        await alertmanager.post_alerts([{**FIRING, "endsAt": resolved_at.isoformat().replace("+00:00", "Z")}])
        await eventually(
            lambda: "stays open until you resolve it" in channel_text(slack, channel), timeout=15
        )
        note = next(m for m in slack.messages(channel) if "stays open" in m.text)
        assert SUMMARY in note.text and f"{resolved_at:%Y-%m-%d %H:%M} UTC" in note.text
        assert (await running.bot.service.get_incident("INC-1")).status is Status.INVESTIGATING
        assert len(triage_messages(slack)) == 1
        assert slack.rejected_calls() == []


@pytest.mark.redis
async def test_dismiss_stops_posting_the_group(real_redis: aioredis.Redis) -> None:
    async with alerting(real_redis) as (slack, running, counting, alertmanager):
        await alertmanager.post_alerts([FIRING])
        await counting.wait_for(1)
        await settled(running)
        (message,) = triage_messages(slack)

        reply = await running.user.click_button(BOB, TRIAGE, message.ts, "alert_dismiss")
        assert reply.status == 200
        await settled(running)
        seen = len(counting.answers)
        await counting.wait_for(seen + RESENDS)
        (record,) = await settled(running)

        assert record.state is TriageState.DISMISSED and record.dismissed_by == BOB
        assert len(triage_messages(slack)) == 1
        shown = json.dumps(slack.message(TRIAGE, message.ts).blocks)
        assert f"Dismissed by <@{BOB}>" in shown and "alert_declare" not in shown
        assert await running.bot.service.store.open_incident_ids() == []


async def test_the_webhook_wants_the_token_and_a_v4_payload() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        assert (await notify(running, encoded(), token="wrong"))[0] == 401
        assert (await notify(running, encoded(), token=None))[0] == 401
        status, answer = await notify(running, b"not json")
        assert (status, answer) == (400, {"error": "the body is not JSON"})
        assert (await notify(running, encoded()))[0] == 200
    async with standin() as slack, alerting_bot(slack, INCIDENT_ALERT_TOKEN="") as running:
        assert running.bot.triage is None
        assert (await notify(running, encoded()))[0] == 404
