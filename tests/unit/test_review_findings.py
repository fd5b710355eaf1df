"""Review findings on durable delivery (red-team of the outbox design): each test fails on the
code as it stands. The service and the delivery loop run on fakeredis with a controllable clock
and a recording stand-in for the Slack gateway."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import reminders
from bot.blocks import Rendered
from bot.delivery import Delivery, DeliveryConfig
from bot.errors import StoreUnavailable
from bot.models import Severity
from bot.playbook import load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService, UpdateDraft
from bot.slack_gateway import HISTORY_PAGE, Outcome, Result, SlackGateway
from bot.store import IncidentStore
from handlers.messages import STORE_DOWN, store_problem

if TYPE_CHECKING:
    from tests.conftest import FakeClock


class RecordingSlack:
    """Accepts everything; a post is visible to find_posted once made."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str | None]] = []  # (channel, effect key)

    async def post(self, channel: str, message: Rendered, effect_key: str | None = None) -> Result:
        self.posts.append((channel, effect_key))
        return Result(Outcome.OK, data={"ts": f"{1000 + len(self.posts)}.000100"})

    async def find_posted(
        self, channel: str, effect_key: str, since: datetime, *, join: bool = False
    ) -> Result:
        for i, (c, key) in enumerate(self.posts, start=1):
            if c == channel and key == effect_key:
                return Result(Outcome.OK, data={"ts": f"{1000 + i}.000100"})
        return Result(Outcome.OK)

    async def update_message(self, channel: str, ts: str, message: Rendered) -> Result:
        return Result(Outcome.OK)

    async def post_ephemeral(self, channel: str, user: str, text: str) -> Result:
        return Result(Outcome.OK)

    async def respond(self, response_url: str, message: Rendered) -> Result:
        return Result(Outcome.OK)

    async def invite(self, channel: str, users: list[str]) -> Result:
        return Result(Outcome.OK)


@pytest.fixture
def service(fake_redis: Any, clock: FakeClock) -> IncidentService:
    store = IncidentStore(fake_redis)
    schedule = ScheduleStore(fake_redis)
    return IncidentService(store=store, schedule=schedule, playbook=load_playbook(), clock=clock)


async def test_a_reminder_whose_confirmation_failed_is_posted_once(
    service: IncidentService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reminders.deliver_due: "Not confirmed, so its lease expires and it is queued again then."
    Queuing again is idempotent only while the first queued effect is still in the outbox
    (HSETNX); the delivery loop delivers and deletes it within the 30 s lease, so the re-queued
    one is new work and the reminder is posted a second time (also when the incident's revision
    moved in between: the id then differs outright)."""
    slack = RecordingSlack()
    delivery = Delivery(service, slack, DeliveryConfig(), clock)  # type: ignore[arg-type]
    await service.declare_incident(
        Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1", create_channel=False
    )
    await delivery.deliver_due()
    clock.advance(30 * 60 + 1)  # SEV2: the first reminder is due

    real_confirm = service.schedule.confirm

    async def confirm_fails_once(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(service.schedule, "confirm", real_confirm)
        raise StoreUnavailable("Timeout reading from socket")

    monkeypatch.setattr(service.schedule, "confirm", confirm_fails_once)
    await reminders.deliver_due(service, slack, None, lambda: None)  # type: ignore[arg-type]
    await delivery.deliver_due()
    clock.advance(31)  # the schedule's 30 s lease expires
    await reminders.deliver_due(service, slack, None, lambda: None)  # type: ignore[arg-type]
    await delivery.deliver_due()

    posted = [key for _, key in slack.posts if key and key.endswith(".reminder")]
    assert len(posted) == 1, posted


async def test_a_declaration_stored_but_not_indexed_is_not_told_nothing_was_changed(
    service: IncidentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_incident's second round trip (open index, hint, reminder schedule) fails: the
    incident is stored and its channel will be created, yet the StoreUnavailable says
    written=False and the user reads "nothing was changed. Please try again" (a retry is a new
    trigger_id: a second incident). The incident also never gets reminders nor the digest."""
    store = service.store
    real_pipeline = store._pipeline
    calls = [0]

    async def second_round_trip_fails(*args: Any, **kwargs: Any) -> list[Any]:
        calls[0] += 1
        if calls[0] == 2:
            raise RedisConnectionError("Connection reset by peer")
        return await real_pipeline(*args, **kwargs)

    monkeypatch.setattr(store, "_pipeline", second_round_trip_fails)
    with pytest.raises(StoreUnavailable) as raised:
        await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")
    stored = await store.get_incident("INC-1")  # it was stored
    assert stored.title == "Checkout failing"
    assert store_problem(raised.value) != STORE_DOWN


async def test_an_update_stored_but_not_hinted_is_not_told_nothing_was_saved(
    service: IncidentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update_incident's hint after the write fails: the update is stored, so the modal must not
    say "nothing was saved"."""
    incident = await service.declare_incident(Severity.SEV2, "Checkout failing", "U1", "C0", request_id="r1")

    async def zadd_fails(*args: Any, **kwargs: Any) -> int:
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(service.store.redis, "zadd", zadd_fails)
    draft = UpdateDraft(
        status="Identified", impact="5% fail", current_state="Rolling back", next_update="30m"
    )
    # The update is stored; the hint written before it serves (in 5 s): the user is told it
    # was saved, and it is.
    outcome = await service.post_update(incident.id, incident.uid, draft, "U1", "view:1:h")
    monkeypatch.undo()
    assert outcome.applied
    assert (await service.store.get_incident(incident.id)).last_update is not None


async def test_find_posted_does_not_say_not_there_when_it_stopped_looking() -> None:
    """After 5 pages (1,000 messages) with has_more, find_posted answers OK without a ts, which
    the caller takes as "surely not posted" and posts again."""

    async def history(**kwargs: Any) -> SimpleNamespace:
        messages = [{"ts": f"{2000 - i}.0", "text": "chatter"} for i in range(HISTORY_PAGE)]
        return SimpleNamespace(
            data={
                "ok": True,
                "messages": messages,
                "has_more": True,
                "response_metadata": {"next_cursor": "more"},
            }
        )

    gateway = SlackGateway(SimpleNamespace(conversations_history=history))  # type: ignore[arg-type]
    found = await gateway.find_posted("C0MANAGERS", "uid/0000000.06.announce", datetime(2026, 1, 1))
    assert not (found.ok and "ts" not in found.data), "stopped looking, yet answered 'not posted'"
