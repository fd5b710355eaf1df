"""Open incidents written through the service and the store, as the bot leaves them once delivered.

Each seeded incident is declared with the service call the `/incident sevN title` listener makes
(`declare_incident`: record, first timeline event, outbox, open index, reminder schedule). Its
outbox is then recorded as delivered the way the delivery loop records each effect: the channel
attached and indexed, the header's ts, one checklist message per `PostChecklist` (with its
timeline event, and marked as shown), every effect done and the delivery hint dropped. Only the
Slack calls are skipped: the channel is created in the stand-in's workspace directly, with a
placeholder message (no blocks) where the header and each checklist would be, so reminders can be
posted there and re-rendered checklists updated.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from bot import keys
from bot.demo.standin import SlackStandIn
from bot.effects import PostChecklist
from bot.models import ChecklistMessage, EventKind, Incident, Phase, Severity, TimelineEvent
from bot.naming import channel_name
from bot.service import IncidentService
from bot.store import Change

SEVERITIES = (Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4)
DECLARER = "U0ALICE"
ORIGIN_CHANNEL = "C0GENERAL"


@dataclass(frozen=True)
class SeededIncident:
    id: str
    uid: str
    severity: Severity
    channel_id: str


async def seed_one(
    service: IncidentService, slack: SlackStandIn, severity: Severity, title: str, request_id: str
) -> SeededIncident:
    store = service.store
    incident = await service.declare_incident(
        severity, title, DECLARER, ORIGIN_CHANNEL, request_id=request_id
    )
    workspace = slack.workspace
    channel = workspace.create_channel(
        channel_name("inc", incident.number, incident.title), is_private=False, creator=slack.bot.user_id
    )
    effects = await store.outbox(incident.id)
    await store.index_channel(channel.id, incident.id)
    now = service.clock()
    header_ts = _placeholder(slack, channel.id, "header")
    opened = TimelineEvent(at=now, kind=EventKind.CHANNEL, text=f"Opened #{channel.name}")

    def attached(current: Incident) -> Change:
        after = current.in_channel(channel.id, channel.name, True, now).with_header(header_ts, now)
        return Change(after, [opened])

    await store.update_incident(incident.id, attached)
    for effect in effects:
        work = effect.work
        if not isinstance(work, PostChecklist):
            continue
        message = ChecklistMessage(
            channel=channel.id,
            ts=_placeholder(slack, channel.id, f"{work.phase.value} checklist"),
            incident_uid=incident.uid,
            phase=work.phase,
            part=work.part,
            sections=work.sections,
        )
        posted = TimelineEvent(
            at=now,
            kind=EventKind.CHECKLIST_POSTED,
            text=f"Posted the {work.phase.value} checklist ({len(message.item_ids())} items)",
        )

        await store.update_incident(incident.id, _posted(message, posted))
        await store.mark_shown(incident.id, message.ts, 0)
    for effect in effects:
        await store.complete_effect(incident.id, effect.id)
    # What finishing its last claim does in the delivery loop: nothing is left to look at.
    await store.redis.zrem(keys.OUTBOX_DUE, incident.id)
    return SeededIncident(incident.id, incident.uid, severity, channel.id)


def _placeholder(slack: SlackStandIn, channel_id: str, what: str) -> str:
    """A message in the stand-in where the bot would have posted `what`; returns its ts."""
    return slack.workspace.add_message(channel_id=channel_id, text=f"(seeded {what})", blocks=[]).ts


def _posted(message: ChecklistMessage, event: TimelineEvent) -> Callable[[Incident], Change]:
    """The change the delivery loop records once Slack accepted a checklist message."""

    def change(current: Incident) -> Change:
        after = current
        if message.phase is Phase.VERIFY:
            after = current.with_verification(message.ts, event.at)
        return Change(after, [event], checklist=message)

    return change


async def seed_open_incidents(
    service: IncidentService, slack: SlackStandIn, count: int, concurrency: int = 64
) -> list[SeededIncident]:
    """`count` open incidents, severities in turn, written by `concurrency` workers at once."""
    seeded: list[SeededIncident] = []
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            severity = SEVERITIES[n % len(SEVERITIES)]
            seeded.append(await seed_one(service, slack, severity, f"Seeded incident {n}", f"seed:{n}"))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return seeded


def every_nth(items: list[SeededIncident], count: int, offset: int = 0) -> list[SeededIncident]:
    """`count` items spread evenly over `items`, starting at `offset`."""
    step = max(1, len(items) // count)
    return list(itertools.islice(items[offset::step], count))
