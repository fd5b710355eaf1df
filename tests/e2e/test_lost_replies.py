"""Redis ran the write, but its answer was lost on the way back: the user is told the truth and
the incident reaches the state it would have reached, each message once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bench.redis_proxy import RedisCountingProxy
from bot import keys
from bot.demo.harness import RedisServer, Running, running_bot
from bot.models import EventKind
from bot.store import connect

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"


@pytest.fixture
async def proxy(redis_process: RedisServer) -> AsyncIterator[RedisCountingProxy]:
    proxy = RedisCountingProxy("127.0.0.1", redis_process.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def running(proxy: RedisCountingProxy) -> AsyncIterator[Running]:
    async with running_bot(redis=connect(proxy.url)) as running:
        yield running


def _writes_incident(command: tuple[str, ...]) -> bool:
    """The script that writes a change of INC-1: its record first of all the incident's keys."""
    return command[2:4] == (str(len(keys.incident_keys("INC-1"))), "incident:{INC-1}")


def _reads_incident(command: tuple[str, ...]) -> bool:
    return command[1:2] == ("incident:{INC-1}",)


def _creates_incident(command: tuple[str, ...]) -> bool:
    """The script that stores a new incident with its timeline and outbox (three keys)."""
    return command[2:4] == ("3", "incident:{INC-1}")


def _texts(running: Running, channel: str) -> list[str]:
    return [m.text + json.dumps(m.blocks) for m in running.slack.messages(channel)]


async def _declare(running: Running) -> str:
    reply = await running.user.slash_command(ALICE, GENERAL, "sev3 Checkout requests failing")
    assert "INC-1" in reply.json_body()["text"]
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    return incident.channel_id


async def test_a_declaration_whose_reply_was_lost_is_declared_once(
    running: Running, proxy: RedisCountingProxy
) -> None:
    # The script that stores the incident runs; its answer is lost twice over.
    cut = proxy.cut_after("EVALSHA", times=2, match=_creates_incident)
    reply = await running.user.slash_command(ALICE, GENERAL, "sev3 Checkout requests failing")
    assert cut.remaining == 0
    text = reply.json_body()["text"]
    assert "INC-1" in text and "declared" in text and "nothing was changed" not in text
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    assert len(running.slack.messages(incident.channel_id)) == 3  # header, two checklists
    assert len(running.slack.messages(GENERAL)) == 1 and len(running.slack.messages(MANAGERS)) == 1
    assert [e.kind for e in await running.bot.service.store.timeline("INC-1")].count(EventKind.DECLARED) == 1
    assert await running.bot.store.open_incident_ids() == ["INC-1"]


async def test_a_resolution_whose_reply_was_lost_is_posted_once(
    running: Running, proxy: RedisCountingProxy
) -> None:
    channel = await _declare(running)
    cut = proxy.cut_after("EVALSHA", match=_writes_incident)
    reply = await running.user.slash_command(ALICE, channel, "resolve")
    assert cut.remaining == 0
    assert "Resolving" in reply.json_body()["text"]
    await running.settle()
    assert (await running.bot.service.get_incident("INC-1")).is_resolved
    final = "INC-1 resolved: Checkout requests failing"

    def resolutions(channel: str) -> int:
        return len([m for m in running.slack.messages(channel) if m.text == final])

    assert resolutions(channel) == 1 and resolutions(MANAGERS) == 1
    # Trying again tells the truth: it is resolved.
    again = await running.user.slash_command(ALICE, channel, "resolve")
    assert "already resolved" in again.json_body()["text"]
    assert await running.bot.store.open_incident_ids() == []


async def test_a_severity_change_whose_reply_was_lost_is_made_once(
    running: Running, proxy: RedisCountingProxy
) -> None:
    channel = await _declare(running)
    before = len(running.slack.messages(channel))
    cut = proxy.cut_after("EVALSHA", match=_writes_incident)
    reply = await running.user.slash_command(ALICE, channel, "sev1")
    assert cut.remaining == 0 and reply.status == 200
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.severity.value == "sev1"
    notes = [t for t in _texts(running, channel) if "raised" in t]
    assert len(notes) == 1
    assert len([t for t in _texts(running, MANAGERS) if "raised" in t]) == 1
    # The note and the checklist items SEV1 adds, each posted once.
    added = [m.text for m in running.slack.messages(channel)[before:]]
    assert len(added) == len(set(added)) and len(added) >= 2
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.SEVERITY_CHANGED) == 1


async def test_when_no_answer_comes_back_the_user_is_not_told_nothing_changed(
    running: Running, proxy: RedisCountingProxy
) -> None:
    """Every answer is lost until the request's time is up: the reply says it can't tell, and
    the work that was in fact stored is finished all the same."""
    channel = await _declare(running)
    written = proxy.cut_after("EVALSHA", match=_writes_incident)
    # Once the write ran, reading the incident back fails too.
    proxy.cut_before("GET", times=1000, match=lambda c: written.remaining == 0 and _reads_incident(c))
    reply = await running.user.slash_command(ALICE, channel, "resolve")
    text = reply.json_body()["text"]
    assert "can't tell whether it was saved" in text and "nothing was changed" not in text
    proxy.clear_cuts()
    await running.settle(timeout=10)
    assert (await running.bot.service.get_incident("INC-1")).is_resolved
    final = "INC-1 resolved: Checkout requests failing"
    assert len([m for m in running.slack.messages(channel) if m.text == final]) == 1


async def test_a_tick_whose_reply_was_lost_is_saved_once_and_not_called_unsaved(
    running: Running, proxy: RedisCountingProxy
) -> None:
    channel = await _declare(running)
    assess = running.slack.messages(channel)[1]
    action = next(e["action_id"] for b in assess.blocks if b["type"] == "actions" for e in b["elements"])

    def tick_script(command: tuple[str, ...]) -> bool:
        return command[2:4] == ("6", "incident:{INC-1}:messages")  # the tick script's six keys

    cut = proxy.cut_after("EVALSHA", times=2, match=tick_script)  # past redis-py's own retry
    reply = await running.user.click_checkbox(BOB, channel, assess.ts, action, True)
    await running.settle()
    assert cut.remaining == 0 and reply.status == 200
    assert running.slack.ephemerals(BOB) == []  # not told "not saved": it was
    ticks = await running.bot.store.ticks("INC-1")
    assert [t.by for t in ticks.values()] == [BOB]
    kinds = [e.kind for e in await running.bot.service.store.timeline("INC-1")]
    assert kinds.count(EventKind.TICKED) == 1
    assert "initial_options" in json.dumps(running.slack.message(channel, assess.ts).blocks)
