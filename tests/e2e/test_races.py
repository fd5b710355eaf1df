"""Races and repeats over signed HTTP: simultaneous commands, re-sent requests, double clicks, stale
references and a failing re-render. Each ends in exactly one outcome, checked in Slack and in Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis

from bench.redis_proxy import RedisCountingProxy
from bot import keys
from bot.demo.harness import RedisServer, Running, eventually, running_bot, update_modal_values
from bot.demo.standin import SlackStandIn
from bot.demo.standin.payloads import Actor, slash_command_form, view_submission_payload
from bot.demo.standin.user import FORM_CONTENT_TYPE, BotReply
from bot.demo.standin.workspace import DEFAULT_CHANNELS, JsonDict, Message, SeedChannel
from bot.ids import ActionId, ItemRef
from bot.models import EventKind
from bot.store import connect
from handlers.checklists import NOT_AN_ITEM
from handlers.messages import STALE
from tests.e2e.conftest import connect_like

LOST = ":warning: Nothing was changed: the incident store lost its data"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"


# -- helpers -----------------------------------------------------------------------------------


def texts(running: Running, channel: str) -> list[str]:
    return [m.text for m in running.slack.messages(channel)]


def checklists(running: Running, channel: str) -> list[Message]:
    return [m for m in running.slack.messages(channel) if " checklist: " in m.text]


def item_refs(message: Message) -> list[ItemRef]:
    return [
        ItemRef.decode(b["block_id"])
        for b in message.blocks
        if b["type"] == "actions" and any(e["type"] == "checkboxes" for e in b["elements"])
    ]


def tick_action(message: Message, index: int = 0) -> str:
    return str(
        [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]][index]["action_id"]
    )


def body_text(reply: BotReply) -> str | None:
    """What an ack showed the user: its text, or None for an empty ack."""
    assert reply.status == 200, reply
    return None if reply.body is None else str(reply.json_body()["text"])


async def declare(running: Running, text: str, incident_id: str = "INC-1", user: str = ALICE) -> str:
    await running.user.slash_command(user, GENERAL, text)
    await running.settle()
    incident = await running.bot.service.get_incident(incident_id)
    assert incident.channel_id is not None
    return incident.channel_id


async def open_modal(running: Running, user: str, channel: str) -> str:
    before = {v.id for v in running.slack.views()}
    reply = await running.user.slash_command(user, channel, "update")
    assert reply.status == 200
    await running.settle()
    [view] = [v.id for v in running.slack.views() if v.id not in before]
    return view


def actor(running: Running, user: str, channel: str) -> Actor:
    ws = running.slack.workspace
    where = ws.channel(channel)
    assert where is not None
    return Actor(
        user=ws.users[user],
        channel_id=where.id,
        channel_name=where.name,
        bot=running.slack.bot,
        verification_token=running.user.verification_token,
    )


async def post_signed(running: Running, fields: dict[str, str], retry: int = 0) -> BotReply:
    """A form POST signed as Slack signs it; `retry` > 0 adds the headers of Slack's n-th retry."""
    body = urlencode(fields).encode()
    headers = {"Content-Type": FORM_CONTENT_TYPE, **running.user.sign(body)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return await running.user.post_raw(body, headers)


def slash_form(running: Running, user: str, channel: str, text: str, trigger_id: str) -> dict[str, str]:
    return slash_command_form(
        actor(running, user, channel),
        command="/incident",
        text=text,
        response_url=running.slack.new_response_url(channel, user),
        trigger_id=trigger_id,
    )


def submission(running: Running, user: str, view_id: str, values: JsonDict) -> dict[str, str]:
    """The form Slack posts when `user` submits the open modal `view_id` (same view id and hash
    every time it is built)."""
    opened = running.slack.view(view_id)
    payload = view_submission_payload(
        actor(running, user, GENERAL),
        view=opened.to_slack(running.slack.bot, state_values=values),
        trigger_id=running.slack.new_trigger_id(user, view_id=view_id),
    )
    return {"payload": json.dumps(payload)}


async def redis_keys(client: aioredis.Redis) -> set[str]:
    """Every key, except the heartbeat each running bot process renews by itself."""
    return {str(k) for k in await client.keys("*") if not str(k).startswith("process:")}


# -- 1. two people raise the severity at once -------------------------------------------------


async def test_two_simultaneous_raises_to_sev1_make_one_change(running: Running) -> None:
    channel = await declare(running, "sev3 Search is slow")
    before = len(running.slack.messages(channel))
    managers_before = len(running.slack.messages(MANAGERS))
    replies = await asyncio.gather(
        running.user.slash_command(ALICE, channel, "sev1"),
        running.user.slash_command(BOB, channel, "sev1"),
    )
    await running.settle()
    told = sorted((body_text(r) or "" for r in replies), key=len)
    assert told == ["", "*INC-1* is already SEV1; nothing was changed."]

    added = texts(running, channel)[before:]
    note = ":rotating_light: <@{}> raised *INC-1* from SEV3 to *SEV1*"
    assert len(added) == 3
    [raised] = [t for t in added if "raised *INC-1*" in t]
    assert raised.startswith((note.format(ALICE), note.format(BOB)))
    assert sorted(t for t in added if t != raised) == [
        "INC-1 checklist: 1. Assess: Impact? Scope? Trend? (0/2 done)",
        "INC-1 checklist: 2. Mitigate: Can we reduce impact without fixing? (0/8 done)",
    ]
    assert texts(running, MANAGERS)[managers_before:] == [raised]
    # Every item is on exactly one checklist message.
    items = [ref.k for m in checklists(running, channel) for ref in item_refs(m)]
    assert len(items) == len(set(items)) == 4 + 4 + 2 + 8

    incident = await running.bot.service.get_incident("INC-1")
    assert incident.severity.value == "sev1"
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.SEVERITY_CHANGED) == 1
    assert await running.bot.store.outbox("INC-1") == []
    assert running.slack.rejected_calls() == []


