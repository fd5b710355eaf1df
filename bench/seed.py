"""Open incidents written straight through the service, as the bot would leave them.

Each seeded incident goes through the same service calls the bot makes for `/incident sevN
title` (see handlers/declare.py): `declare_incident` (record, first timeline event, open index,
reminder and setup schedule), `attach_channel` (its own channel, indexed), `record_header`,
`setup_finished` and one `record_checklist_message` per checklist message the bot would post.
Only the Slack side is skipped: the channel is created in the stand-in's workspace directly,
and message timestamps come from the stand-in's clock, so reminders can be posted there.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from bot.blocks.checklist import split_sections
from bot.demo.standin import SlackStandIn
from bot.models import ChecklistMessage, Severity
from bot.naming import channel_name
from bot.service import IncidentService

SEVERITIES = (Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4)
DECLARER = "U0ALICE"
ORIGIN_CHANNEL = "C0GENERAL"


@dataclass(frozen=True)
class SeededIncident:
    id: str
    severity: Severity
    channel_id: str


async def seed_one(
    service: IncidentService, slack: SlackStandIn, severity: Severity, title: str
) -> SeededIncident:
    incident = await service.declare_incident(severity, title, DECLARER, ORIGIN_CHANNEL)
    workspace = slack.workspace
    channel = workspace.create_channel(
        channel_name("inc", incident.number, incident.title), is_private=False, creator=slack.bot.user_id
    )
    await service.attach_channel(incident.id, channel.id, channel.name, True, f"Opened #{channel.name}")
    await service.record_header(incident.id, workspace.next_ts())
    await service.setup_finished(incident.id)
    for phase, sections in service.checklists_for(severity).items():
        for part, chunk in enumerate(split_sections(sections), start=1):
            message = ChecklistMessage(
                channel=channel.id, ts=workspace.next_ts(), phase=phase, part=part, sections=chunk
            )
            await service.record_checklist_message(incident.id, message)
    return SeededIncident(incident.id, severity, channel.id)


async def seed_open_incidents(
    service: IncidentService, slack: SlackStandIn, count: int, concurrency: int = 64
) -> list[SeededIncident]:
    """`count` open incidents, severities in turn, written by `concurrency` workers at once."""
    seeded: list[SeededIncident] = []
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            severity = SEVERITIES[n % len(SEVERITIES)]
            seeded.append(await seed_one(service, slack, severity, f"Seeded incident {n}"))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return seeded


def every_nth(items: list[SeededIncident], count: int, offset: int = 0) -> list[SeededIncident]:
    """`count` items spread evenly over `items`, starting at `offset`."""
    step = max(1, len(items) // count)
    return list(itertools.islice(items[offset::step], count))
