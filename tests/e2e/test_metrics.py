"""GET /metrics after a scripted incident, in each way the bot runs: over HTTP (one process, on a
controllable clock), on the health port in Socket Mode, and under `run --workers 2` (every
worker's counts summed; the gauges read from Redis, never summed)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bot.demo.harness import (
    SIGNING_SECRET,
    Running,
    eventually,
    free_port,
    http_healthy,
    running_bot,
    socket_connected,
    start_bot_process,
    stop_bot_process,
    update_modal_values,
)
from bot.demo.standin import SlackStandIn, SlackUser
from bot.metrics import MULTIPROCESS_VARIABLE
from tests.conftest import FakeClock
from tests.e2e.conftest import connect_like

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL = "C0GENERAL"
APP_TOKEN = "xapp-standin"

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One GET /metrics, parsed with prometheus-client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str, **labels: str) -> float:
        """Summed over the labels not given."""
        wanted = set(labels.items())
        return sum(v for (n, found), v in self.samples.items() if n == name and wanted <= found)


async def scrape(url: str) -> Scrape:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return Scrape(await response.text())


async def scraped_when(url: str, ready: Callable[[Scrape], bool], timeout: float = 8.0) -> Scrape:
    """Scrape until `ready` holds (the work a request started goes on after its ack)."""
    found: list[Scrape] = []

    async def check() -> bool:
        found[:] = [await scrape(url)]
        return ready(found[0])

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "metrics did not reach the expected values"
        await asyncio.sleep(0.1)
    return found[0]


def metrics_url(running: Running) -> str:
    return running.url.removesuffix("/slack/events") + "/metrics"


async def command(running: Running, user: str, channel: str, text: str) -> None:
    reply = await running.user.slash_command(user, channel, text)
    assert reply.status == 200, reply
    await running.settle()


async def post_update(running: Running, channel: str, status: str, next_update: str) -> None:
    before = {v.id for v in running.slack.views()}
    await command(running, BOB, channel, "update")
    [view] = [v for v in running.slack.views() if v.id not in before]
    values = update_modal_values(status, "5% of checkouts fail", "connection pool exhausted", next_update)
    reply = await running.user.submit_view(BOB, view.id, values)
    assert reply.status == 200 and not reply.body, reply
    await running.settle()


def checkboxes(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["action_id"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes"
    ]


def reminders(running: Running, channel: str) -> list[str]:
    return [m.text for m in running.slack.messages(channel) if "next status update is due" in m.text]


async def test_a_scripted_incident_shows_in_the_metrics(real_redis: aioredis.Redis) -> None:
    clock = FakeClock()
    async with running_bot(redis=connect_like(real_redis), clock=clock) as running:
        url = metrics_url(running)
        await command(running, ALICE, GENERAL, "sev2 Checkout requests failing")
        channel = (await running.bot.service.get_incident("INC-1")).channel_id
        assert channel is not None
        checklist = next(m for m in running.slack.messages(channel) if checkboxes(m.blocks))
        boxes = checkboxes(checklist.blocks)
        for action_id in boxes[:2]:
            reply = await running.user.click_checkbox(BOB, channel, checklist.ts, action_id, True)
            assert reply.status == 200
        await running.settle()

        clock.advance(600)
        await post_update(running, channel, "Identified", "15m")  # identified 10 minutes in
        clock.advance(15 * 60 + 7)  # the next update is 7 seconds overdue
        await eventually(lambda: len(reminders(running, channel)) == 1)
        await running.settle()
        during = await scrape(url)

        clock.advance(60)
        await post_update(running, channel, "Monitoring", "15m")
        clock.advance(120)
        await command(running, ALICE, channel, "resolve")
        after = await scrape(url)

    assert during("incident_bot_incidents_open", severity="sev2") == 1
    assert after("incident_bot_incidents_open", severity="sev2") == 0
    assert after.total("incident_bot_incidents_open") == 0
    assert after("incident_bot_outbox_pending") == 0  # settled: every piece of Slack work is done
    assert after("incident_bot_redis_up") == 1
    assert after("incident_bot_incidents_declared_total", severity="sev2") == 1
    assert after.total("incident_bot_incidents_declared_total") == 1

    assert after("incident_bot_updates_posted_total") == 2
    assert after("incident_bot_reminders_sent_total") == 1
    assert after("incident_bot_reminder_lateness_seconds_count") == 1
    assert after("incident_bot_reminder_lateness_seconds_sum") == 7
    # Declared at 0 s; Identified at 600 s, Monitoring at 1567 s, resolved at 1687 s.
    for milestone, seconds in (("identified", 600), ("mitigated", 1567), ("resolved", 1687)):
        assert after(f"incident_bot_time_to_{milestone}_seconds_count", severity="sev2") == 1
        assert after(f"incident_bot_time_to_{milestone}_seconds_sum", severity="sev2") == seconds
    assert during("incident_bot_time_to_resolved_seconds_count", severity="sev2") == 0

    posts = len(running.slack.calls("chat.postMessage"))
    assert posts > 0
    assert after("incident_bot_slack_api_calls_total", method="chat.postMessage", outcome="ok") == posts
    assert after("incident_bot_slack_api_seconds_count", method="chat.postMessage") == posts
    # Every call the bot made, by method; less auth.test, which Bolt also makes once itself,
    # through a client it builds per request.
    made = Counter(c.method for c in running.slack.calls() if c.method != "auth.test")
    counted = {m: after.total("incident_bot_slack_api_calls_total", method=m) for m in made}
    assert counted == made

    # Commands: declare, update, update, resolve; two ticks; two modals submitted.
    assert after("incident_bot_ack_seconds_count", kind="command") == 4
    assert after("incident_bot_ack_seconds_count", kind="action") == 2
    assert after("incident_bot_ack_seconds_count", kind="view") == 2
    assert after("incident_bot_redis_errors_total") == 0


async def test_socket_mode_serves_metrics_on_the_health_port(tmp_path: Path) -> None:
    async with SlackStandIn(app_token=APP_TOKEN) as slack:
        env = {
            **os.environ,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_API_URL": slack.url,
        }
        unset = ("SLACK_SIGNING_SECRET", "REDIS_URL", "INCIDENT_PLAYBOOK", "PORT", MULTIPROCESS_VARIABLE)
        for name in unset:
            env.pop(name, None)
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port)]
        log = tmp_path / "bot.log"
        proc = await start_bot_process(env, socket_connected(slack), args=args, log_path=log)
        try:
            reply = await SlackUser.over_socket_mode(slack).slash_command(ALICE, GENERAL, "sev1 Site down")
            assert reply.status == 200

            def delivered(found: Scrape) -> bool:
                return found.total("incident_bot_slack_api_calls_total", method="conversations.create") == 1

            found = await scraped_when(f"http://127.0.0.1:{port}/metrics", delivered)
        finally:
            await stop_bot_process(proc)
            print(log.read_bytes().decode(errors="replace"))  # shown when the test fails
    assert found("incident_bot_incidents_declared_total", severity="sev1") == 1
    assert found("incident_bot_incidents_open", severity="sev1") == 1
    assert found("incident_bot_ack_seconds_count", kind="command") == 1
    assert found("incident_bot_slack_api_calls_total", method="conversations.create", outcome="ok") == 1
    assert found.total("incident_bot_slack_api_calls_total", method="apps.connections.open") >= 1


def metrics_directories(parent: Path) -> list[Path]:
    """The PROMETHEUS_MULTIPROC_DIR a `run --workers` made under `parent` (its TMPDIR)."""
    return list(parent.glob("incident-bot-metrics-*"))


def declared_by_worker(directory: Path) -> dict[int, float]:
    """Each worker's own count of declarations (by its pid), from its file in
    PROMETHEUS_MULTIPROC_DIR."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            if family.name == "incident_bot_incidents_declared":
                pid = int(path.stem.removeprefix("counter_"))
                counts[pid] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return counts


