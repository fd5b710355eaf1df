"""Durable Slack delivery: one fault at a time on each Web API call of declare, update, severity
change and resolve; the incident converges to the transcript it has without the fault, each
message exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.demo.harness import QUICK_DELIVERY, Running, eventually, running_bot, update_modal_values
from bot.demo.standin import SlackStandIn
from bot.demo.standin.workspace import Message

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"

Inject = Callable[[SlackStandIn, str, int], object]


def _nth(n: int) -> Callable[[dict[str, object]], bool]:
    """Match only the n-th call (0-based) of a method made after the fault is armed."""
    seen = [-1]

    def match(_: dict[str, object]) -> bool:
        seen[0] += 1
        return seen[0] == n

    return match


FAULTS: dict[str, Inject] = {
    "500-html": lambda s, m, n: s.faults.fail(m, status=500, match=_nth(n)),
    "503-text": lambda s, m, n: s.faults.fail(
        m, status=503, content_type="text/plain", body="upstream unavailable", match=_nth(n)
    ),
    "internal_error": lambda s, m, n: s.faults.error(m, "internal_error", match=_nth(n)),
    "429": lambda s, m, n: s.faults.error(m, "ratelimited", status=429, retry_after=1, match=_nth(n)),
    "hang-done": lambda s, m, n: s.faults.hang(m, 1.0, applied=True, match=_nth(n)),
    "dropped-done": lambda s, m, n: s.faults.close_connection(m, applied=True, match=_nth(n)),
    "dropped-not-done": lambda s, m, n: s.faults.close_connection(m, match=_nth(n)),
    "hang-not-done": lambda s, m, n: s.faults.hang(m, 1.0, applied=False, match=_nth(n)),
}

# (method, which call of it) for each Web API call a declaration makes.
DECLARE_CALLS = [
    ("conversations.create", 0),
    ("conversations.invite", 0),
    ("chat.postMessage", 0),  # header
    ("chat.postMessage", 1),  # first checklist
    ("chat.postMessage", 3),  # announcement where it was declared
    ("chat.postMessage", 4),  # announcement to the stakeholders
]


def transcript(running: Running) -> dict[str, list[str]]:
    """What each channel shows, in order (channel ids replaced by names)."""
    out: dict[str, list[str]] = {}
    names = {c.id: c.name for c in running.slack.channels()}
    for channel in running.slack.channels():
        lines = []
        for m in running.slack.messages(channel.id):
            text = m.text + json.dumps(m.blocks)
            for cid, name in names.items():
                text = text.replace(cid, name)
            lines.append(text)
        if lines:
            out[channel.name] = lines
    return out


async def play(running: Running) -> None:
    """Declare, post an update, raise the severity, resolve; wait for every message."""
    await running.user.slash_command(ALICE, GENERAL, "sev3 Checkout requests failing")
    await eventually(lambda: _incident_channel(running) is not None, timeout=10)
    await running.settle(timeout=15)
    channel = _incident_channel(running)
    assert channel is not None
    await running.user.slash_command(BOB, channel, "update")
    await running.settle(timeout=15)
    [view] = running.slack.views()
    values = update_modal_values("Identified", "5% of checkouts fail", "Rolling back", "30m")
    await running.user.submit_view(BOB, view.id, values)
    await running.settle(timeout=15)
    await running.user.slash_command(ALICE, channel, "sev1")
    await running.settle(timeout=15)
    await running.user.slash_command(ALICE, channel, "resolve")
    await running.settle(timeout=15)


def _incident_channel(running: Running) -> str | None:
    channel = running.slack.channel_by_name("inc-1-checkout-requests-failing")
    return channel.id if channel else None


def _fixed_clock_texts(t: dict[str, list[str]]) -> dict[str, list[str]]:
    """Message texts without times of day, which differ between two runs."""
    import re

    def plain(line: str) -> str:
        line = re.sub(r'"block_id": "(?:[^"\\]|\\.)*"', "", line)  # carries the incident's random uid
        return re.sub(r"\d\d:\d\d(:\d\d)?( UTC)?|\d+s\b|\d+m\d*s?\b", "T", line)

    return {k: [plain(line) for line in v] for k, v in t.items()}


@pytest.fixture(scope="module")
def baseline() -> dict[str, list[str]]:
    import asyncio

    async def run() -> dict[str, list[str]]:
        async with running_bot(slack_timeout=0.5, delivery=QUICK_DELIVERY) as running:
            await play(running)
            return _fixed_clock_texts(transcript(running))

    return asyncio.run(run())


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("call", DECLARE_CALLS, ids=[f"{m}#{n}" for m, n in DECLARE_CALLS])
async def test_declare_converges_after_one_fault(
    fault: str, call: tuple[str, int], baseline: dict[str, list[str]]
) -> None:
    method, nth = call
    async with SlackStandIn() as slack:
        FAULTS[fault](slack, method, nth)
        async with running_bot(slack=slack, slack_timeout=0.5) as running:
            await play(running)
            assert running.slack.rejected_calls() == [] or all(
                c.method == method for c in running.slack.rejected_calls()
            )
            assert _fixed_clock_texts(transcript(running)) == baseline
            faulted = 1 if method == "conversations.create" else 0
            assert len(slack.calls("conversations.create")) - faulted <= 1


@pytest.mark.parametrize("fault", ["500-html", "hang-done", "hang-not-done", "429"])
@pytest.mark.parametrize("nth", [5, 6, 7, 8, 9, 10], ids=lambda n: f"post#{n}")
async def test_update_severity_and_resolve_converge_after_one_fault(
    fault: str, nth: int, baseline: dict[str, list[str]]
) -> None:
    """Posts 5.. are the update (channel, stakeholders), the severity notes and new items, and
    the resolution."""
    async with SlackStandIn() as slack:
        FAULTS[fault](slack, "chat.postMessage", nth)
        async with running_bot(slack=slack, slack_timeout=0.5) as running:
            await play(running)
            assert _fixed_clock_texts(transcript(running)) == baseline


async def test_a_refused_post_is_told_and_recorded() -> None:
    """Slack refuses the stakeholder channel for good: no retry loop, the commander is told what
    to do, the timeline says so, and everything else is delivered."""
    async with SlackStandIn() as slack:
        slack.faults.error(
            "chat.postMessage", "channel_not_found", times=None, match=lambda p: p.get("channel") == MANAGERS
        )
        async with running_bot(slack=slack, slack_timeout=0.5) as running:
            await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            await running.settle(timeout=10)
            channel = _incident_channel(running)
            assert channel is not None and len(running.slack.messages(channel)) == 3
            told = [e.text for e in running.slack.ephemerals(ALICE)]
            assert any("channel_not_found" in t and "invite me" in t for t in told)
            timeline = await running.bot.service.store.timeline("INC-1")
            assert any(e.kind == "delivery_failed" for e in timeline)
            posts = slack.calls("chat.postMessage")
            attempts = len([c for c in posts if c.params.get("channel") == MANAGERS])
            assert attempts == 1


async def test_a_refused_channel_where_the_origin_is_taken_is_told_and_not_retried() -> None:
    """Slack refuses channel creation, and two incidents declared at once in one channel both
    fall back to it: the first runs there, the second's declarer is told why it has no channel,
    and nothing is retried forever."""
    async with (
        SlackStandIn(allow_channel_creation=False) as slack,
        running_bot(slack=slack, slack_timeout=0.5) as running,
    ):
        await asyncio.gather(
            running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing"),
            running.user.slash_command(BOB, GENERAL, "sev3 Search is slow"),
        )
        await running.settle(timeout=10)
        incidents = [await running.bot.service.get_incident(i) for i in ("INC-1", "INC-2")]
        hosted = [i for i in incidents if i.channel_id == GENERAL]
        homeless = [i for i in incidents if i.channel_id is None]
        assert len(hosted) == 1 and len(homeless) == 1
        told = [e.text for e in running.slack.ephemerals(homeless[0].commander)]
        assert any("was closed" in t and f"already runs *{hosted[0].id}*" in t for t in told), told
        # Closed, so no reminder, digest or command looks for it.
        assert (await running.bot.service.get_incident(homeless[0].id)).is_resolved
        assert await running.bot.store.open_incident_ids() == [hosted[0].id]
        for incident in incidents:
            assert [e for e in await running.bot.store.outbox(incident.id) if e.pending] == []
        calls = len(slack.calls())
        await asyncio.sleep(1.5)  # past several retry periods: nothing more is tried
        assert len(slack.calls()) == calls


async def test_managers_hear_of_an_overdue_update_only_after_the_channel_got_its_reminder(
    tmp_path: Path,
) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text("digest_every: null\nseverities:\n  sev2: {update_every: 1s}\n")
    async with SlackStandIn() as slack, running_bot(slack=slack, playbook_path=playbook) as running:
        await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
        await running.settle()
        channel = _incident_channel(running)
        assert channel is not None
        # The second reminder (the one managers hear of) fails three times.
        seen: list[int] = []

        def second_reminder(params: dict[str, object]) -> bool:
            if params.get("channel") != channel or "next status update is due" not in str(params.get("text")):
                return False
            seen.append(1)
            return len(seen) in (2, 3, 4)

        slack.faults.fail("chat.postMessage", times=3, status=503, match=second_reminder)

        def overdue_notes() -> list[Message]:
            return [m for m in slack.messages(MANAGERS) if "is overdue" in m.text]

        await eventually(lambda: len(overdue_notes()) == 1, timeout=10)
        reminders = [m for m in slack.messages(channel) if "next status update is due" in m.text]
        assert len(reminders) >= 2
        assert float(reminders[1].ts) < float(overdue_notes()[0].ts)
        assert "Reminder 2 since the last update" in json.dumps(reminders[1].blocks)


async def test_a_modal_slack_would_not_open_is_told(running: Running) -> None:
    await running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
    await running.settle()
    channel = _incident_channel(running)
    assert channel is not None
    running.slack.faults.error("views.open", "internal_error")
    await running.user.slash_command(BOB, channel, "update")
    await running.settle()
    assert running.slack.views() == []
    assert any("didn't open the update form" in e.text for e in running.slack.ephemerals(BOB))
