"""Start-up against what the bot depends on: Slack refusing, failing or missing, Redis missing,
`incident-bot check`, and the logs a normal start writes (none to worry about; JSON if asked)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bot.demo.harness import (
    SIGNING_SECRET,
    eventually,
    free_port,
    http_healthy,
    start_bot_process,
    stop_bot_process,
)
from bot.demo.standin import SlackStandIn, SlackUser
from bot.settings import Settings

pytestmark = pytest.mark.redis


def clean_env(**settings: str) -> dict[str, str]:
    names = {str(field.alias) for field in Settings.model_fields.values()}
    env = {
        k: v for k, v in os.environ.items() if k not in names and not k.startswith(("SLACK_", "INCIDENT_"))
    }
    return {**env, "STARTUP_TIMEOUT": "1s", **settings}


async def cli(env: dict[str, str], *args: str, timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    [line] = err.splitlines()
    assert line.startswith("incident-bot: ") and "Traceback" not in err
    return line


@asynccontextmanager
async def fake_slack(answer: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A loopback server that answers every Web API call with `answer`: Slack's failures that
    the stand-in does not play (an outage page, a user token)."""
    app = web.Application()
    app.router.add_route("*", "/api/{method}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/"
    finally:
        await runner.cleanup()


async def outage_page(_: web.Request) -> web.Response:
    return web.Response(
        status=500, text="<html><body>Internal Server Error</body></html>", content_type="text/html"
    )


async def user_token(_: web.Request) -> web.Response:
    return web.json_response({"ok": True, "user": "alice", "team": "Acme", "user_id": "U1"})


async def test_slack_unreachable_is_retried_then_one_line_and_exit_1() -> None:
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s",
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
    )
    code, _, err = await cli(env, "run", "--port", "0")
    assert code == 1
    line = one_line(err)
    assert "is unreachable after trying for 1 s (STARTUP_TIMEOUT)" in line and "Cannot connect" in line


async def test_slack_answering_an_html_outage_page_is_one_line_and_exit_1() -> None:
    async with fake_slack(outage_page) as url:
        env = clean_env(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SLACK_API_URL=url)
        code, _, err = await cli(env, "run", "--port", "0")
    assert code == 1
    line = one_line(err)
    assert "auth.test answered HTTP 500 with a body that is not Slack's JSON" in line and url in line


async def test_a_user_token_in_place_of_the_bot_token_is_refused() -> None:
    async with fake_slack(user_token) as url:
        env = clean_env(SLACK_BOT_TOKEN="xoxp-1", SLACK_SIGNING_SECRET="s", SLACK_API_URL=url)
        code, _, err = await cli(env, "run", "--port", "0")
    assert code == 2 and "SLACK_BOT_TOKEN is not a bot token" in one_line(err)


async def test_slack_failing_at_first_is_retried_until_it_answers() -> None:
    calls = 0

    async def recovering(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return await outage_page(request)
        return web.json_response({"ok": True, "user": "incident-bot", "team": "Acme", "bot_id": "B1"})

    async with fake_slack(recovering) as url:
        env = clean_env(
            SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SLACK_API_URL=url, STARTUP_TIMEOUT="20s"
        )
        code, out, err = await cli(env, "check")
    assert code == 0, err
    assert calls == 3 and "SLACK_BOT_TOKEN  ok: @incident-bot in the workspace Acme" in out


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_refused_bot_token_exits_2_naming_it(mode: str) -> None:
    async with SlackStandIn() as slack:
        env = clean_env(SLACK_BOT_TOKEN="xoxb-wrong", SLACK_API_URL=slack.url)
        env.update(
            {"SLACK_APP_TOKEN": slack.app_token} if mode == "socket" else {"SLACK_SIGNING_SECRET": "s"}
        )
        code, _, err = await cli(env, "run", "--port", "0")
    assert code == 2
    assert one_line(err) == (
        "incident-bot: Slack refused SLACK_BOT_TOKEN (invalid_auth): "
        "copy the token again from the app's settings."
    )


async def test_a_refused_app_token_exits_2_naming_it() -> None:
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN="xapp-wrong", SLACK_API_URL=slack.url
        )
        code, _, err = await cli(env, "run", "--port", "0")
    assert code == 2 and "Slack refused SLACK_APP_TOKEN (invalid_auth)" in one_line(err)


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        (
            "redis://127.0.0.1:{closed}/0",
            1,
            "the incident store (Redis) at redis://127.0.0.1:{closed}/0 is unreachable",
        ),
        ("{test_url_db_99}", 2, "DB index is out of range. Check REDIS_URL."),
    ],
)
async def test_redis_problems_at_start_are_one_line(
    redis_test_url: str, url: str, code: int, says: str
) -> None:
    closed = free_port()
    test_url_db_99 = redis_test_url.rsplit("/", 1)[0] + "/99"
    url = url.format(closed=closed, test_url_db_99=test_url_db_99)
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.url, REDIS_URL=url
        )
        got, _, err = await cli(env, "run", "--port", "0")
    assert got == code
    assert says.format(closed=closed) in one_line(err)


async def test_check_prints_what_it_checked_and_exits_0(redis_test_url: str) -> None:
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            SLACK_API_URL=slack.url,
            REDIS_URL=redis_test_url,
        )
        code, out, err = await cli(env, "check")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "configuration    ok: Socket Mode"
    assert lines[1].startswith("playbook         ok: the built-in playbook")
    assert lines[2].startswith(f"Redis            ok: {redis_test_url}")
    assert lines[3] == "SLACK_BOT_TOKEN  ok: @incident-bot in the workspace Stand-in Workspace"
    assert lines[4] == "SLACK_APP_TOKEN  ok: Socket Mode connections can be opened"