# -- 2. two Monitoring updates at once --------------------------------------------------------


async def test_two_simultaneous_monitoring_updates_post_one_verification_checklist(
    running: Running,
) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    bobs = await open_modal(running, BOB, channel)
    carols = await open_modal(running, CAROL, channel)
    replies = await asyncio.gather(
        running.user.submit_view(BOB, bobs, update_modal_values("Monitoring", "Bob's impact", "fix", "15m")),
        running.user.submit_view(
            CAROL, carols, update_modal_values("Monitoring", "Carol's impact", "rolled back", "30m")
        ),
    )
    await running.settle()
    assert [body_text(r) for r in replies] == [None, None]

    verification = [m for m in checklists(running, channel) if "7. Verify" in m.text]
    assert [m.text for m in verification] == [
        "INC-1 checklist: 7. Verify: Confirm resolution via metrics (0/5 done)"
    ]
    for where in (channel, MANAGERS):
        updates = sorted(t for t in texts(running, where) if t.startswith("INC-1 update: "))
        assert updates == [f"INC-1 update: Monitoring. {who}'s impact" for who in ("Bob", "Carol")]

    incident = await running.bot.service.get_incident("INC-1")
    assert incident.verification_ts == verification[0].ts
    timeline = await running.bot.service.store.timeline("INC-1")
    assert sorted(e.by or "" for e in timeline if e.kind is EventKind.STATUS_UPDATE) == [BOB, CAROL]
    verify_posts = [e for e in timeline if e.kind is EventKind.CHECKLIST_POSTED and "verify" in e.text]
    assert len(verify_posts) == 1
    assert running.slack.rejected_calls() == []


# -- 3. two declarations at once in one borrowed channel --------------------------------------

ROOMS = [SeedChannel(id=f"C0ROOM{n}", name=f"war-room-{n}") for n in range(4)]


