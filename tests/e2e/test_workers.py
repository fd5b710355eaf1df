"""`incident-bot run --workers 2`: two processes on one port, sharing one Redis."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis

from bot.demo.harness import (
    SIGNING_SECRET,
    eventually,
    free_port,
    http_healthy,
    start_bot_process,
    stop_bot_process,
)
from bot.demo.standin import SlackStandIn, SlackUser

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


async def test_two_workers_declare_and_tick_as_one_bot(
    real_redis: aioredis.Redis, redis_test_url: str
) -> None:
    async with SlackStandIn() as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "REDIS_URL": redis_test_url,
        }
        env.pop("SLACK_APP_TOKEN", None)
        port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        proc = await start_bot_process(env, http_healthy(port), args=args, timeout=20)
        try:
            user = SlackUser(slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
            replies = await asyncio.gather(
                *(user.slash_command(ALICE, "C0GENERAL", f"sev3 Outage {n}") for n in range(4))
            )
            assert sorted(str(r.body).split("*")[1] for r in replies) == ["INC-1", "INC-2", "INC-3", "INC-4"]
            await eventually(lambda: len([c for c in slack.channels() if c.name.startswith("inc-")]) == 4)
            # The four declarations raced: INC-1 may be any of them.
            [channel] = [c for c in slack.channels() if c.name.startswith("inc-1-outage-")]
            await eventually(lambda: len(slack.messages(channel.id)) == 3)
            assess = slack.messages(channel.id)[1]
            action_ids = [
                e["action_id"] for b in assess.blocks if b["type"] == "actions" for e in b["elements"]
            ]
            await asyncio.gather(
                *(
                    user.click_checkbox(who, channel.id, assess.ts, action_ids[n], True)
                    for n, who in enumerate([ALICE, BOB, CAROL, ALICE])
                )
            )

            def shown_ticked() -> int:
                blocks = slack.message(channel.id, assess.ts).blocks
                return sum(
                    1
                    for b in blocks
                    if b["type"] == "actions"
                    for e in b["elements"]
                    if e.get("initial_options")
                )

            await eventually(lambda: shown_ticked() == 4)
            assert len(await real_redis.hgetall("incident:{INC-1}:ticks")) == 4
            assert slack.rejected_calls() == []
        finally:
            # SIGTERM, so uvicorn stops its workers too (a SIGKILL would orphan them).
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            finally:
                await stop_bot_process(proc)
