"""The schedule of an incident's "next update" reminders and the managers' digest: what is due,
claimed by one process, queued for delivery once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from bot.effects import OverdueNote, Reminder, Work, reminder_effects
from bot.keys import DIGEST
from bot.models import Claim, Incident, utcnow
from bot.playbook import Playbook
from bot.schedule_store import ScheduleStore
from bot.store import IncidentStore

# At this many reminders without an update, managers are told the update is overdue.
ESCALATE_AT_MISSED = 2


class ReminderDue(BaseModel):
    incident: Incident
    claim: Claim


class DueWork(BaseModel):
    """What the schedule says is due now, claimed by this process alone."""

    reminders: list[ReminderDue] = []
    digests: list[Claim] = []


class ReminderSchedule:
    def __init__(
        self,
        store: IncidentStore,
        schedule: ScheduleStore,
        playbook: Playbook,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.playbook = playbook
        self.clock = clock

    async def claim_due(self) -> DueWork:
        """Reminders and digests due now, claimed by this process alone."""
        due = DueWork()
        claims = await self.schedule.claim_due(self.clock())
        found = await self.store.get_incidents([c.member for c in claims if c.member != DIGEST])
        for claim in claims:
            if claim.member == DIGEST:
                due.digests.append(claim)
                continue
            incident = found.get(claim.member)
            if incident is None or incident.is_resolved:
                await self.schedule.cancel(claim.member)
                continue
            due.reminders.append(ReminderDue(incident=incident, claim=claim))
        return due

    async def queue_reminder(self, due: ReminderDue) -> None:
        """Queue the reminder (and, at the second one, the managers' overdue note) for delivery,
        then confirm the claim. Queuing again for the same claim adds nothing."""
        now = self.clock()
        works: list[Work] = [
            Reminder(missed=due.claim.missed, due_at=due.claim.due_at, late=due.claim.is_late(now))
        ]
        if due.claim.missed == ESCALATE_AT_MISSED:
            works.append(OverdueNote(missed=due.claim.missed))
        effects = reminder_effects(due.incident.revision, due.claim.token, works)
        await self.store.add_effects(due.incident.id, effects, now, once=due.claim.token)
        await self.schedule.confirm(due.claim, now)

    async def digest_sent(self, claim: Claim) -> None:
        await self.schedule.confirm(claim, self.clock())

    async def start_digest(self) -> None:
        """Schedule the managers' digest (keeping an earlier due time another process set)."""
        every = self.playbook.digest_every
        if every is None:
            await self.schedule.cancel(DIGEST)
            return
        await self.schedule.ensure(DIGEST, self.clock() + every, every)
