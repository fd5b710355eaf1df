"""`kill -9` in the middle of a declaration: a second bot process finishes it, each message once.

Two real `python -m bot run` processes share one private Redis. The stand-in holds the answer of
one Web API call of the declaration (after doing the work, or before), the process that made it
is killed meanwhile, and the other process takes the incident over once the dead one's heartbeat
has expired."""

from __future__ import annotations

import pytest

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

ALICE = "U0ALICE"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"
CHANNEL = "inc-1-checkout-requests-failing"


def _channel_messages(slack: SlackStandIn) -> int:
    channel = slack.channel_by_name(CHANNEL)
    return len(slack.messages(channel.id)) if channel else -1


# (method, which of its calls) at which the first process dies, and whether Slack did the work.
STEPS = [
    ("conversations.create", 0, True),
    ("chat.postMessage", 0, True),  # header
    ("chat.postMessage", 2, True),  # second checklist
    ("chat.postMessage", 3, False),  # announcement where it was declared
]


@pytest.mark.parametrize(("method", "nth", "applied"), STEPS, ids=[f"{m}#{n}-{a}" for m, n, a in STEPS])
async def test_a_declaration_is_finished_by_another_process_after_kill_9(
    redis_process: RedisServer, method: str, nth: int, applied: bool
) -> None:
    async with SlackStandIn() as slack:
        env = bot_process_env(slack, redis_process.url, INCIDENT_STAKEHOLDER_CHANNEL=MANAGERS)
        seen = [-1]

        def nth_call(_: dict[str, object]) -> bool:
            seen[0] += 1
            return seen[0] == nth

        # Hold the answer far longer than the test: the process waiting for it is killed first.
        fault = slack.faults.hang(method, 60, applied=applied, match=nth_call)
        ports = [free_port(), free_port()]
        first = await start_bot_process(env, http_healthy(ports[0]), args=["--port", str(ports[0])])
        second = await start_bot_process(env, http_healthy(ports[1]), args=["--port", str(ports[1])])
        try:
            user = SlackUser(slack, f"http://127.0.0.1:{ports[0]}/slack/events", SIGNING_SECRET)
            reply = await user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            assert "INC-1" in str(reply.body)
            await eventually(lambda: not fault.armed, timeout=10)  # the call is being held
            await stop_bot_process(first)  # SIGKILL while it waits for Slack's answer

            # sev2: header and two checklists in its channel, one announcement each elsewhere.
            await eventually(lambda: _channel_messages(slack) == 3, timeout=20)
            await eventually(lambda: len(slack.messages(GENERAL)) == 1, timeout=10)
            await eventually(lambda: len(slack.messages(MANAGERS)) == 1, timeout=10)
            channel = slack.channel_by_name(CHANNEL)
            assert channel is not None and ALICE in channel.members
            assert [c.name for c in slack.channels() if c.name.startswith("inc-")] == [CHANNEL]
            header = slack.messages(channel.id)[0]
            assert "INC-1" in header.text and "Checkout requests failing" in header.text
        finally:
            await stop_bot_process(first)
            await stop_bot_process(second)


@pytest.mark.parametrize("applied", [True, False], ids=["slack-did-it", "slack-did-not"])
async def test_a_resolution_is_finished_by_another_process_after_kill_9(
    redis_process: RedisServer, applied: bool
) -> None:
    async with SlackStandIn() as slack:
        env = bot_process_env(slack, redis_process.url, INCIDENT_STAKEHOLDER_CHANNEL=MANAGERS)
        ports = [free_port(), free_port()]
        first = await start_bot_process(env, http_healthy(ports[0]), args=["--port", str(ports[0])])
        second = await start_bot_process(env, http_healthy(ports[1]), args=["--port", str(ports[1])])
        final = "INC-1 resolved: Checkout requests failing"
        try:
            user = SlackUser(slack, f"http://127.0.0.1:{ports[0]}/slack/events", SIGNING_SECRET)
            await user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            await eventually(lambda: len(slack.messages(MANAGERS)) == 1, timeout=10)
            channel = slack.channel_by_name(CHANNEL)
            assert channel is not None
            fault = slack.faults.hang(
                "chat.postMessage", 60, applied=applied, match=lambda p: p.get("channel") == channel.id
            )
            reply = await user.slash_command(ALICE, channel.id, "resolve")
            assert "Resolving" in str(reply.body)
            await eventually(lambda: not fault.armed, timeout=10)
            await stop_bot_process(first)

            def resolutions(where: str) -> int:
                return len([m for m in slack.messages(where) if m.text == final])

            await eventually(lambda: resolutions(MANAGERS) == 1, timeout=20)
            await eventually(lambda: "Resolved" in slack.messages(channel.id)[0].text, timeout=10)
            assert resolutions(channel.id) == 1
        finally:
            await stop_bot_process(first)
            await stop_bot_process(second)
