"""`incident-bot run --delivery none` beside `incident-bot deliver`: one process acks, the other
performs the Slack work the acks stored, on the same Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.demo.harness import (
    SIGNING_SECRET,
    RedisServer,
    bot_process_env,
    eventually,
    free_port,
    http_healthy,
    start_bot_process,
    stop_bot_process,
)
from bot.demo.standin import SlackStandIn, SlackUser
from bot.models import Severity
from bot.playbook import load_playbook
from bot.service import checklist_works

ALICE, BOB = "U0ALICE", "U0BOB"


def checkbox_action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        str(element["action_id"])
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("type") == "checkboxes"
    ]


async def stop(proc: asyncio.subprocess.Process) -> int | None:
    """SIGTERM, then the kill of last resort; returns the exit code of a graceful stop."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        finally:
            await stop_bot_process(proc)
    return proc.returncode


async def test_a_deliver_process_delivers_what_the_acking_process_stored(redis_process: RedisServer) -> None:
    redis = aioredis.Redis(port=redis_process.port, decode_responses=True)
    async with SlackStandIn() as slack:
        env = bot_process_env(slack, redis_process.url)
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--delivery", "none"]
        http = await start_bot_process(env, http_healthy(port), args=args, timeout=20)
        deliverer: asyncio.subprocess.Process | None = None
        try:
            user = SlackUser(slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
            reply = await user.slash_command(ALICE, "C0GENERAL", "sev3 Checkout down")
            assert "*INC-1*" in str(reply.body)

            # Acked and stored, and nothing in this process delivers it.
            await asyncio.sleep(1.0)
            assert slack.calls("conversations.create") == []
            assert await redis.hlen(keys.outbox("INC-1")) > 0

            deliver_port = free_port()
            deliverer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "deliver",
                "--host",
                "127.0.0.1",
                "--port",
                str(deliver_port),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            channel_name = "inc-1-checkout-down"
            await eventually(lambda: slack.channel_by_name(channel_name) is not None, timeout=20)
            channel = slack.channel_by_name(channel_name)
            assert channel is not None
            spec = load_playbook(None).severity(Severity.SEV3)
            expected = len(checklist_works(spec.sections_by_phase()))

            def checklists() -> list[str]:
                return [m.ts for m in slack.messages(channel.id) if checkbox_action_ids(m.blocks)]

            await eventually(lambda: len(checklists()) == expected, timeout=10)
            assert await http_healthy(deliver_port)()
            await eventually(lambda: ALICE in channel.members, timeout=5)

            # A tick is acked by the HTTP process and shows in the message.
            ts = checklists()[0]
            action = checkbox_action_ids(slack.message(channel.id, ts).blocks)[0]
            await user.click_checkbox(BOB, channel.id, ts, action, True)

            def ticked() -> bool:
                blocks = slack.message(channel.id, ts).blocks
                return any(
                    element.get("initial_options")
                    for block in blocks
                    if block["type"] == "actions"
                    for element in block["elements"]
                )

            await eventually(ticked, timeout=10)
            assert slack.rejected_calls() == []
        finally:
            if deliverer is not None:
                assert await stop(deliverer) == 0  # SIGTERM: it finishes and closes cleanly
            await stop(http)
            await redis.aclose()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["deliver"], "deliver needs REDIS_URL"),
        (["run", "--port", "0", "--delivery", "none"], "--delivery none needs REDIS_URL"),
    ],
)
def test_delivering_apart_needs_a_shared_redis(args: list[str], says: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_", "REDIS_URL"))}
    env |= {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and says in done.stderr
