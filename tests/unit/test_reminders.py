"""Reminders and escalation driven by a controllable clock, through the real delivery code."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from bot.blocks import Rendered
from bot.delivery import Delivery, DeliveryConfig
from bot.models import Severity, Status
from bot.playbook import load_playbook
from bot.reminders import deliver_due as queue_due
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService, UpdateDraft
from bot.slack_gateway import Outcome, Result, SlackGateway
from bot.store import IncidentStore
from tests.conftest import FakeClock

STAKEHOLDERS = "C0MANAGERS"


class RecordingSlack(SlackGateway):
    """Records what would be posted; every call succeeds."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Rendered]] = []

    async def post(self, channel: str, message: Rendered, effect_key: str | None = None) -> Result:
        self.posts.append((channel, message))
        return Result(Outcome.OK, data={"ts": f"{len(self.posts)}.000000"})

    async def update_message(self, channel: str, ts: str, message: Rendered) -> Result:
        return Result(Outcome.OK)

    async def invite(self, channel: str, users: list[str]) -> Result:
        return Result(Outcome.OK)

    async def create_channel(self, name: str) -> Result:
        return Result(Outcome.OK, data={"channel": {"id": "C0INC", "name": name}})

    def texts(self, channel: str) -> list[str]:
        return [m.text for c, m in self.posts if c == channel]


class Bot:
    def __init__(self, service: IncidentService, slack: RecordingSlack) -> None:
        self.service = service
        config = DeliveryConfig(stakeholder_channel=STAKEHOLDERS)
        self.delivery = Delivery(service, slack, config, service.clock)
        self.slack = slack

    async def deliver_due(self) -> int:
        """Queue what the schedule says is due, then deliver every outbox; returns how many
        reminders and digests fell due."""
        due = await queue_due(self.service, self.slack, STAKEHOLDERS, lambda: None)
        await self.delivery.deliver_due()
        return due


def make(
    redis: aioredis.Redis, clock: FakeClock, tmp_path: object, digest: str = "null"
) -> tuple[Bot, RecordingSlack]:
    path = tmp_path / "playbook.yml"  # type: ignore[operator]
    path.write_text(f"digest_every: {digest}\nseverities:\n  sev2: {{update_every: 4s}}\n")
    service = IncidentService(IncidentStore(redis), ScheduleStore(redis), load_playbook(path), clock)
    slack = RecordingSlack()
    return Bot(service, slack), slack


_requests = iter(range(10**6))


async def declared(deps: Bot) -> str:
    incident = await deps.service.declare_incident(
        Severity.SEV2, "Checkout failing", "U1", "C0GENERAL", request_id=f"r{next(_requests)}"
    )
    await deps.delivery.deliver_due()  # the channel is set up
    deps.slack.posts.clear()
    return incident.id


async def deliver_due(deps: Bot) -> int:
    return await deps.deliver_due()


async def test_reminds_at_each_interval_and_escalates_at_the_second(
    fake_redis: aioredis.Redis, clock: FakeClock, tmp_path: object
) -> None:
    deps, slack = make(fake_redis, clock, tmp_path)
    await declared(deps)
    clock.advance(3.9)
    assert await deliver_due(deps) == 0
    clock.advance(0.1)
    assert await deliver_due(deps) == 1
    assert len(slack.texts("C0INC")) == 1 and slack.texts(STAKEHOLDERS) == []
    assert await deliver_due(deps) == 0  # delivered once, not again on the next poll
    clock.advance(4)
    assert await deliver_due(deps) == 1
    [overdue] = slack.texts(STAKEHOLDERS)
    assert "overdue by 4s" in overdue and "INC-1" in overdue
    clock.advance(4)
    await deliver_due(deps)
    assert len(slack.texts("C0INC")) == 3 and len(slack.texts(STAKEHOLDERS)) == 1


async def test_an_update_resets_the_reminders(
    fake_redis: aioredis.Redis, clock: FakeClock, tmp_path: object
) -> None:
    deps, slack = make(fake_redis, clock, tmp_path)
    incident_id = await declared(deps)
    clock.advance(4)
    await deliver_due(deps)
    clock.advance(1)
    draft = UpdateDraft(status="Identified", impact="some", current_state="fixing", next_update="10s")
    outcome = await deps.service.post_update(incident_id, None, draft, "U2", "r-update")
    await deliver_due(deps)
    assert outcome.incident.next_update_due == clock.now + timedelta(seconds=10)
    clock.advance(9.9)
    assert await deliver_due(deps) == 0
    clock.advance(0.1)
    assert await deliver_due(deps) == 1
    clock.advance(10)
    await deliver_due(deps)  # the second reminder since the update: managers hear of it
    assert len([t for t in slack.texts(STAKEHOLDERS) if "is overdue" in t]) == 1


async def test_resolving_stops_reminders(
    fake_redis: aioredis.Redis, clock: FakeClock, tmp_path: object
) -> None:
    deps, slack = make(fake_redis, clock, tmp_path)
    incident_id = await declared(deps)
    resolved, _ = await deps.service.resolve(incident_id, "U1", "r-resolve")
    assert resolved.status is Status.RESOLVED and resolved.next_update_due is None
    await deliver_due(deps)
    slack.posts.clear()  # the resolution itself
    clock.advance(100)
    assert await deliver_due(deps) == 0
    assert slack.posts == []
    assert await deps.service.open_incidents() == []


async def test_a_severity_change_never_postpones_a_promised_update(
    fake_redis: aioredis.Redis, clock: FakeClock, tmp_path: object
) -> None:
    deps, _ = make(fake_redis, clock, tmp_path)
    incident_id = await declared(deps)  # SEV2, due in 4s
    change = await deps.service.change_severity(incident_id, Severity.SEV4, "U1", "r-a")
    assert change.previous is Severity.SEV2
    assert change.incident.next_update_due == clock.now + timedelta(seconds=4)
    await deps.service.resolve(incident_id, "U1", "r-b")
    other = await declared(deps)
    raised = await deps.service.change_severity(other, Severity.SEV1, "U1", "r-c")
    assert raised.incident.next_update_due == clock.now + timedelta(seconds=4)  # not 15m later
    assert raised.incident.severity is Severity.SEV1


async def test_the_digest_goes_to_stakeholders_on_its_schedule(
    fake_redis: aioredis.Redis, clock: FakeClock, tmp_path: object
) -> None:
    deps, slack = make(fake_redis, clock, tmp_path, digest="60s")
    await deps.service.reminders.start_digest()
    await declared(deps)
    clock.advance(59)
    await deliver_due(deps)
    assert not any("Open incidents" in t for t in slack.texts(STAKEHOLDERS))
    clock.advance(1)
    await deliver_due(deps)
    digests = [t for t in slack.texts(STAKEHOLDERS) if t.startswith("Open incidents")]
    assert digests == ["Open incidents: 1"]