async def test_two_workers_report_their_counts_summed_and_the_open_incidents_once(
    real_redis: aioredis.Redis, redis_test_url: str, tmp_path: Path
) -> None:
    async with SlackStandIn() as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "REDIS_URL": redis_test_url,
            "TMPDIR": str(tmp_path),  # where the parent makes PROMETHEUS_MULTIPROC_DIR
        }
        for unset in ("SLACK_APP_TOKEN", "INCIDENT_PLAYBOOK", MULTIPROCESS_VARIABLE):
            env.pop(unset, None)
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        proc = await start_bot_process(env, http_healthy(port), args=args, timeout=20)
        try:
            [directory] = metrics_directories(tmp_path)
            user = SlackUser(slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
            sent = 0

            async def declare() -> None:
                nonlocal sent
                reply = await user.slash_command(ALICE, GENERAL, f"sev3 Outage {sent}")
                assert reply.status == 200
                sent += 1

            for _ in range(3):
                await declare()
            # Both workers must have declared some. Which one takes a connection is the kernel's
            # choice, and it often picks the same one: pause that one while two more go out.
            busy = [pid for pid, count in declared_by_worker(directory).items() if count]
            if len(busy) == 1:
                os.kill(busy[0], signal.SIGSTOP)
                try:
                    for _ in range(2):
                        await declare()
                finally:
                    os.kill(busy[0], signal.SIGCONT)
            by_worker = declared_by_worker(directory)
            assert len(by_worker) == 2 and all(by_worker.values()), by_worker
            assert sum(by_worker.values()) == sent

            def settled(found: Scrape) -> bool:
                created = found.total("incident_bot_slack_api_calls_total", method="conversations.create")
                return created == sent and found("incident_bot_outbox_pending") == 0

            url = f"http://127.0.0.1:{port}/metrics"
            await scraped_when(url, settled, timeout=15)
            # Whichever worker answers a scrape, it tells the same, summed, truth.
            for found in await asyncio.gather(*(scrape(url) for _ in range(6))):
                assert found("incident_bot_incidents_declared_total", severity="sev3") == sent
                assert found("incident_bot_ack_seconds_count", kind="command") == sent
                assert found("incident_bot_incidents_open", severity="sev3") == sent  # not doubled
                assert found.total("incident_bot_incidents_open") == sent
        finally:
            # SIGTERM, so uvicorn stops its workers too (a SIGKILL would orphan them).
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            finally:
                await stop_bot_process(proc)
    assert not metrics_directories(tmp_path)  # removed once the workers stopped
