"""The bot end to end, over HTTP, on a Sentinel-watched master and on a Redis Cluster: the main
flows, a failover in the middle of a stream of ticks, and a store that lost its data.

The failover tests print what they measured (see them with `pytest -s`) and record it as test
properties: how long ticks went unsaved, and how many acknowledged ticks the failover lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.demo.harness import Running, eventually, running_bot, update_modal_values
from bot.demo.standin.workspace import Message
from bot.ids import ActionId, ItemRef
from bot.models import EventKind
from bot.store import connect
from handlers.checklists import TICK_NOT_SAVED
from handlers.messages import STORE_UNSURE
from tests.topologies import ClusterSetup, SentinelSetup

pytestmark = pytest.mark.redis

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"
RecordProperty = Callable[[str, object], None]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=["sentinel", "cluster"])
async def shared_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """REDIS_URL of this run's Sentinel setup or Cluster (shared: nothing here kills them), empty."""
    url = str(request.getfixturevalue(f"{request.param}_url"))
    await _flush(url)
    yield url
    await _flush(url)


@pytest.fixture(params=["redis", "cluster"])
async def losable_url(request: pytest.FixtureRequest, redis_test_url: str) -> AsyncIterator[str]:
    """A single server or this run's Cluster, empty: the data-loss test flushes it."""
    url = redis_test_url if request.param == "redis" else str(request.getfixturevalue("cluster_url"))
    await _flush(url)
    yield url
    await _flush(url)


@pytest.fixture
def reminding_playbook(tmp_path: Path) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text("digest_every: null\nseverities:\n  sev2: {update_every: 2s}\n")
    return path


async def _flush(url: str) -> None:
    client = connect(url)
    try:
        await client.flushdb()  # on a Cluster, every master's
    finally:
        await client.aclose()


def _sentinel_url(setup: SentinelSetup) -> str:
    sentinels = ",".join(f"{h}:{p}" for h, p in setup.sentinel_addresses())
    return f"redis+sentinel://{sentinels}/{setup.master_name}"


def _cluster_url(setup: ClusterSetup) -> str:
    return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in setup.addresses())


# -- helpers ----------------------------------------------------------------------------------


def texts(running: Running, channel: str) -> list[str]:
    return [m.text + json.dumps(m.blocks) for m in running.slack.messages(channel)]


def checklists(running: Running, channel: str) -> list[Message]:
    return [m for m in running.slack.messages(channel) if " checklist: " in m.text]


def checkboxes(message: Message) -> list[tuple[str, str]]:
    """(item id, action id) of every item of a checklist message."""
    return [
        (ItemRef.decode(b["block_id"]).k, e["action_id"])
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes"
    ]


def shown_ticked(message: Message) -> set[str]:
    return {
        ItemRef.decode(b["block_id"]).k
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes" and e.get("initial_options")
    }


def shown_everywhere(running: Running, channel: str) -> set[str]:
    """Every item the channel's checklist messages show ticked."""
    now = [running.slack.message(channel, m.ts) for m in checklists(running, channel)]
    return {item for message in now for item in shown_ticked(message)}


async def declare(running: Running, text: str, incident_id: str) -> str:
    reply = await running.user.slash_command(ALICE, GENERAL, text)
    assert reply.status == 200 and incident_id in reply.json_body()["text"], reply
    await running.settle()
    incident = await running.bot.service.get_incident(incident_id)
    assert incident.channel_id is not None
    return incident.channel_id


async def every_key(client: aioredis.Redis) -> set[str]:
    """Every key on every master (SCAN visits each node of a Cluster), but process heartbeats."""
    return {str(k) async for k in client.scan_iter("*") if not str(k).startswith("process:")}


async def readyz(running: Running) -> tuple[int, dict[str, object]]:
    url = running.url.removesuffix("/slack/events") + "/readyz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


# -- 2. the main flows ------------------------------------------------------------------------


