"""incident-bot over Socket Mode, end to end: `python -m bot run` with SLACK_APP_TOKEN as a process.

The bot opens its WebSocket through the stand-in's apps.connections.open; commands, clicks and
submissions reach it as envelopes and its acks come back on the socket. State is in a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.demo.harness import (
    eventually,
    free_port,
    http_healthy,
    socket_connected,
    start_bot_process,
    stop_bot_process,
    update_modal_values,
)
from bot.demo.standin import SlackStandIn, SlackUser
from bot.demo.standin.workspace import Message

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"
APP_TOKEN = "xapp-standin"


@dataclass
class SocketModeBot:
    slack: SlackStandIn
    user: SlackUser
    proc: asyncio.subprocess.Process
    health_port: int


@pytest.fixture
async def socket_mode_bot(
    real_redis: aioredis.Redis, redis_test_url: str, tmp_path: Path
) -> AsyncIterator[SocketModeBot]:
    """The bot as a process in Socket Mode, with no signing secret and no HTTP port."""
    log = tmp_path / "bot.log"
    async with SlackStandIn(app_token=APP_TOKEN) as slack:
        env = {
            **os.environ,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_API_URL": slack.url,
            "REDIS_URL": redis_test_url,  # flushed by real_redis
            "INCIDENT_STAKEHOLDER_CHANNEL": MANAGERS,
        }
        for unset in ("SLACK_SIGNING_SECRET", "INCIDENT_PLAYBOOK", "PORT"):
            env.pop(unset, None)
        port = free_port()
        proc = await start_bot_process(
            env, socket_connected(slack), args=["--host", "127.0.0.1", "--port", str(port)], log_path=log
        )
        try:
            yield SocketModeBot(slack, SlackUser.over_socket_mode(slack), proc, port)
        finally:
            await stop_bot_process(proc)
            print(log.read_bytes().decode(errors="replace"))  # shown when a test fails


def checkboxes(message: Message) -> list[dict[str, Any]]:
    return [
        e
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes"
    ]


def texts(slack: SlackStandIn, channel: str) -> list[str]:
    return [m.text + json.dumps(m.blocks) for m in slack.messages(channel)]


async def declare(bot: SocketModeBot) -> str:
    """Declares a SEV2 from #general; returns the incident channel once its checklists are up."""
    reply = await bot.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
    assert reply.status == 200, reply
    assert "INC-1" in reply.json_body()["text"]
    assert any("INC-1" in e.text for e in bot.slack.ephemerals(ALICE))  # the ack, shown to Alice
    await eventually(lambda: bot.slack.channel_by_name("inc-1-checkout-requests-failing") is not None)
    channel = bot.slack.channel_by_name("inc-1-checkout-requests-failing")
    assert channel is not None
    await eventually(lambda: sum(len(checkboxes(m)) for m in bot.slack.messages(channel.id)) == 18)
    return channel.id


async def tick_first_item(bot: SocketModeBot, channel: str, message_index: int, item: int) -> None:
    message = bot.slack.messages(channel)[message_index]
    element = checkboxes(message)[item]
    reply = await bot.user.click_checkbox(ALICE, channel, message.ts, element["action_id"], True)
    assert (reply.status, reply.body) == (200, None)

    def shown_ticked() -> bool:
        now = checkboxes(bot.slack.message(channel, message.ts))[item]
        return any(f"<@{ALICE}>" in o["description"]["text"] for o in now.get("initial_options", []))

    await eventually(shown_ticked)


