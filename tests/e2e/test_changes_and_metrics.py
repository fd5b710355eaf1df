"""Change events and metrics charts through the bot, against the Slack stand-in and a fake
Prometheus (a small aiohttp server answering each query with what the test set): `POST
/events/change`, Recent changes at a declaration typed by hand, `/incident changes`, and
`/incident metrics` down to the uploaded PNG, its comment and what the incident records."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bot.blocks.changes import CHANGES_MAX_LINES
from bot.change_log import ChangeLog
from bot.change_receiver import ChangeReceiver
from bot.changes import ChangeEvent, ChangeKind
from bot.charts import PNG_SIGNATURE, ChartData, MarkerKind
from bot.demo.harness import Running, running_bot
from bot.demo.standin import SlackStandIn
from bot.effects import UploadChart
from bot.errors import StoreUnavailable
from bot.intake import CHANGES_PATH
from bot.models import ChartNote, EventKind, Severity, utcnow
from bot.playbook import load_playbook
from bot.store import IncidentStore, connect
from tests.e2e.conftest import connect_like

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL = "C0GENERAL"
TOKEN = "change-token"
ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
REQUESTS = "sum by (code) (rate(http_requests_total[1m]))"
SERVICES = f"""
services:
  checkout:
    queries:
      Error rate: '{ERROR_RATE}'
      Requests per second: '{REQUESTS}'
  payments:
    queries:
      Up: up
"""


class FakePrometheus:
    """`/api/v1/query_range`, answering each query with constant series over the asked range (or
    the error the test set for it), and recording the forms it was sent."""

    def __init__(self) -> None:
        self.series: dict[str, list[tuple[dict[str, str], float]]] = {
            ERROR_RATE: [({}, 0.31)],
            REQUESTS: [({"code": "200"}, 97.0), ({"code": "500"}, 3.0)],
            "up": [({"job": "payments"}, 1.0)],
        }
        self.errors: dict[str, tuple[int, dict[str, Any]]] = {}
        self.forms: list[dict[str, str]] = []
        self.url = ""

    def queries(self) -> list[str]:
        return [form["query"] for form in self.forms]

    async def query_range(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        query = form["query"]
        if query in self.errors:
            status, body = self.errors[query]
            return web.json_response(body, status=status)
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        times = [start + i * step for i in range(int((end - start) // step) + 1)]
        result = [
            {"metric": labels, "values": [[t, str(value)] for t in times]}
            for labels, value in self.series.get(query, [])
        ]
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_post("/api/v1/query_range", fake.query_range)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def charting_bot(
    redis: aioredis.Redis,
    tmp_path: Path,
    *,
    prometheus_url: str = "",
    token: str = TOKEN,
    services: str = SERVICES,
    slack: SlackStandIn | None = None,
    slack_timeout: float = 2.0,
) -> AsyncIterator[Running]:
    path = tmp_path / "playbook.yml"
    path.write_text(services)
    settings = {"INCIDENT_ALERT_TOKEN": token, "PROMETHEUS_URL": prometheus_url}
    async with running_bot(
        redis=connect_like(redis),
        playbook=load_playbook(path),
        settings=settings,
        slack=slack,
        slack_timeout=slack_timeout,
    ) as running:
        yield running


@pytest.fixture
async def charting(
    real_redis: aioredis.Redis, prometheus: FakePrometheus, tmp_path: Path
) -> AsyncIterator[Running]:
    async with charting_bot(real_redis, tmp_path, prometheus_url=prometheus.url) as running:
        yield running


async def command(running: Running, user: str, channel: str, text: str) -> dict[str, Any]:
    """Run `/incident <text>` and let its work finish; the bot's answer to the user alone."""
    reply = await running.user.slash_command(user, channel, text)
    assert reply.status == 200, reply
    await running.settle(timeout=10)
    return reply.body if isinstance(reply.body, dict) else {}