@pytest.fixture
async def borrowing(real_redis: aioredis.Redis) -> AsyncIterator[Running]:
    """The bot with channel creation off, in a workspace with a few rooms to run incidents in."""
    async with (
        SlackStandIn(channels=[*DEFAULT_CHANNELS, *ROOMS]) as slack,
        running_bot(slack=slack, create_channels=False, redis=connect_like(real_redis)) as running,
    ):
        yield running


async def assert_runs_one(running: Running, room: str, titles: dict[str, str], told: dict[str, str]) -> None:
    """The room runs exactly the incident of whoever was told it was declared; everyone else
    was told that one runs there; nothing of theirs shows anywhere."""
    incident = await running.bot.service.store.incident_for_channel(room)
    assert incident is not None
    incident_id = incident.id
    title = titles[incident.declared_by]
    assert incident.title == title and incident.channel_id == room and not incident.is_resolved
    assert told.pop(incident.declared_by) == (
        f":white_check_mark: *{incident_id}* declared: {title}. Opening its channel…"
    )
    for loser, answer in told.items():
        assert answer.startswith(f"*{incident_id}* already runs in this channel"), answer
        assert "nothing was declared" in answer
        shown = texts(running, room) + texts(running, MANAGERS)
        assert not any(titles[loser] in t for t in shown)
    # It stays reachable where it runs.
    status = body_text(await running.user.slash_command(CAROL, room, "status")) or ""
    assert status.startswith(f"*{incident_id} · SEV2 · {title}*\n")
    kinds = [e.kind for e in await running.bot.service.store.timeline(incident_id)]
    assert EventKind.DELIVERY_FAILED not in kinds


async def test_two_simultaneous_declarations_in_a_borrowed_channel_declare_one(borrowing: Running) -> None:
    """Two people declare at once in each of a few rooms: each room runs exactly one incident."""
    running = borrowing
    titles = {room.id: {ALICE: f"Checkout down {n}", BOB: f"Search slow {n}"} for n, room in enumerate(ROOMS)}
    replies = await asyncio.gather(
        *(
            running.user.slash_command(user, room, f"sev2 {title}")
            for room, by_user in titles.items()
            for user, title in by_user.items()
        )
    )
    await running.settle()
    told = iter(body_text(r) or "" for r in replies)
    for room, by_user in titles.items():
        await assert_runs_one(running, room, by_user, {user: next(told) for user in by_user})
    assert len(await running.bot.store.open_incident_ids()) == len(ROOMS)
    assert running.slack.rejected_calls() == []


@pytest.fixture
async def proxied(redis_process: RedisServer) -> AsyncIterator[tuple[Running, RedisCountingProxy]]:
    """Channel creation off, and Redis behind a proxy that can drop a connection."""
    proxy = RedisCountingProxy("127.0.0.1", redis_process.port)
    await proxy.start()
    try:
        async with running_bot(create_channels=False, redis=connect(proxy.url)) as running:
            yield running, proxy
    finally:
        await proxy.stop()


async def test_a_declaration_arriving_while_another_is_being_stored_is_refused(
    proxied: tuple[Running, RedisCountingProxy],
) -> None:
    """The same race, made certain: the first declaration's write of the incident is retried (its
    Redis connection dropped before the write), and the second arrives in between."""
    running, proxy = proxied
    cut = proxy.cut_before("EVALSHA", match=lambda c: c[2:4] == ("3", keys.incident("INC-1")))
    titles = {ALICE: "Checkout down", BOB: "Search slow"}
    first = asyncio.create_task(running.user.slash_command(ALICE, GENERAL, f"sev2 {titles[ALICE]}"))
    await eventually(lambda: cut.fired == 1)
    second = await running.user.slash_command(BOB, GENERAL, f"sev2 {titles[BOB]}")
    told = {ALICE: body_text(await first) or "", BOB: body_text(second) or ""}
    await running.settle()
    await assert_runs_one(running, GENERAL, titles, told)
    assert await running.bot.store.open_incident_ids() == ["INC-1"]