async def test_declare_tick_and_post_an_update_over_socket_mode(socket_mode_bot: SocketModeBot) -> None:
    bot = socket_mode_bot
    channel = await declare(bot)
    header = json.dumps(bot.slack.messages(channel)[0].blocks)
    assert "Checkout requests failing" in header and "Investigating" in header
    await eventually(lambda: any("INC-1" in m.text for m in bot.slack.messages(MANAGERS)))

    await tick_first_item(bot, channel, message_index=1, item=0)

    reply = await bot.user.slash_command(BOB, channel, "update")
    assert (reply.status, reply.body) == (200, None)
    await eventually(lambda: [v.callback_id for v in bot.slack.views()] == ["status_update"])
    (modal,) = bot.slack.views()
    # The ack payload is the response body: errors keep the modal open, a bare ack closes it.
    refused = await bot.user.submit_view(
        BOB, modal.id, update_modal_values("Identified", "   ", "x" * 1600, "15m")
    )
    assert refused.json_body()["response_action"] == "errors"
    assert set(refused.json_body()["errors"]) == {"impact", "current_state"}
    assert bot.slack.view(modal.id).is_open
    accepted = await bot.user.submit_view(
        BOB,
        modal.id,
        update_modal_values(
            "Identified",
            "~5% of checkout requests failing",
            "Identified database connection issue, deploying fix",
            "15m",
        ),
    )
    assert (accepted.status, accepted.body) == (200, None)
    assert not bot.slack.view(modal.id).is_open

    await eventually(lambda: any("*Status:* Identified" in t for t in texts(bot.slack, channel)))
    update = next(t for t in texts(bot.slack, channel) if "*Status:* Identified" in t)
    for line in (
        "*Impact:* ~5% of checkout requests failing",
        "*Current state:* Identified database connection issue, deploying fix",
        "*Next update:* 15 minutes (at ",
    ):
        assert line in update
    await eventually(lambda: any("*Status:* Identified" in t for t in texts(bot.slack, MANAGERS)))
    assert all(e.acked for e in bot.slack.socket_envelopes())
    assert bot.slack.rejected_calls() == []


async def test_the_bot_reconnects_by_itself_when_slack_drops_the_socket(
    socket_mode_bot: SocketModeBot,
) -> None:
    bot = socket_mode_bot
    channel = await declare(bot)
    (first,) = bot.slack.socket_connections()
    opened = len(bot.slack.calls("apps.connections.open"))  # the token check at start, then one per socket

    assert await bot.slack.drop_socket_connections() == 1

    await eventually(lambda: [c.id for c in bot.slack.socket_connections()] not in ([], [first.id]))
    assert len(bot.slack.calls("apps.connections.open")) == opened + 1
    status = await bot.user.slash_command(ALICE, channel, "status")
    assert "*Status:* Investigating" in status.json_body()["text"]
    await tick_first_item(bot, channel, message_index=1, item=1)

    # A graceful refresh: Slack asks, the bot moves to a new socket before the old one is cut.
    (second,) = bot.slack.socket_connections()
    assert await bot.slack.drop_socket_connections(reason="refresh_requested") == 1
    await eventually(lambda: [c.id for c in bot.slack.socket_connections()] not in ([], [second.id]))
    assert len(bot.slack.calls("apps.connections.open")) == opened + 2
    await tick_first_item(bot, channel, message_index=1, item=2)
    assert [e.connection_id for e in bot.slack.socket_envelopes()][-1] not in (first.id, second.id)
    assert all(e.acked for e in bot.slack.socket_envelopes())
    assert bot.slack.rejected_calls() == []


async def test_socket_mode_serves_healthz_and_stops_cleanly_on_sigterm(
    socket_mode_bot: SocketModeBot,
) -> None:
    assert await http_healthy(socket_mode_bot.health_port)()
    socket_mode_bot.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(socket_mode_bot.proc.wait(), timeout=10) == 0
    await eventually(lambda: not socket_mode_bot.slack.socket_connections())


@pytest.mark.parametrize(
    ("token", "says"),
    [("xoxb-not-an-app-token", "must be an app-level token"), ("xapp-wrong", "refused SLACK_APP_TOKEN")],
)
async def test_a_bad_app_token_stops_the_bot_at_start(token: str, says: str) -> None:
    async with SlackStandIn(app_token=APP_TOKEN) as slack:
        env = {
            **os.environ,
            "SLACK_APP_TOKEN": token,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_API_URL": slack.url,
        }
        env.pop("REDIS_URL", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--port",
            str(free_port()),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
        assert proc.returncode == 2
        assert says in err.decode()