async def declare(running: Running, title: str = "Checkout requests failing") -> str:
    await command(running, ALICE, GENERAL, f"sev2 {title}")
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    return incident.channel_id


async def post_change(running: Running, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    url = running.url.removesuffix("/slack/events") + CHANGES_PATH
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def texts(running: Running, channel: str) -> list[str]:
    return [m.text for m in running.slack.messages(channel)]


# -- POST /events/change --------------------------------------------------------------------


async def test_a_change_is_stored_and_answered_with_what_was_stored(charting: Running) -> None:
    at = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    body = {"service": "checkout", "kind": "deploy", "version": "v2.3.1", "by": "ci", "at": iso(at)}
    stored_body = {"service": "checkout", "kind": "deploy", "version": "v2.3.1", "by": "ci", "at": iso(at)}
    assert await post_change(charting, body) == (200, {"stored": stored_body})
    assert await post_change(charting, body) == (200, {"stored": stored_body})  # a CI retry
    receiver = charting.bot.receivers[CHANGES_PATH]
    assert isinstance(receiver, ChangeReceiver)
    stored = await receiver.changes.between(at - timedelta(minutes=1), utcnow())
    assert [(c.service, c.version, c.at) for c in stored] == [("checkout", "v2.3.1", at)]  # once


async def test_a_bad_change_gets_400_saying_what_is_wrong_and_a_wrong_token_401(charting: Running) -> None:
    assert await post_change(charting, {"kind": "deploy"}) == (400, {"error": "missing service"})
    assert await post_change(charting, {"service": "checkout", "kind": "restart"}) == (
        400,
        {"error": "kind must be one of deploy, config, flag"},
    )
    assert (await post_change(charting, {"service": "checkout", "kind": "deploy"}, token="nope"))[0] == 401
    assert (await post_change(charting, {"service": "checkout", "kind": "deploy"}, token=None))[0] == 401


async def test_redis_down_answers_503_so_the_pipeline_retries() -> None:
    unreachable = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        receiver = ChangeReceiver(ChangeLog(IncidentStore(unreachable)), utcnow)
        answer = await receiver.receive(b'{"service": "checkout", "kind": "deploy"}')
    finally:
        await unreachable.aclose()
    assert answer.status == 503
    assert answer.body == {"error": "the bot's Redis is unavailable, so nothing was stored; retry"}


# -- Recent changes and /incident changes ------------------------------------------------------


async def test_a_declaration_typed_by_hand_shows_the_recent_changes(charting: Running) -> None:
    now = utcnow()
    await post_change(charting, {"service": "checkout", "kind": "deploy", "version": "v2", "at": iso(now)})
    await post_change(charting, {"service": "payments", "kind": "flag", "at": iso(now - timedelta(hours=1))})
    old = now - timedelta(hours=3)
    await post_change(charting, {"service": "checkout", "kind": "config", "at": iso(old)})

    channel = await declare(charting)

    shown = [t for t in texts(charting, channel) if t.startswith("Recent changes")]
    assert len(shown) == 1 and shown[0].startswith("Recent changes: 2 changes in the 2h before ")
    incident = await charting.bot.service.get_incident("INC-1")
    assert [(c.service, c.kind) for c in incident.changes] == [
        ("checkout", ChangeKind.DEPLOY),
        ("payments", ChangeKind.FLAG),
    ]


async def test_a_declaration_goes_on_when_the_changes_cannot_be_read(
    charting: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = charting.bot.receivers[CHANGES_PATH]
    assert isinstance(receiver, ChangeReceiver)

    async def unavailable(**_: Any) -> list[ChangeEvent]:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(receiver.changes, "recent", unavailable)  # the same log the listener reads
    with caplog.at_level(logging.WARNING):
        channel = await declare(charting)
    assert not [t for t in texts(charting, channel) if t.startswith("Recent changes")]
    warned = [r.getMessage() for r in caplog.records if "Recent changes" in r.getMessage()]
    assert warned == ["declaring without Recent changes: reading them failed: connection refused"]


async def test_changes_in_an_incident_channel_are_posted_there_and_elsewhere_told_to_you(
    charting: Running,
) -> None:
    now = utcnow()
    await post_change(
        charting, {"service": "payments", "kind": "config", "at": iso(now - timedelta(hours=4))}
    )
    await post_change(charting, {"service": "checkout", "kind": "deploy", "version": "v9", "at": iso(now)})

    alone = await command(charting, BOB, GENERAL, "changes payments 6h")
    assert alone["response_type"] == "ephemeral"
    assert alone["text"].startswith("Recent changes: 2 changes in the 6h before ")
    shown = str(alone["blocks"])
    assert shown.index("*payments*") < shown.index("*checkout*")  # the service asked for first

    channel = await declare(charting)
    before = len(texts(charting, channel))
    assert await command(charting, BOB, channel, "changes") == {}
    posted = texts(charting, channel)[before:]
    assert len(posted) == 1 and posted[0].startswith("Recent changes: 1 change in the 2h before ")
    events = await charting.bot.service.store.timeline("INC-1")
    assert [(e.by, e.text) for e in events if e.kind is EventKind.CHANGES_SHOWN] == [
        (BOB, "posted the recent changes (1 in the last 2h)")
    ]


async def test_a_declaration_keeps_the_changes_it_lists_and_counts_the_rest(charting: Running) -> None:
    now = utcnow()
    for n in range(35):
        at = iso(now - timedelta(minutes=n + 1))
        change = {"service": "checkout", "kind": "deploy", "version": f"v{n}", "at": at}
        assert (await post_change(charting, change))[0] == 200

    channel = await declare(charting)

    [shown] = [m for m in charting.slack.messages(channel) if m.text.startswith("Recent changes")]
    assert shown.text.startswith("Recent changes: 35 changes in the 2h before ")
    assert str(shown.blocks).count("• ") == CHANGES_MAX_LINES and "…and 5 more." in str(shown.blocks)
    # The incident keeps what the message lists, not every change of the window.
    incident = await charting.bot.service.get_incident("INC-1")
    assert [c.version for c in incident.changes] == [f"v{n}" for n in range(CHANGES_MAX_LINES)]
    assert incident.changes_total == 35
    # The postmortem counts the rest alike.
    await command(charting, ALICE, channel, "postmortem")
    [upload] = charting.slack.files(channel)
    assert upload.content is not None
    listed = upload.content.decode().split("### Changes in the two hours before declaring\n\n", 1)[1]
    lines = listed.split("\n\n", 1)[0].splitlines()
    assert len(lines) == CHANGES_MAX_LINES + 1 and lines[-1] == "- …and 5 more."


async def test_a_window_too_large_for_a_timedelta_gets_the_allowed_range(charting: Running) -> None:
    """`99999999999d` once raised OverflowError out of the parser: HTTP 500, dispatch_failed."""
    channel = await declare(charting)
    for text, says in [
        ("changes 99999999999d", "The window of `/incident changes` is from 1m to 7d (not 99999999999d)."),
        (
            "metrics checkout 9999999999d",
            "The window of `/incident metrics` is from 5m to 7d (not 9999999999d).",
        ),
    ]:
        reply = await charting.user.slash_command(BOB, channel, text)
        assert reply.status == 200 and isinstance(reply.body, dict), reply
        assert says in reply.body["text"]


async def test_without_a_token_there_are_no_change_events(real_redis: aioredis.Redis, tmp_path: Path) -> None:
    async with charting_bot(real_redis, tmp_path, token="") as running:
        assert await post_change(running, {"service": "checkout", "kind": "deploy"}) == (
            404,
            {"error": "not found"},
        )
        said = await command(running, ALICE, GENERAL, "changes")
        assert "Change events are off: set `INCIDENT_ALERT_TOKEN`" in said["text"]
        channel = await declare(running)
        assert not [t for t in texts(running, channel) if t.startswith("Recent changes")]


# -- /incident metrics ------------------------------------------------------------------------


async def test_metrics_uploads_the_chart_with_each_panels_latest_value(
    charting: Running, prometheus: FakePrometheus, drawn: list[ChartData]
) -> None:
    now = utcnow()
    deploy = {
        "service": "checkout",
        "kind": "deploy",
        "version": "v2.3.1",
        "at": iso(now - timedelta(minutes=10)),
    }
    await post_change(charting, deploy)
    await post_change(
        charting, {"service": "payments", "kind": "deploy", "at": iso(now - timedelta(minutes=9))}
    )
    await post_change(
        charting, {"service": "checkout", "kind": "flag", "at": iso(now - timedelta(minutes=45))}
    )
    channel = await declare(charting)

    said = await command(charting, BOB, channel, "metrics checkout 30m")

    assert said == {"text": "Drawing the chart of *checkout* (the last 30m)…", "response_type": "ephemeral"}
    (upload,) = charting.slack.files(channel)
    assert upload.name == "INC-1-checkout-metrics.png"
    assert upload.content is not None and upload.content.startswith(PNG_SIGNATURE)
    assert upload.alt_txt == "Metrics of checkout over the last 30m: Error rate, Requests per second"
    (shared,) = [m for m in charting.slack.messages(channel) if m.files]
    assert shared.text.split("\n")[1:] == [
        "• Error rate: 0.31",
        '• Requests per second: 97 (code="200"), 3 (code="500")',
    ]
    incident = await charting.bot.service.get_incident("INC-1")
    (chart,) = incident.charts
    assert chart == ChartNote(
        service="checkout",
        window=timedelta(minutes=30),
        end=chart.end,
        latest={"Error rate": "0.31", "Requests per second": '97 (code="200"), 3 (code="500")'},
        file="INC-1-checkout-metrics.png",
    )
    assert upload.title == f"INC-1 checkout metrics, the last 30m to {chart.end:%Y-%m-%d %H:%M:%S} UTC"
    # Both panels asked over the window up to the request, at one step (1800 s / 240 points).
    assert prometheus.queries() == [ERROR_RATE, REQUESTS]
    for form in prometheus.forms:
        assert float(form["end"]) == pytest.approx(chart.end.timestamp(), abs=0.001)
        assert float(form["end"]) - float(form["start"]) == pytest.approx(1800, abs=0.001)
        assert form["step"] == "8"
    # Marked: checkout's deploy in the window and the declaration; not payments', not the older flag.
    (data,) = drawn
    assert [(m.kind, m.label) for m in data.markers] == [
        (MarkerKind.CHANGE, "v2.3.1"),
        (MarkerKind.DECLARED, "declared INC-1"),
    ]
    events = await charting.bot.service.store.timeline("INC-1")
    assert [(e.by, e.text) for e in events if e.kind is EventKind.CHART] == [
        (BOB, "asked for the checkout metrics chart (the last 30m)"),
        (
            None,
            "uploaded the checkout metrics chart (30m): Error rate: 0.31; "
            'Requests per second: 97 (code="200"), 3 (code="500")',
        ),
    ]


async def test_a_failing_query_is_named_in_the_channel_and_not_retried(
    charting: Running, prometheus: FakePrometheus
) -> None:
    prometheus.errors[ERROR_RATE] = (
        400,
        {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected <by>"},
    )
    channel = await declare(charting)

    await command(charting, BOB, channel, "metrics checkout")
    await charting.settle(timeout=10)  # the message saying why is work of its own

    assert charting.slack.files(channel) == []
    (said,) = [m.text for m in charting.slack.messages(channel) if "could not be drawn" in m.text]
    assert said == (
        ":warning: The *checkout* metrics chart (the last 1h) could not be drawn: panel *Error rate*: "
        f"Prometheus query `{ERROR_RATE}` failed: HTTP 400 (bad_data): "
        "1:5: parse error: unexpected &lt;by&gt;"
    )
    assert prometheus.queries().count(ERROR_RATE) == 1  # not asked again
    assert await charting.bot.store.outbox("INC-1") == []  # the effect is done
    incident = await charting.bot.service.get_incident("INC-1")
    assert incident.charts == ()
    events = await charting.bot.service.store.timeline("INC-1")
    assert [e.text for e in events if e.kind is EventKind.CHART][-1].startswith(
        "the checkout metrics chart failed: panel *Error rate*: Prometheus query"
    )


async def test_an_unknown_service_gets_the_known_ones(charting: Running, prometheus: FakePrometheus) -> None:
    channel = await declare(charting)
    said = await command(charting, BOB, channel, "metrics inventory")
    assert (
        said["text"]
        == "There is no service `inventory` in the playbook. Known services: `checkout`, `payments`."
    )
    assert prometheus.forms == []
    assert (await charting.bot.service.get_incident("INC-1")).charts == ()


async def test_no_services_or_no_prometheus_say_so(
    real_redis: aioredis.Redis, prometheus: FakePrometheus, tmp_path: Path
) -> None:
    async with charting_bot(real_redis, tmp_path, prometheus_url=prometheus.url, services="{}\n") as running:
        channel = await declare(running)
        said = await command(running, BOB, channel, "metrics checkout")
        assert said["text"] == (
            "No services are configured for charts: add them, with their queries, under the "
            "playbook's `services` key."
        )
    await real_redis.flushdb()
    async with charting_bot(real_redis, tmp_path) as running:
        channel = await declare(running)
        said = await command(running, BOB, channel, "metrics checkout")
        assert said["text"] == "Metrics charts are off: set `PROMETHEUS_URL` to the Prometheus to chart from."
        said = await command(running, BOB, GENERAL, "metrics checkout")
        assert said["text"].startswith("There is no incident in this channel, so `/incident metrics`")
    assert prometheus.forms == []


async def test_a_chart_queued_with_the_declaration_is_posted_without_asking(
    charting: Running, prometheus: FakePrometheus
) -> None:
    """An incident declared from an alert of a known service gets its chart queued with it."""
    now = utcnow()
    chart = UploadChart(service="checkout", window=timedelta(hours=1), end=now)
    await charting.bot.service.declare_incident(
        Severity.SEV2, "Error rate above 5%", ALICE, GENERAL, request_id="alert:1", chart=chart
    )
    charting.bot.delivery.wake()
    await charting.settle(timeout=10)
    incident = await charting.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    assert [f.name for f in charting.slack.files(incident.channel_id)] == ["INC-1-checkout-metrics.png"]
    assert [c.latest["Error rate"] for c in incident.charts] == ["0.31"]


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "not-done"])
async def test_a_chart_upload_whose_answer_was_lost_is_shared_once(
    real_redis: aioredis.Redis, prometheus: FakePrometheus, tmp_path: Path, applied: bool
) -> None:
    """The connection drops on files.completeUploadExternal: if Slack shared the file, the bot
    finds it by name and title and records it without drawing again; if not, it uploads again."""
    async with (
        SlackStandIn() as slack,
        charting_bot(
            real_redis, tmp_path, prometheus_url=prometheus.url, slack=slack, slack_timeout=0.5
        ) as running,
    ):
        channel = await declare(running)
        slack.faults.close_connection("files.completeUploadExternal", applied=applied, times=1)
        await command(running, BOB, channel, "metrics checkout 5m")
        await running.settle(timeout=15)
        assert [f.name for f in running.slack.files(channel)] == ["INC-1-checkout-metrics.png"]
        assert len(slack.calls("files.completeUploadExternal")) == (1 if applied else 2)
        incident = await running.bot.service.get_incident("INC-1")
        assert [c.latest["Error rate"] for c in incident.charts] == ["0.31"]  # recorded once
        assert prometheus.queries().count(ERROR_RATE) == (1 if applied else 2)