# -- 4. one modal submitted twice -------------------------------------------------------------


async def test_a_view_submitted_twice_posts_one_update(running: Running) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    view_id = await open_modal(running, BOB, channel)
    values = update_modal_values("Identified", "5% of checkouts fail", "Rolling back", "30m")
    form = submission(running, BOB, view_id, values)
    hash_before = running.slack.view(view_id).hash
    # At once (a double press of Submit), then again after the first was answered (a re-send).
    replies = await asyncio.gather(post_signed(running, form), post_signed(running, form))
    again = await post_signed(running, submission(running, BOB, view_id, values), retry=1)
    await running.settle()
    assert running.slack.view(view_id).hash == hash_before  # the same view, as Slack sends it again
    assert [body_text(r) for r in (*replies, again)] == [None, None, None]
    for where in (channel, MANAGERS):
        updates = [t for t in texts(running, where) if t.startswith("INC-1 update: ")]
        assert updates == ["INC-1 update: Identified. 5% of checkouts fail"]
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.STATUS_UPDATE) == 1


# -- 5. a slash command re-sent with the same trigger_id --------------------------------------


async def test_a_resent_declaration_declares_one_incident_with_one_channel(running: Running) -> None:
    trigger = running.slack.new_trigger_id(ALICE)
    form = slash_form(running, ALICE, GENERAL, "sev2 Checkout requests failing", trigger)
    # Slack's retry can overlap the first request (it retries after 3 s without an answer), or
    # come after it was answered.
    replies = [*await asyncio.gather(post_signed(running, form), post_signed(running, form, retry=1))]
    await running.settle()
    replies.append(await post_signed(running, form, retry=2))
    await running.settle()
    declared = ":white_check_mark: *INC-1* declared: Checkout requests failing. Opening its channel…"
    assert [body_text(r) for r in replies] == [declared] * 3
    assert await running.bot.store.open_incident_ids() == ["INC-1"]
    assert len(running.slack.calls("conversations.create")) == 1
    assert [c.name for c in running.slack.channels() if c.name.startswith("inc-")] == [
        "inc-1-checkout-requests-failing"
    ]
    channel = (await running.bot.service.get_incident("INC-1")).channel_id
    assert channel is not None
    assert len(running.slack.messages(channel)) == 3  # header and two checklists
    for where in (GENERAL, MANAGERS):  # one announcement each
        [announced] = texts(running, where)
        assert "<@U0ALICE> declared *INC-1*" in announced
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.DECLARED) == 1


async def test_a_resent_resolve_posts_one_resolution(running: Running) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    form = slash_form(running, ALICE, channel, "resolve", running.slack.new_trigger_id(ALICE))
    replies = [*await asyncio.gather(post_signed(running, form), post_signed(running, form, retry=1))]
    await running.settle()
    replies.append(await post_signed(running, form, retry=2))
    await running.settle()
    told = [body_text(r) for r in replies]
    resolving = "Resolving *INC-1*. The postmortem draft follows in the channel."
    assert told[0] == resolving
    assert set(told[1:]) <= {resolving, "*INC-1* is already resolved, so nothing was changed."}
    for where in (channel, MANAGERS):
        assert len([t for t in texts(running, where) if t.startswith("INC-1 resolved: ")]) == 1
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.RESOLVED) == 1


async def test_a_resent_update_command_opens_one_modal_and_no_warning(running: Running) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    running.slack.add_to_channel(channel, BOB)  # the raw form skips the stand-in's "join to act"
    form = slash_form(running, BOB, channel, "update", running.slack.new_trigger_id(BOB))
    replies = await asyncio.gather(post_signed(running, form), post_signed(running, form, retry=1))
    await running.settle()
    assert [body_text(r) for r in replies] == [None, None]
    assert [(c.method, c.error) for c in running.slack.calls("views.open")] == [("views.open", None)]
    assert [v.user_id for v in running.slack.views()] == [BOB]
    assert running.slack.ephemerals(BOB) == []  # no "Slack didn't open the form, try again"


