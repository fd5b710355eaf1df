"""Ticking checklists together: concurrent ticks, stale clients, unticks, Redis outages."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from bot.demo.harness import RedisServer, Running, running_bot
from bot.demo.standin import Bucket, RateLimitConfig, SlackStandIn
from bot.demo.standin.workspace import Message
from bot.ids import ItemRef
from bot.store import connect
from tests.e2e.conftest import connect_like

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL = "C0GENERAL"


def items(message: Message) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """(block_id, checkboxes element) for each item of a checklist message."""
    return [
        (b["block_id"], e)
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes"
    ]


def ticked(message: Message) -> dict[str, str]:
    """item id -> description ("<@U…> · 14:23 UTC") of every item shown ticked."""
    shown = {}
    for block_id, element in items(message):
        for option in element.get("initial_options", []):
            shown[ItemRef.decode(block_id).k] = option["description"]["text"]
    return shown


async def open_sev2(running: Running) -> tuple[str, Message]:
    await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
    await running.settle()
    channel = running.slack.channel_by_name("inc-1-checkout-requests-failing")
    assert channel is not None
    assess = running.slack.messages(channel.id)[1]
    return channel.id, assess


async def click(
    running: Running,
    user: str,
    channel: str,
    message: Message,
    index: int,
    on: bool,
    snapshot: dict | None = None,
) -> None:  # type: ignore[type-arg]
    shown = message if snapshot is None else None
    _, element = items(shown or message)[index]
    reply = await running.user.click_checkbox(
        user, channel, message.ts, element["action_id"], on, snapshot=snapshot
    )
    assert reply.status == 200


def item_id(message: Message, index: int) -> str:
    return ItemRef.decode(items(message)[index][0]).k


async def test_a_tick_is_stored_and_shows_who_and_when(running: Running) -> None:
    channel, assess = await open_sev2(running)
    await click(running, BOB, channel, assess, 0, True)
    await running.settle()
    now = running.slack.message(channel, assess.ts)
    shown = ticked(now)
    assert list(shown) == [item_id(assess, 0)]
    assert shown[item_id(assess, 0)].startswith(f"<@{BOB}> · ") and shown[item_id(assess, 0)].endswith(" UTC")
    [element] = [e for b, e in items(now) if ItemRef.decode(b).k == item_id(assess, 0)]
    assert element["initial_options"] == element["options"]  # the same option object, so Slack accepts it
    stored = await running.bot.store.ticks("INC-1")
    assert stored[item_id(assess, 0)].by == BOB
    timeline = await running.bot.service.store.timeline("INC-1")
    assert [e.kind for e in timeline][-1] == "ticked" and timeline[-1].by == BOB
    assert running.slack.rejected_calls() == []


async def test_two_people_ticking_different_items_at_once_both_stick(running: Running) -> None:
    channel, assess = await open_sev2(running)
    await asyncio.gather(
        click(running, ALICE, channel, assess, 1, True),
        click(running, BOB, channel, assess, 2, True),
    )
    await running.settle()
    shown = ticked(running.slack.message(channel, assess.ts))
    assert set(shown) == {item_id(assess, 1), item_id(assess, 2)}
    assert set(await running.bot.store.ticks("INC-1")) == set(shown)


async def test_a_stale_client_never_unticks_what_it_had_not_seen(running: Running) -> None:
    channel, assess = await open_sev2(running)
    stale = assess.to_slack()  # Carol's client still shows the untouched list
    await click(running, ALICE, channel, assess, 0, True)
    await running.settle()
    await click(running, CAROL, channel, assess, 3, True, snapshot=stale)
    await running.settle()
    shown = ticked(running.slack.message(channel, assess.ts))
    assert set(shown) == {item_id(assess, 0), item_id(assess, 3)}
    assert shown[item_id(assess, 0)].startswith(f"<@{ALICE}>")


async def test_ticking_an_item_someone_already_ticked_keeps_the_first_tick(running: Running) -> None:
    channel, assess = await open_sev2(running)
    stale = assess.to_slack()
    await click(running, ALICE, channel, assess, 0, True)
    await running.settle()
    await click(running, BOB, channel, assess, 0, True, snapshot=stale)
    await running.settle()
    shown = ticked(running.slack.message(channel, assess.ts))
    assert shown[item_id(assess, 0)].startswith(f"<@{ALICE}>")


async def test_untick(running: Running) -> None:
    channel, assess = await open_sev2(running)
    await click(running, ALICE, channel, assess, 0, True)
    await running.settle()
    await click(running, BOB, channel, running.slack.message(channel, assess.ts), 0, False)
    await running.settle()
    assert ticked(running.slack.message(channel, assess.ts)) == {}
    assert await running.bot.store.ticks("INC-1") == {}
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds[-2:] == ["ticked", "unticked"]


async def test_a_burst_of_ticks_ends_showing_exactly_the_stored_state(running: Running) -> None:
    channel, _ = await open_sev2(running)
    mitigate = running.slack.messages(channel)[2]
    users = [ALICE, BOB, CAROL]
    await asyncio.gather(*(click(running, users[n % 3], channel, mitigate, n, n % 4 != 3) for n in range(12)))
    await running.settle()
    stored = await running.bot.store.ticks("INC-1")
    shown = ticked(running.slack.message(channel, mitigate.ts))
    assert set(shown) == set(stored) and len(shown) == 9
    for item, tick in stored.items():
        assert shown[item].startswith(f"<@{tick.by}>")
    assert running.slack.rejected_calls() == []


async def test_when_redis_is_down_the_user_is_told_and_the_bot_recovers(
    redis_process: RedisServer,
) -> None:
    async with running_bot(redis=connect(redis_process.url)) as running:
        channel, assess = await open_sev2(running)
        redis_process.stop()
        await click(running, BOB, channel, assess, 0, True)
        await running.settle()
        assert any("not* saved" in e.text for e in running.slack.ephemerals(BOB))
        reply = await running.user.slash_command(ALICE, GENERAL, "sev1 Another one")
        assert "nothing was changed" in reply.json_body()["text"]
        await redis_process.start()  # an empty Redis on the same port: the bot reconnects by itself
        reply = await running.user.slash_command(ALICE, GENERAL, "sev3 After the outage")
        # It answers again, and tells the truth: the store came back without its data.
        text = reply.json_body()["text"]
        assert reply.status == 200 and "Nothing was declared" in text and "lost its data" in text
        await running.settle()


async def test_a_playbook_override_changes_only_what_it_names(tmp_path: object) -> None:
    path = tmp_path / "playbook.yml"  # type: ignore[operator]
    path.write_text(
        "severities:\n  sev4:\n    checklists:\n      - title: Custom\n"
        "        items: [Page the owner, Check the dashboard]\n"
    )
    async with running_bot(playbook_path=path) as running:
        await running.user.slash_command(ALICE, GENERAL, "sev4 Small thing")
        await running.settle()
        channel = running.slack.channel_by_name("inc-1-small-thing")
        assert channel is not None
        body = json.dumps([m.blocks for m in running.slack.messages(channel.id)])
        assert "Page the owner" in body and "How many users" not in body
        assert "Minor issue, few users affected" in body  # the rest of sev4 is the built-in


async def test_rate_limited_updates_still_end_showing_the_stored_state(real_redis: aioredis.Redis) -> None:
    """chat.update allows 2 at once then 1 a second: the burst trips it, the bot waits it out."""
    limits = RateLimitConfig(chat_update=Bucket(burst=2, per_second=1.0))
    async with (
        SlackStandIn(rate_limits=True, rate_limit_config=limits) as slack,
        running_bot(slack=slack, redis=connect_like(real_redis)) as running,
    ):
        channel, _ = await open_sev2(running)
        mitigate = running.slack.messages(channel)[2]
        users = [ALICE, BOB, CAROL]
        for wave in range(3):  # three bursts, each racing the previous one's updates
            await asyncio.gather(
                *(click(running, users[n % 3], channel, mitigate, n, (n + wave) % 3 != 0) for n in range(12))
            )
        await running.settle(timeout=15)
        stored = await running.bot.store.ticks("INC-1")
        shown = ticked(running.slack.message(channel, mitigate.ts))
        assert set(shown) == set(stored) and len(stored) == 8
        rejected = running.slack.rejected_calls()
        assert rejected and {(c.method, c.error) for c in rejected} == {("chat.update", "ratelimited")}
