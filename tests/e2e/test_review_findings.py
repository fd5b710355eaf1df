"""Review findings on durable delivery (red-team of the outbox design): each test fails on the
code as it stands and shows one concrete way a message is posted twice or out of order."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.delivery import Delivery, DeliveryConfig
from bot.demo.harness import running_bot
from bot.demo.standin import SlackStandIn
from bot.demo.standin.workspace import SeedChannel
from tests.e2e.conftest import connect_like

ALICE, BOB, CAROL, BOT = "U0ALICE", "U0BOB", "U0CAROL", "U0BOT"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"
CHANNEL = "inc-1-checkout-requests-failing"


def _first_post_only() -> object:
    seen = [-1]

    def match(_: dict[str, object]) -> bool:
        seen[0] += 1
        return seen[0] == 0

    return match


async def test_borrowed_channel_keeps_its_order_when_the_header_post_fails() -> None:
    """With channel creation off, the incident's channel *is* the origin channel, but the delivery
    loop blocks Target.INCIDENT and Target.ORIGIN separately: one 503 on the header lets the
    announcement (ORIGIN) overtake the header and the checklists in the same Slack channel."""
    async with SlackStandIn() as slack:
        slack.faults.fail(
            "chat.postMessage", status=503, content_type="text/plain", body="x", match=_first_post_only()
        )
        async with running_bot(slack=slack, create_channels=False) as running:
            await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            await running.settle(timeout=10)
            texts = [m.text for m in slack.messages(GENERAL)]
            assert len(texts) == 4
            assert texts[0].startswith("INC-1 (SEV2)"), texts  # the header first, as without the fault


async def test_borrowed_channel_post_whose_answer_was_lost_is_posted_once() -> None:
    """In a borrowed public channel the bot posts through chat:write.public without being a member;
    the look-up before a retry (join=False for Target.INCIDENT) gets not_in_channel, and the post
    is made again."""
    async with SlackStandIn() as slack:
        slack.faults.close_connection("chat.postMessage", applied=True, match=_first_post_only())
        async with running_bot(slack=slack, create_channels=False) as running:
            await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            await running.settle(timeout=10)
            headers = [m for m in slack.messages(GENERAL) if m.text.startswith("INC-1 (SEV2)")]
            assert len(headers) == 1


async def test_private_stakeholder_channel_post_whose_answer_was_lost_is_posted_once() -> None:
    """The manifest has no groups:history, so conversations.history on a private stakeholder
    channel (the bot invited) answers missing_scope; the refusal is taken as "not there"."""
    managers = SeedChannel(
        id=MANAGERS, name="incident-managers", is_private=True, members=frozenset({ALICE, BOB, CAROL, BOT})
    )
    general = SeedChannel(id=GENERAL, name="general", is_general=True)
    async with SlackStandIn(channels=[general, managers]) as slack:
        slack.faults.close_connection(
            "chat.postMessage", applied=True, match=lambda p: p.get("channel") == MANAGERS
        )
        async with running_bot(slack=slack) as running:
            await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            await running.settle(timeout=10)
            assert len(slack.messages(MANAGERS)) == 1


async def test_a_slow_slack_call_does_not_let_a_second_process_deliver_the_same_outbox(
    real_redis: aioredis.Redis,
) -> None:
    """Default lease and heartbeat (5 s) and the default Slack timeout (10 s). One chat.postMessage
    is slow (7 s, done by Slack at once, answer late). The heartbeat is only renewed between
    deliver_due rounds, so the first process looks dead after 5 s although it is merely waiting
    on Slack; a second process takes its lock over and delivers the same outbox. The first one
    then goes on from its stale snapshot of the outbox and posts everything after it again."""
    config = DeliveryConfig(backoff_base=0.1, backoff_cap=1.0, poll=0.05)
    async with SlackStandIn() as slack:
        slack.faults.hang("chat.postMessage", 7.0, applied=True, match=_first_post_only())
        async with running_bot(
            slack=slack, redis=connect_like(real_redis), delivery=config, slack_timeout=10.0
        ) as running:
            bot = running.bot
            second = Delivery(bot.service, bot.delivery.slack, bot.delivery.config, bot.service.clock)
            second.start()  # another bot process on the same Redis (its own owner token)
            try:
                await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
                await asyncio.sleep(10)
                await running.settle(timeout=10)
            finally:
                await second.stop()
            channel = slack.channel_by_name(CHANNEL)
            assert channel is not None
            # sev2: the header and two checklists, each once; one announcement in each other place.
            assert len(slack.messages(channel.id)) == 3, [m.text[:40] for m in slack.messages(channel.id)]
            assert len(slack.messages(GENERAL)) == 1
            assert len(slack.messages(MANAGERS)) == 1