# -- 6. a double-clicked "Post update" button -------------------------------------------------


async def test_a_double_clicked_post_update_button_opens_one_modal(running: Running) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    header = running.slack.messages(channel)[0]
    click = ActionId.OPEN_UPDATE.value
    replies = await asyncio.gather(
        running.user.click_button(BOB, channel, header.ts, click),
        running.user.click_button(BOB, channel, header.ts, click),
        running.user.click_button(ALICE, channel, header.ts, click),  # someone else's own modal
    )
    await running.settle()
    assert [r.status for r in replies] == [200, 200, 200]
    assert len(running.slack.calls("views.open")) == 2
    assert sorted(v.user_id for v in running.slack.views()) == [ALICE, BOB]
    assert running.slack.rejected_calls() == []
    assert [e.text for e in running.slack.ephemerals() if e.channel == channel] == []


# -- 7. stale references ----------------------------------------------------------------------


async def test_clicks_and_submissions_for_a_vanished_incident_are_refused(
    running: Running, real_redis: aioredis.Redis
) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    header, assess = running.slack.messages(channel)[:2]
    view_id = await open_modal(running, BOB, channel)
    calls = len(running.slack.calls())
    await real_redis.flushdb()

    button = await running.user.click_button(BOB, channel, header.ts, ActionId.OPEN_UPDATE.value)
    submitted = await running.user.submit_view(
        BOB, view_id, update_modal_values("Identified", "5% fail", "Rolling back", "30m")
    )
    await running.settle()
    # The only write: the store's identity marked lost, so no bot takes the empty store for new.
    assert await redis_keys(real_redis) == {keys.IDENTITY}
    assert str(await real_redis.get(keys.IDENTITY)).startswith("lost:")
    tick = await running.user.click_checkbox(BOB, channel, assess.ts, tick_action(assess), True)
    await running.settle()
    assert (button.status, submitted.status, tick.status) == (200, 200, 200)
    errors = submitted.json_body()["errors"]
    assert errors["impact"].startswith(LOST)
    assert running.slack.view(view_id).is_open  # Slack shows the error in the modal
    told = [e.text for e in running.slack.ephemerals(BOB)]
    assert len(told) == 2 and all(t.startswith(LOST) and "store reset --next-number 2" in t for t in told)
    assert running.slack.calls()[calls:] == []  # no views.open, no chat.update, no post
    assert not any(k.startswith(keys.incident("INC-1")) for k in await redis_keys(real_redis))


async def test_a_refused_tick_writes_nothing_but_a_recheck_hint(
    running: Running, real_redis: aioredis.Redis
) -> None:
    """The hint that the delivery loop re-checks the message goes in the tick's own round trip,
    so it is written before the tick is found stale: a key the loop drops when it looks."""
    channel = await declare(running, "sev2 Checkout requests failing")
    assess = checklists(running, channel)[0]
    await real_redis.flushdb()
    reply = await running.user.click_checkbox(BOB, channel, assess.ts, tick_action(assess), True)
    assert reply.status == 200
    await eventually(lambda: bool(running.slack.ephemerals(BOB)))  # told after the ack
    [told] = [e.text for e in running.slack.ephemerals(BOB)]
    assert told.startswith(LOST)
    assert await redis_keys(real_redis) == {keys.OUTBOX_DUE, keys.IDENTITY}
    assert await real_redis.zrange(keys.OUTBOX_DUE, 0, -1) == ["INC-1"]