async def test_check_reports_every_problem_and_exits_with_the_worst(tmp_path: Path) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text("severities:\n  sev2:\n    update_every: 4x\n")
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN="xoxb-wrong",
            SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=slack.url,
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            INCIDENT_PLAYBOOK=str(playbook),
        )
        code, out, err = await cli(env, "check")
    assert code == 2
    assert [line.split()[0:2] for line in out.splitlines()] == [
        ["configuration", "ok:"],
        ["playbook", "FAILED"],
        ["Redis", "FAILED"],
        ["SLACK_BOT_TOKEN", "FAILED"],
    ]
    problems = err.splitlines()
    assert len(problems) == 3 and all(p.startswith("incident-bot: ") for p in problems)
    assert "update_every: invalid duration '4x'" in problems[0]
    assert "is unreachable" in problems[1] and "invalid_auth" in problems[2]


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, so uvicorn stops its workers too, then make sure it is gone."""
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        await stop_bot_process(proc)


async def declare_once(slack: SlackStandIn, port: int) -> None:
    user = SlackUser(slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
    reply = await user.slash_command("U0ALICE", "C0GENERAL", "sev3 Search is slow")
    assert reply.status == 200
    await _channel_opened(slack)


async def _channel_opened(slack: SlackStandIn) -> None:
    await eventually(lambda: any(c.name.startswith("inc-") for c in slack.channels()))


async def test_a_normal_start_logs_no_warning(
    real_redis: aioredis.Redis, redis_test_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
            REDIS_URL=redis_test_url,
        )
        port = free_port()
        proc = await start_bot_process(
            env,
            http_healthy(port),
            args=["--host", "127.0.0.1", "--port", str(port)],
            timeout=20,
            log_path=log,
        )
        try:
            await declare_once(slack, port)
        finally:
            await stop(proc)
    text = log.read_text()
    assert "serving Slack requests on http://127.0.0.1" in text
    assert " WARNING " not in text and " ERROR " not in text, text


@pytest.mark.parametrize("workers", [1, 2])
async def test_json_logs_are_one_object_a_line_in_every_process(
    real_redis: aioredis.Redis, redis_test_url: str, tmp_path: Path, workers: int
) -> None:
    log = tmp_path / "bot.log"
    async with SlackStandIn() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
            REDIS_URL=redis_test_url,
            LOG_FORMAT="json",
            LOG_LEVEL="DEBUG",
        )
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        proc = await start_bot_process(env, http_healthy(port), args=args, timeout=20, log_path=log)
        try:
            await declare_once(slack, port)
        finally:
            await stop(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    # uvicorn's own lines, in the parent and in each worker, are in the same format.
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    pids = {line["message"] for line in lines if line["message"].startswith("Started server process")}
    assert len(pids) == workers
    # Lines logged while serving the declaration name its request; those of its delivery, the incident.
    assert any(line.get("request") for line in lines)
    assert any(line.get("incident") == "INC-1" for line in lines)


async def socket_mode_nowhere(request: web.Request) -> web.Response:
    """Slack takes both tokens, but the WebSocket it names does not open."""
    if request.match_info["method"] == "apps.connections.open":
        return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{free_port()}/link"})
    return web.json_response({"ok": True, "user": "incident-bot", "team": "Acme", "bot_id": "B1"})


async def test_a_socket_mode_connection_that_never_opens_is_one_line_and_exit_1(redis_test_url: str) -> None:
    """Quiet while it tries (slack_sdk would log a traceback a try), then one line."""
    async with fake_slack(socket_mode_nowhere) as url:
        env = clean_env(
            SLACK_BOT_TOKEN="xoxb-1",
            SLACK_APP_TOKEN="xapp-1",
            SLACK_API_URL=url,
            REDIS_URL=redis_test_url,
            LOG_LEVEL="WARNING",
        )
        code, _, err = await cli(env, "run", "--port", "0")
    assert code == 1
    line = one_line(err)
    assert "Socket Mode connection did not open within 1 s (STARTUP_TIMEOUT): Failed to connect" in line


async def test_sigterm_while_socket_mode_connects_stops_the_bot() -> None:
    async with fake_slack(socket_mode_nowhere) as url:
        env = clean_env(
            SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1", SLACK_API_URL=url, STARTUP_TIMEOUT="60s"
        )
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            healthy = http_healthy(port)
            for _ in range(200):  # up (its health port answers), and still connecting
                if await healthy():
                    break
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
        finally:
            await stop_bot_process(proc)
    assert proc.returncode == 0 and "Traceback" not in err.decode()


async def test_check_asks_prometheus_when_charts_are_on(redis_test_url: str) -> None:
    from bot.demo.standin.prometheus import PrometheusStandIn
    from bot.models import utcnow

    async with SlackStandIn() as slack, PrometheusStandIn(rise_at=utcnow()) as prometheus:
        base = clean_env(
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=slack.url,
            REDIS_URL=redis_test_url,
            INCIDENT_ALERT_TOKEN="t",
            INCIDENT_TRIAGE_CHANNEL="C0TRIAGE",
        )
        code, out, err = await cli({**base, "PROMETHEUS_URL": prometheus.url}, "check")
        assert code == 0, err
        assert f"PROMETHEUS_URL   ok: {prometheus.url} answers queries" in out.splitlines()
        assert "evidence         on: /alerts/alertmanager and /events/change; alerts go to C0TRIAGE" in out
        assert prometheus.queries == ["vector(1)"]

        nowhere = f"http://127.0.0.1:{free_port()}"
        code, out, err = await cli({**base, "PROMETHEUS_URL": nowhere}, "check")
    assert code == 1 and "PROMETHEUS_URL   FAILED" in out
    assert one_line(err) == f"incident-bot: PROMETHEUS_URL: cannot reach {nowhere} (Connection refused)"
