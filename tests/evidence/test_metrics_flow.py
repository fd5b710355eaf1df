"""Change events and metrics charts end to end, against a real Prometheus scraping the exporter:
change events posted with the bearer token, an incident declared with its Recent changes,
`/incident metrics` uploading a PNG drawn from the rise (checked on the data it was drawn from,
the comment and what the incident records), and Prometheus killed mid-incident."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.charts import PNG_SIGNATURE, ChartData, MarkerKind
from bot.demo.harness import Running, eventually, running_bot
from bot.intake import ALERTS_PATH, CHANGES_PATH
from bot.models import EventKind
from bot.playbook import load_playbook
from bot.prometheus import PrometheusError
from bot.text import escape_mrkdwn
from tests.e2e.conftest import connect_like
from tests.evidence_servers import SERVICE, AlertmanagerServer, Exporter, PrometheusServer, alert, utcnow

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"
TOKEN = "ci-token"
SERIES = f'http_requests_total{{service="{SERVICE}"}}'
# Over 3 s, so a point is entirely after the rise 3 s after it (Prometheus scrapes every second).
ERROR_RATE = (
    f'sum(rate(http_requests_total{{service="{SERVICE}",code=~"5.."}}[3s])) '
    f'/ sum(rate(http_requests_total{{service="{SERVICE}"}}[3s]))'
)
REQUESTS = f'sum by (code) (rate(http_requests_total{{service="{SERVICE}"}}[3s]))'
BASELINE, RISEN = 0.01, 0.5


@contextlib.asynccontextmanager
async def bot_charting(
    redis: aioredis.Redis, tmp_path: Path, prometheus_url: str, token: str = TOKEN
) -> AsyncIterator[Running]:
    path = tmp_path / "playbook.yml"
    path.write_text(
        f"services:\n  {SERVICE}:\n    queries:\n"
        f"      Error rate: '{ERROR_RATE}'\n      Requests per second: '{REQUESTS}'\n"
    )
    async with running_bot(
        redis=connect_like(redis),
        playbook=load_playbook(path),
        settings={"INCIDENT_ALERT_TOKEN": token, "PROMETHEUS_URL": prometheus_url},
    ) as running:
        yield running


async def post_change(
    running: Running, body: bytes | dict[str, Any], token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    url = running.url.removesuffix("/slack/events") + CHANGES_PATH
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = body if isinstance(body, bytes) else None
    json_body = body if isinstance(body, dict) else None
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, json=json_body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def command(running: Running, user: str, channel: str, text: str) -> dict[str, Any]:
    reply = await running.user.slash_command(user, channel, text)
    assert reply.status == 200, reply
    await running.settle(timeout=20)
    return reply.body if isinstance(reply.body, dict) else {}


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_change_events_mark_the_chart_that_shows_the_rise(
    prometheus: PrometheusServer,
    exporter: Exporter,
    real_redis: aioredis.Redis,
    tmp_path: Path,
    drawn: list[ChartData],
) -> None:
    async with bot_charting(real_redis, tmp_path, prometheus.url) as running:
        change = {"service": SERVICE, "kind": "deploy", "version": "v2.3.1"}
        assert (await post_change(running, change, token="wrong"))[0] == 401
        assert (await post_change(running, change, token=None))[0] == 401
        assert await post_change(running, b"deploy v2.3.1") == (
            400,
            {"error": 'the body is not JSON: send {"service": "…", "kind": "deploy", …}'},
        )
        assert await post_change(running, {"service": SERVICE}) == (400, {"error": "missing kind"})

        await prometheus.wait_for_samples(SERIES, 4)
        configured = utcnow()
        assert (await post_change(running, {"service": SERVICE, "kind": "config", "at": iso(configured)}))[
            0
        ] == 200
        switched = exporter.set_error_rate(RISEN)
        try:
            status, _ = await post_change(running, {**change, "by": "ci", "at": iso(switched)})
            assert status == 200
            await command(running, ALICE, GENERAL, "sev2 Checkout requests failing")
            incident = await running.bot.service.get_incident("INC-1")
            channel = incident.channel_id
            assert channel is not None
            recent = [m.text for m in running.slack.messages(channel) if m.text.startswith("Recent changes")]
            assert len(recent) == 1 and recent[0].startswith("Recent changes: 2 changes in the 2h before")
            await prometheus.wait_for_samples(SERIES, 6, since=switched)

            said = await command(running, BOB, channel, "metrics checkout 5m")
        finally:
            exporter.set_error_rate(BASELINE)

        assert said["text"] == "Drawing the chart of *checkout* (the last 5m)…"
        (upload,) = running.slack.files(channel)
        assert upload.name == "INC-1-checkout-metrics.png"
        assert upload.content is not None and upload.content.startswith(PNG_SIGNATURE)
        # The data it was drawn from: the baseline before the rise, the risen rate after it.
        (data,) = drawn
        (errors,) = data.panel("Error rate").series
        before = [p.value for p in errors.points if p.at <= switched - timedelta(seconds=0.5)]
        after = [p.value for p in errors.points if p.at >= switched + timedelta(seconds=4)]
        assert before and after, errors.points
        assert all(v == pytest.approx(BASELINE, abs=0.002) for v in before), before
        assert all(v == pytest.approx(RISEN, abs=0.02) for v in after), after
        codes = {s.labels["code"]: s for s in data.panel("Requests per second").series}
        assert sorted(codes) == ["200", "500"]
        assert codes["500"].points[-1].value == pytest.approx(100 * RISEN, rel=0.1)
        # Marked at the change events and the declaration, in time order.
        assert [(m.kind, m.label, m.at) for m in data.markers] == [
            (MarkerKind.CHANGE, "config", configured),
            (MarkerKind.CHANGE, "v2.3.1", switched),
            (MarkerKind.DECLARED, "declared INC-1", incident.declared_at),
        ]
        # The comment and the incident's record give the latest values it shows.
        (shared,) = [m for m in running.slack.messages(channel) if m.files]
        assert "• Error rate: 0.5" in shared.text.split("\n")
        (chart,) = (await running.bot.service.get_incident("INC-1")).charts
        assert float(chart.latest["Error rate"]) == pytest.approx(RISEN, abs=0.02)
        assert chart.file == "INC-1-checkout-metrics.png" and chart.window == timedelta(minutes=5)


async def test_prometheus_stopped_mid_incident_gets_a_clear_message_in_the_channel(
    own_prometheus: PrometheusServer, real_redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with bot_charting(real_redis, tmp_path, own_prometheus.url) as running:
        await command(running, ALICE, GENERAL, "sev2 Checkout requests failing")
        channel = (await running.bot.service.get_incident("INC-1")).channel_id
        assert channel is not None
        await command(running, BOB, channel, "metrics checkout 5m")
        assert len(running.slack.files(channel)) == 1  # drawn while Prometheus runs

        own_prometheus.kill()
        await command(running, BOB, channel, "metrics checkout 5m")
        await running.settle(timeout=10)

        assert len(running.slack.files(channel)) == 1
        (said,) = [m.text for m in running.slack.messages(channel) if "could not be drawn" in m.text]
        # The query, shortened to its first 120 characters, and what went wrong.
        failed = PrometheusError(ERROR_RATE, f"cannot reach {own_prometheus.url} (Connection refused)")
        assert str(failed).startswith(f"Prometheus query `{ERROR_RATE[:119]}…` failed: cannot reach ")
        assert said == (
            ":warning: The *checkout* metrics chart (the last 5m) could not be drawn: panel *Error rate*: "
            + escape_mrkdwn(str(failed))
        )
        assert await running.bot.store.outbox("INC-1") == []  # told once, not retried
        events = await running.bot.service.store.timeline("INC-1")
        assert [e.text.split(":")[0] for e in events if e.kind is EventKind.CHART] == [
            "asked for the checkout metrics chart (the last 5m)",
            "uploaded the checkout metrics chart (5m)",
            "asked for the checkout metrics chart (the last 5m)",
            "the checkout metrics chart failed",
        ]


async def test_without_a_token_the_change_endpoint_is_not_there(
    real_redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with bot_charting(real_redis, tmp_path, "", token="") as running:
        assert await post_change(running, {"service": SERVICE, "kind": "deploy"}) == (
            404,
            {"error": "not found"},
        )


@pytest.mark.redis
async def test_an_alert_declared_from_alertmanager_brings_recent_changes_and_its_chart(
    real_redis: aioredis.Redis, tmp_path: Path, prometheus: PrometheusServer, drawn: list[ChartData]
) -> None:
    """The whole path: a deploy reported, Alertmanager notifying the bot, Declare clicked, and the
    incident's channel getting Recent changes and the service's chart from Prometheus, unasked."""
    async with bot_charting(real_redis, tmp_path, prometheus.url) as running:
        status, _ = await post_change(running, {"service": SERVICE, "kind": "deploy", "version": "v9.9.9"})
        assert status == 200
        alerts_url = running.url.removesuffix("/slack/events") + ALERTS_PATH
        try:
            server = AlertmanagerServer(alerts_url, TOKEN, repeat_interval="2s")
        except FileNotFoundError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI needs it: {exc}")
            pytest.skip(str(exc))
        with server:
            firing = alert("CheckoutErrors", labels={"service": SERVICE, "severity": "critical"})
            await server.post_alerts([firing])

            def triaged() -> list[str]:
                return [m.ts for m in running.slack.messages(MANAGERS) if "alert_declare" in str(m.blocks)]

            await eventually(lambda: bool(triaged()), timeout=20)
            [ts] = triaged()
            reply = await running.user.click_button(ALICE, MANAGERS, ts, "alert_declare")
            assert reply.status == 200
            await running.settle(timeout=20)
            incident = await running.bot.service.get_incident("INC-1")
            assert incident.alert is not None and incident.channel_id is not None
            channel = incident.channel_id
            await eventually(lambda: bool(running.slack.files(channel)), timeout=20)
            await running.settle(timeout=20)
        said = " ".join(m.text + str(m.blocks) for m in running.slack.messages(channel))
        assert "Recent changes" in said and "v9.9.9" in said
        [upload] = running.slack.files(channel)
        assert upload.name == f"INC-1-{SERVICE}-metrics.png"
        assert upload.content is not None and upload.content.startswith(PNG_SIGNATURE)
        [data] = drawn
        assert [p.title for p in data.panels] == ["Error rate", "Requests per second"]
        assert any(m.kind is MarkerKind.DECLARED for m in data.markers)
        assert any(m.label == "v9.9.9" for m in data.markers)
        recorded = (await running.bot.service.get_incident("INC-1")).charts
        assert [c.service for c in recorded] == [SERVICE] and "Error rate" in recorded[0].latest
        assert running.slack.rejected_calls() == []