async def test_clicks_and_submissions_for_a_renumbered_incident_are_refused(
    running: Running, real_redis: aioredis.Redis
) -> None:
    """Redis lost everything, and whoever runs the bot started afresh numbering from 1 again:
    old buttons, checkboxes and modals must not write into the new INC-1."""
    channel = await declare(running, "sev2 Checkout requests failing")
    header, assess = running.slack.messages(channel)[:2]
    view_id = await open_modal(running, BOB, channel)
    await real_redis.flushdb()
    await running.bot.store.reset_identity(next_number=1)
    await declare(running, "sev3 Search is slow")
    new = await running.bot.service.get_incident("INC-1")
    timeline = await running.bot.service.store.timeline("INC-1")
    calls = len(running.slack.calls())

    tick = await running.user.click_checkbox(BOB, channel, assess.ts, tick_action(assess), True)
    button = await running.user.click_button(BOB, channel, header.ts, ActionId.OPEN_UPDATE.value)
    submitted = await running.user.submit_view(
        BOB, view_id, update_modal_values("Identified", "5% fail", "Rolling back", "30m")
    )
    await running.settle()
    assert (tick.status, button.status, submitted.status) == (200, 200, 200)
    assert submitted.json_body() == {"response_action": "errors", "errors": {"impact": STALE[:150]}}
    assert [e.text for e in running.slack.ephemerals(BOB)] == [NOT_AN_ITEM, STALE]
    assert running.slack.calls()[calls:] == []
    assert await running.bot.service.get_incident("INC-1") == new
    assert await running.bot.service.store.timeline("INC-1") == timeline
    assert await running.bot.store.ticks("INC-1") == {}


async def test_a_checkbox_carrying_another_incidents_uid_is_refused(running: Running) -> None:
    await declare(running, "sev2 Checkout requests failing")
    channel = await declare(running, "sev3 Search is slow", "INC-2")
    uid1 = (await running.bot.service.get_incident("INC-1")).uid
    uid2 = (await running.bot.service.get_incident("INC-2")).uid
    timelines = [await running.bot.service.store.timeline(i) for i in ("INC-1", "INC-2")]
    calls = len(running.slack.calls())

    # INC-2's checklist, its items naming INC-2 with INC-1's uid, then INC-1 with INC-2's uid.
    for forged in ({"u": uid1}, {"i": "INC-1", "u": uid2}):
        message = checklists(running, channel)[0]
        shown = message.to_slack()
        for block in shown["blocks"]:
            if block["type"] == "actions":
                ref = ItemRef.decode(block["block_id"])
                block["block_id"] = ref.model_copy(update=forged).encode()
        reply = await running.user.click_checkbox(
            BOB, channel, message.ts, tick_action(message), True, snapshot=shown
        )
        assert reply.status == 200
    await running.settle()
    assert [e.text for e in running.slack.ephemerals(BOB)] == [NOT_AN_ITEM, NOT_AN_ITEM]
    # Nothing was written or posted (the membership check is a read).
    assert [c.method for c in running.slack.calls()[calls:] if c.method != "conversations.members"] == []
    for incident_id, before in zip(("INC-1", "INC-2"), timelines, strict=True):
        assert await running.bot.store.ticks(incident_id) == {}
        assert await running.bot.service.store.timeline(incident_id) == before


# -- 8. a checklist re-render that fails ------------------------------------------------------


async def test_a_tick_shows_although_its_re_render_failed(running: Running) -> None:
    channel = await declare(running, "sev2 Checkout requests failing")
    assess = checklists(running, channel)[0]
    running.slack.faults.fail("chat.update", times=3, status=500)
    reply = await running.user.click_checkbox(BOB, channel, assess.ts, tick_action(assess), True)
    assert reply.status == 200

    def shown() -> list[str]:
        message = running.slack.message(channel, assess.ts)
        return [
            o["description"]["text"]
            for b in message.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            for o in e.get("initial_options", [])
        ]

    await eventually(lambda: len(shown()) == 1, timeout=8)
    assert shown()[0].startswith(f"<@{BOB}> · ")
    assert len(running.slack.faulted_calls("chat.update")) == 3
    await running.settle()
    assert await running.bot.store.stale_messages("INC-1") == []
    assert list(await running.bot.store.ticks("INC-1")) == [item_refs(assess)[0].k]