async def test_declare_tick_remind_update_raise_and_resolve(
    shared_url: str, reminding_playbook: Path
) -> None:
    async with running_bot(redis_url=shared_url, playbook_path=reminding_playbook) as running:
        # Declare: a channel with its header and two checklists, the origin and managers told.
        channel = await declare(running, "sev2 Checkout requests failing", "INC-1")
        assert running.slack.channel_by_name("inc-1-checkout-requests-failing") is not None
        assess, mitigate = checklists(running, channel)
        assert len(running.slack.messages(channel)) == 3
        assert any("INC-1" in t for t in texts(running, MANAGERS))
        assert await running.bot.store.open_incident_ids() == ["INC-1"]

        # Tick, and the message shows what Redis holds.
        item, action = checkboxes(assess)[0]
        reply = await running.user.click_checkbox(BOB, channel, assess.ts, action, True)
        assert reply.status == 200
        await running.settle()
        stored = await running.bot.store.ticks("INC-1")
        assert set(stored) == {item} and stored[item].by == BOB
        assert shown_ticked(running.slack.message(channel, assess.ts)) == {item}

        # A reminder, two seconds after the declaration.
        def reminders() -> list[str]:
            return [t for t in texts(running, channel) if "next update for" in t]

        await eventually(lambda: len(reminders()) >= 1, timeout=6)
        assert "<@U0ALICE>" in reminders()[0]

        # An update through the modal.
        before = {v.id for v in running.slack.views()}
        assert (await running.user.slash_command(BOB, channel, "update")).status == 200
        await running.settle()
        [view] = [v.id for v in running.slack.views() if v.id not in before]
        values = update_modal_values("Identified", "5% of checkouts fail", "Rolling back", "15m")
        submitted = await running.user.submit_view(BOB, view, values)
        assert submitted.status == 200 and not submitted.body
        await running.settle()
        assert any("*Status:* Identified" in t and "Rolling back" in t for t in texts(running, channel))
        assert any("*Status:* Identified" in t for t in texts(running, MANAGERS))
        incident = await running.bot.service.get_incident("INC-1")
        assert incident.status.value == "Identified" and incident.last_update is not None

        # A severity change: noted in the channel and to the managers, shown in the header.
        count = len(running.slack.messages(channel))
        assert (await running.user.slash_command(BOB, channel, "sev1")).status == 200
        await running.settle()
        assert (await running.bot.service.get_incident("INC-1")).severity.value == "sev1"
        added = json.dumps([m.blocks for m in running.slack.messages(channel)[count:]])
        assert "raised *INC-1* from SEV2 to *SEV1*" in added
        assert "SEV1" in json.dumps(running.slack.messages(channel)[0].blocks)
        assert any("raised" in t and "SEV1" in t for t in texts(running, MANAGERS))

        # Resolve: the summary everywhere, out of the open index, no more reminders.
        reply = await running.user.slash_command(ALICE, channel, "resolve")
        assert "Resolving" in reply.json_body()["text"]
        await running.settle()
        assert any("is *resolved*" in t for t in texts(running, channel)[-2:])  # then the postmortem
        assert running.slack.files(channel)[0].name == "INC-1-postmortem.md"
        assert any("is *resolved*" in t for t in texts(running, MANAGERS))
        assert (await running.bot.service.get_incident("INC-1")).is_resolved
        assert await running.bot.store.open_incident_ids() == []
        assert await running.bot.service.schedule.due_at("INC-1") is None
        kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
        for kind in (EventKind.DECLARED, EventKind.TICKED, EventKind.SEVERITY_CHANGED):
            assert kind in kinds
        assert kinds.count(EventKind.DECLARED) == 1
        assert running.slack.rejected_calls() == []
        mitigate_now = running.slack.message(channel, mitigate.ts)
        assert shown_ticked(mitigate_now) == set()


# -- 3. a failover in the middle of a stream of ticks -----------------------------------------

CLICKS = 200
CLICK_EVERY = 0.04  # 200 clicks in about 8 s, spread over the workers
KILL_AFTER = 2.0  # seconds into the stream


@dataclass
class Click:
    item: str
    on: bool  # tick (True) or untick
    sent: datetime
    answered: datetime
    status: int  # the HTTP status of the bot's answer; 0 when none came
    warned: bool = False  # the bot said "not saved" or "can't tell" (filled in once replies arrived)
    unsure: bool = False  # it said "can't tell": the master died while the write was in flight
    response_url: str = ""


@dataclass
class Stream:
    clicks: list[Click] = field(default_factory=list)

    def acknowledged(self) -> list[Click]:
        return [c for c in self.clicks if c.status == 200 and not c.warned]


