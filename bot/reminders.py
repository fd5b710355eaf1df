"""Due reminders and the managers' digest, polled from the shared schedule by every process.

A due reminder is queued into its incident's outbox (with the managers' overdue note at the second
one) and confirmed; the delivery loop posts it. The digest is posted here, confirmed only once
Slack accepted it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.delivery import deliver_digest
from bot.errors import StoreUnavailable
from bot.logs import Throttled
from bot.reminder_schedule import ReminderDue
from bot.service import IncidentService
from bot.slack_gateway import SlackGateway

log = logging.getLogger(__name__)
# The reminder clock polls four times a second: while Redis is away, say so once a minute.
QUIET = Throttled(log)

QUEUE_CONCURRENCY = 16


async def deliver_due(
    service: IncidentService,
    slack: SlackGateway,
    stakeholder_channel: str | None,
    wake: Callable[[], None],
) -> int:
    """Queue every reminder and post every digest due and claimed by this process."""
    try:
        due = await service.reminders.claim_due()
    except StoreUnavailable as exc:
        QUIET.warn("store", "reminders not checked, store unavailable: %s", exc)
        return 0
    slots = asyncio.Semaphore(QUEUE_CONCURRENCY)

    async def queue(reminder: ReminderDue) -> None:
        async with slots:
            try:
                await service.reminders.queue_reminder(reminder)
            except StoreUnavailable as exc:
                # Not confirmed, so its lease expires and it is queued again then.
                QUIET.warn("queue", "reminder for %s not queued: %s", reminder.incident.id, exc)

    # Each reminder is a few round trips to different incidents' keys: many at once.
    await asyncio.gather(*(queue(r) for r in due.reminders))
    if due.reminders:
        wake()
    for claim in due.digests:
        await deliver_digest(service, slack, stakeholder_channel, claim)
    return len(due.reminders) + len(due.digests)
