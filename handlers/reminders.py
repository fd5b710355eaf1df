"""Delivering due reminders and the managers' digest. Called by the scheduler in bot/."""

from __future__ import annotations

import asyncio
import logging

from bot.blocks import updates as update_blocks
from bot.service import ReminderDue
from bot.store import StoreUnavailable
from handlers.announce import to_stakeholders
from handlers.declare import ApiDeclarer, open_incident
from handlers.deps import Deps

log = logging.getLogger(__name__)

# At this many reminders without an update, managers are told the update is overdue.
ESCALATE_AT_MISSED = 2
DELIVERY_CONCURRENCY = 16


async def deliver_due(deps: Deps) -> int:
    """Post every reminder and digest that is due and claimed by this process; returns how many."""
    try:
        due = await deps.service.claim_due()
    except StoreUnavailable as exc:
        log.warning("reminders not checked, store unavailable: %s", exc)
        return 0
    for setup in due.setups:
        log.warning("finishing the interrupted declaration of %s", setup.incident.id)
        await open_incident(deps, setup.incident, ApiDeclarer(deps, setup.incident))
    # Reminders go to different channels, so many can be in flight at once.
    slots = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def remind(reminder: ReminderDue) -> None:
        async with slots:
            await _remind(deps, reminder)

    results = await asyncio.gather(*(remind(r) for r in due.reminders), return_exceptions=True)
    for reminder, result in zip(due.reminders, results, strict=True):
        if isinstance(result, Exception):
            # Not confirmed, so its lease expires and it is delivered again shortly.
            log.error("reminder for %s failed: %r", reminder.incident.id, result)
    for claim in due.digests:
        incidents = await deps.service.open_incidents()
        now = deps.service.clock()
        pairs = [(i, deps.service.severity_spec(i.severity)) for i in incidents]
        await to_stakeholders(deps, update_blocks.digest(pairs, now))
        await deps.service.digest_sent(claim)
    return len(due.reminders) + len(due.setups) + len(due.digests)


async def _remind(deps: Deps, due: ReminderDue) -> None:
    incident = due.incident
    spec = deps.service.severity_spec(incident.severity)
    now = deps.service.clock()
    if incident.channel_id:
        message = update_blocks.reminder(incident, spec, due.claim, now)
        await deps.slack.post_message(incident.channel_id, message)
    if due.claim.missed == ESCALATE_AT_MISSED:
        await to_stakeholders(deps, update_blocks.overdue_note(incident, spec, now))
    await deps.service.reminder_sent(due)