def _newest_response_url(running: Running, user: str) -> str:
    return next(u.id for u in reversed(running.slack.workspace.response_urls.values()) if u.user_id == user)


async def _tick_stream(
    running: Running, channel: str, messages: list[Message], fail_over: Callable[[], Awaitable[float]]
) -> tuple[Stream, float]:
    """CLICKS signed clicks by three people, each on items of their own (so the clicks on one
    item are in order), at a steady pace. KILL_AFTER seconds in, `fail_over()` kills the master
    and returns once another serves, with the seconds that took. Each person ticks an item then
    unticks it, and clicks again what the bot said it did not save."""
    boxes = [(m.ts, item, action) for m in messages for item, action in checkboxes(m)]
    users = [ALICE, BOB, CAROL]
    stream = Stream()
    start = time.monotonic()

    async def person(index: int) -> None:
        mine = boxes[index :: len(users)]
        believed = {item: False for _, item, _ in mine}  # what the bot last said it stored
        due = start
        for n in range(CLICKS // len(users) + (1 if index < CLICKS % len(users) else 0)):
            due = max(due + CLICK_EVERY * len(users), time.monotonic())
            await asyncio.sleep(due - time.monotonic())
            ts, item, action = mine[n % len(mine)]
            on = not believed[item]
            sent = datetime.now(UTC)
            try:
                reply = await running.user.click_checkbox(users[index], channel, ts, action, on)
                status = reply.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            click = Click(item, on, sent, datetime.now(UTC), status, response_url=_newest_response_url(
                running, users[index]
            ))
            stream.clicks.append(click)
            # The reply (a warning, if any) comes over the response_url, after the ack.
            await asyncio.sleep(0.01)
            if status == 200 and not running.slack.workspace.response_urls[click.response_url].uses:
                believed[item] = on

    async def killer() -> float:
        await asyncio.sleep(KILL_AFTER)
        return await fail_over()

    failover, *_ = await asyncio.gather(killer(), *(person(i) for i in range(len(users))))
    return stream, failover


@dataclass
class Losses:
    confirmed: int  # acknowledged clicks whose change the surviving timeline holds
    lost: list[Click]  # acknowledged, should have changed the item, and did not survive
    warned_but_saved: list[Click]  # told "not saved", yet the write landed: a lie
    final_mismatches: dict[str, tuple[bool, bool]]  # item -> (last acknowledged action, stored)


async def _losses(running: Running, stream: Stream) -> Losses:
    """Which acknowledged clicks the surviving data does not hold.

    The ticks and the timeline are written by one script, so the surviving timeline is the
    history of each item. A click that changed its item left an event stamped within the time
    the click was in flight (a person's clicks on one item never overlap). An acknowledged click
    without such an event is lost unless the item already was as it asked (then it changed
    nothing)."""
    timeline = await running.bot.service.store.timeline("INC-1")
    stored = await running.bot.store.ticks("INC-1")
    replies = {r.response_url_id: str(r.payload.get("text")) for r in running.slack.workspace.responses}
    for click in stream.clicks:
        url = running.slack.workspace.response_urls[click.response_url]
        click.warned = url.uses > 0
        click.unsure = replies.get(click.response_url) == STORE_UNSURE
    # Every reply to a click was a warning: not saved, or (when the killed master dropped the
    # connection under a write) can't tell.
    told = [e.text for e in running.slack.ephemerals() if e.source == "response_url"]
    assert set(told) <= {TICK_NOT_SAVED, STORE_UNSURE}, told
    assert len(told) == sum(c.warned for c in stream.clicks)
    confirmed = 0
    lost: list[Click] = []
    warned_but_saved: list[Click] = []
    mismatches: dict[str, tuple[bool, bool]] = {}
    for item in {c.item for c in stream.clicks}:
        events = [e for e in timeline if e.item == item and e.kind in (EventKind.TICKED, EventKind.UNTICKED)]
        state = False
        last_acknowledged: bool | None = None
        for click in sorted((c for c in stream.clicks if c.item == item), key=lambda c: c.sent):
            kind = EventKind.TICKED if click.on else EventKind.UNTICKED
            landed = any(e.kind == kind and click.sent <= e.at <= click.answered for e in events)
            if landed:
                state = click.on
                if click.warned and not click.unsure:
                    warned_but_saved.append(click)
                else:
                    confirmed += 1
            elif click.status == 200 and not click.warned and state != click.on:
                lost.append(click)
            if click.status == 200 and not click.warned:
                last_acknowledged = click.on
        if last_acknowledged is not None and (item in stored) != last_acknowledged:
            mismatches[item] = (last_acknowledged, item in stored)
        assert (item in stored) == state, f"the ticks of {item} disagree with its timeline"
    return Losses(confirmed, lost, warned_but_saved, mismatches)


def _report(
    name: str, running: Running, stream: Stream, losses: Losses, failover: float, record: RecordProperty
) -> None:
    store = running.bot.store
    warned = [c for c in stream.clicks if c.warned]
    acknowledged = stream.acknowledged()
    first_failure = min(c.sent for c in warned)
    recovered = min(c.answered for c in acknowledged if c.sent > max(c.sent for c in warned))
    recovery = (recovered - first_failure).total_seconds()
    slowest = max((c.answered - c.sent).total_seconds() for c in stream.clicks)
    statuses = sorted({c.status for c in stream.clicks})
    print(
        f"\n{name}: {len(stream.clicks)} clicks, {len(acknowledged)} acknowledged, {len(warned)} "
        f"answered 'not saved' ({sum(c.unsure for c in warned)} of them 'can't tell'), "
        f"HTTP statuses {statuses}; failover {failover:.2f}s after the kill; "
        f"ticks unsaved for {recovery:.2f}s (first failure to first success after the last one); "
        f"slowest answer {slowest:.2f}s; acknowledged and found in the timeline: {losses.confirmed}; "
        f"acknowledged writes lost: {len(losses.lost)}; "
        f"'not saved' yet saved: {len(losses.warned_but_saved)}; items whose final state is not "
        f"their last acknowledged action: {len(losses.final_mismatches)}; writes a replica "
        f"confirmed before the answer: {store.confirmed_writes}, not: {store.unconfirmed_writes}"
    )
    record(f"{name}_recovery_seconds", round(recovery, 2))
    record(f"{name}_failover_seconds", round(failover, 2))
    record(f"{name}_acknowledged_lost", len(losses.lost))
    record(f"{name}_warned_but_saved", len(losses.warned_but_saved))
    record(f"{name}_unconfirmed_writes", store.unconfirmed_writes)


async def _watching_readiness(
    running: Running, failed_over: Awaitable[float], readiness: list[tuple[int, str]]
) -> float:
    """Await the failover while asking /readyz every 0.1 s; its answers go to `readiness`."""
    waiting = asyncio.ensure_future(failed_over)
    while not waiting.done():
        status, body = await readyz(running)
        readiness.append((status, str(body["reason"])))
        await asyncio.sleep(0.1)
    return await waiting


async def _check_readiness(running: Running, during: list[tuple[int, str]]) -> None:
    """Not ready while no master served (saying why), ready again once one does."""
    assert any(status == 503 and "Redis" in reason for status, reason in during), during
    assert all(status in (200, 503) for status, _ in during)

    for _ in range(100):  # at most 10 s
        if (await readyz(running))[0] == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready 10 s after the failover: {await readyz(running)}")


def _check(running: Running, stream: Stream, losses: Losses) -> None:
    # Writes waited for the replica until the kill (the promoted one then stands alone), and
    # every acknowledged tick was either confirmed by a replica or counted as not.
    store = running.bot.store
    assert store.replica_wait.replicas == 1 and store.confirmed_writes > 0
    assert store.confirmed_writes + store.unconfirmed_writes >= len(stream.acknowledged())
    assert len(stream.clicks) == CLICKS
    assert all(c.status == 200 for c in stream.clicks), sorted({c.status for c in stream.clicks})
    assert any(c.warned for c in stream.clicks), "the kill should have left some ticks unsaved"
    assert losses.confirmed > len(stream.clicks) // 2
    assert losses.final_mismatches == {}, losses
    assert losses.lost == [], losses
    assert losses.warned_but_saved == [], losses


async def test_a_sentinel_failover_during_a_stream_of_ticks(record_property: RecordProperty) -> None:
    try:
        setup = SentinelSetup()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    async with setup, running_bot(redis_url=_sentinel_url(setup)) as running:
        # Replicas in sync first: a WAIT that timed out on a replica still syncing would pause
        # waiting for 10 s, and the stream would start with no write confirmed.
        await setup.wait_replicated()
        channel = await declare(running, "sev2 Checkout requests failing", "INC-1")
        await setup.wait_replicated()

        readiness: list[tuple[int, str]] = []

        async def fail_over() -> float:
            setup.kill_master()

            async def promoted() -> float:
                return (await setup.wait_for_failover(timeout=20)).seconds

            return await _watching_readiness(running, promoted(), readiness)

        stream, failover = await _tick_stream(running, channel, checklists(running, channel), fail_over)
        await running.settle(timeout=10)
        losses = await _losses(running, stream)
        _report("sentinel", running, stream, losses, failover, record_property)
        _check(running, stream, losses)
        await _check_readiness(running, readiness)
        # The messages end showing what the promoted replica holds.
        assert shown_everywhere(running, channel) == set(await running.bot.store.ticks("INC-1"))


async def test_a_cluster_failover_during_a_stream_of_ticks(record_property: RecordProperty) -> None:
    try:
        setup = ClusterSetup()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    slot_key = keys.incident("INC-1")
    async with setup, running_bot(redis_url=_cluster_url(setup)) as running:
        # Replicas in sync first: a WAIT that timed out on a replica still syncing would pause
        # waiting for 10 s, and the stream would start with no write confirmed.
        await setup.wait_replicated()
        channel = await declare(running, "sev2 Checkout requests failing", "INC-1")
        await setup.wait_replicated()

        readiness: list[tuple[int, str]] = []

        async def fail_over() -> float:
            setup.kill_master_of(slot_key)
            promoted = setup.wait_for_failover(slot_key, timeout=30)
            return await _watching_readiness(running, promoted, readiness)

        stream, failover = await _tick_stream(running, channel, checklists(running, channel), fail_over)
        await running.settle(timeout=10)
        losses = await _losses(running, stream)
        _report("cluster", running, stream, losses, failover, record_property)
        _check(running, stream, losses)
        await _check_readiness(running, readiness)
        assert shown_everywhere(running, channel) == set(await running.bot.store.ticks("INC-1"))


# -- 4. a store that lost its data ------------------------------------------------------------


async def test_a_flushed_store_refuses_everything_until_reset(losable_url: str) -> None:
    observer = connect(losable_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(observer.aclose)
        running = await stack.enter_async_context(running_bot(redis_url=losable_url))
        channel = await declare(running, "sev2 Checkout requests failing", "INC-1")
        await declare(running, "sev3 Search is slow", "INC-2")
        header, assess = running.slack.messages(channel)[:2]
        _, action = checkboxes(assess)[0]
        assert await readyz(running) == (200, {"ready": True, "reason": "ready"})

        await observer.flushall()  # on a Cluster, every master's
        calls = len(running.slack.calls())

        reply = await running.user.slash_command(ALICE, GENERAL, "sev2 Payments down")
        text = reply.json_body()["text"]
        assert "lost its data" in text and "store reset --next-number 3" in text
        status, body = await readyz(running)
        assert status == 503 and "lost its data" in str(body["reason"])

        tick = await running.user.click_checkbox(BOB, channel, assess.ts, action, True)
        button = await running.user.click_button(BOB, channel, header.ts, ActionId.OPEN_UPDATE.value)
        await running.settle()
        assert (tick.status, button.status) == (200, 200)
        told = [e.text for e in running.slack.ephemerals(BOB)]
        assert len(told) == 2 and all("lost its data" in t for t in told)
        # Nothing posted, updated or opened (the membership check is a read).
        assert [c for c in running.slack.calls()[calls:] if c.method != "conversations.members"] == []
        # Nothing written but the identity marked lost and the tick's re-check hint.
        assert await every_key(observer) <= {keys.IDENTITY, keys.OUTBOX_DUE}
        assert str(await observer.get(keys.IDENTITY)).startswith("lost:")

        await running.bot.store.reset_identity(next_number=3)
        reply = await running.user.slash_command(ALICE, GENERAL, "sev2 Payments down")
        assert "INC-3" in reply.json_body()["text"] and "declared" in reply.json_body()["text"]
        await running.settle()
        incident = await running.bot.service.get_incident("INC-3")
        assert incident.channel_id is not None and len(running.slack.messages(incident.channel_id)) == 3
        assert await readyz(running) == (200, {"ready": True, "reason": "ready"})
