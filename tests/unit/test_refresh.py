"""The checklist refresher: coalesces a burst into few updates, never ends on an older state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bot.blocks import Rendered
from bot.models import ChecklistItem, ChecklistMessage, ChecklistSection, MessageState, Phase, Tick
from bot.refresher import ChecklistRefresher
from bot.slack_gateway import Outcome, Result, SlackGateway

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
ITEMS = tuple(ChecklistItem(id=f"i{n}", text=f"Item {n}") for n in range(6))
MESSAGE = ChecklistMessage(
    channel="C1", ts="1.000001", phase=Phase.ASSESS, sections=(ChecklistSection(title="T", items=ITEMS),)
)


def state(rev: int) -> MessageState:
    ticks = {f"i{n}": Tick(by="U1", at=T0) for n in range(rev % 6)}
    return MessageState(incident_id="INC-1", message=MESSAGE, ticks=ticks, rev=rev)


class Store:
    """What Redis holds: the newest revision of the message."""

    def __init__(self, rev: int) -> None:
        self.rev = rev
        self.shown: list[int] = []  # revisions recorded as accepted by Slack

    async def mark_shown(self, incident_id: str, ts: str, rev: int | None) -> int:
        if rev is not None:
            self.shown.append(rev)
        return self.rev

    async def message_state(self, incident_id: str, ts: str) -> MessageState:
        return state(self.rev)


class Slack(SlackGateway):
    def __init__(self, answers: list[Result] | None = None) -> None:
        self.sent: list[str] = []
        self.answers = answers or []

    async def update_message(self, channel: str, ts: str, message: Rendered) -> Result:
        self.sent.append(message.text)
        return self.answers.pop(0) if self.answers else Result(Outcome.OK)


def refresher(store: Store, slack: Slack, **kwargs: Any) -> ChecklistRefresher:
    return ChecklistRefresher(store, slack, min_interval=0.01, **kwargs)  # type: ignore[arg-type]


def done(rev: int) -> str:
    return f"({rev % 6}/6 done)"


async def test_a_burst_becomes_one_update_showing_the_newest_state() -> None:
    store, slack = Store(rev=20), Slack()
    r = refresher(store, slack)
    for rev in range(1, 21):
        r.refresh(state(rev))
    await r.drain()
    assert slack.sent == [slack.sent[0]] and done(20) in slack.sent[0]


async def test_clicks_during_an_update_join_the_next_one() -> None:
    store, slack = Store(rev=1), Slack()
    r = refresher(store, slack)
    r.refresh(state(1))
    await asyncio.sleep(0)  # the first update is on its way
    for rev in range(2, 11):
        store.rev = rev
        r.refresh(state(rev))
    await r.drain()
    assert len(slack.sent) == 2 and done(10) in slack.sent[-1]


async def test_an_older_state_arriving_late_is_not_sent() -> None:
    store, slack = Store(rev=5), Slack()
    r = refresher(store, slack)
    r.refresh(state(5))
    await asyncio.sleep(0)  # the update for rev 5 is on its way
    r.refresh(state(4))
    await r.drain()
    assert slack.sent == [slack.sent[0]] and done(5) in slack.sent[0]


async def test_a_newer_state_in_redis_is_rendered_after_the_update() -> None:
    store, slack = Store(rev=3), Slack()
    r = refresher(store, slack)
    r.refresh(state(2))  # another process already moved Redis to rev 3
    await r.drain()
    assert done(3) in slack.sent[-1]
    assert store.shown == [2, 3]  # each revision Slack accepted is recorded


async def test_a_rate_limited_update_is_retried_until_it_lands() -> None:
    limited = Result(Outcome.TRANSIENT, "ratelimited")
    store, slack = Store(rev=4), Slack(answers=[limited, limited])
    r = refresher(store, slack, retry_delay=0.01)
    r.refresh(state(4))
    await r.drain()
    assert len(slack.sent) == 3 and done(4) in slack.sent[-1]


async def test_a_refused_update_is_not_retried() -> None:
    store, slack = Store(rev=4), Slack(answers=[Result(Outcome.REFUSED, "message_not_found")])
    r = refresher(store, slack, retry_delay=0.01)
    r.refresh(state(4))
    await r.drain()
    assert len(slack.sent) == 1
