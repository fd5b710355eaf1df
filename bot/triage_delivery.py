"""The triage loop: brings each alert group's Slack side up to its record, in every bot process
that delivers.

A group record says what its triage message should show (`revision`) and what Slack last took
(`shown`), and holds the notes it owes its incident (bot.alert_groups). Groups with work are
hinted in `keys.TRIAGE_DUE` and claimed from it with a lease, like incident outboxes, and locked
while one process works on them (a lock held by a process that stopped beating is taken over).
For a group the loop
- puts the notes owed on the incident's timeline (once each, by request id) and lets the
  incident's outbox say them in its channel;
- posts the episode's triage message once, with the episode in its metadata, having recorded the
  attempt first: before trying again after a lost answer it reads the channel back and records
  the message it finds instead of posting a second one;
- updates the message in place until Slack has the newest revision.
What fails for a passing reason (5xx, timeouts, rate limits) is retried with backoff, honouring
Retry-After; a refusal for good is logged once, with what to do, and tried again only when the
message has something new to show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot import keys
from bot.alert_groups import GroupRecord, TriageMessage, TriageState
from bot.blocks import Rendered
from bot.blocks.triage import triage_message
from bot.delivery import GONE_MESSAGE, DeliveryConfig, work_on_claims
from bot.errors import IncidentNotFound
from bot.logs import Throttled
from bot.polling import PollingLoop
from bot.slack_gateway import Result, SlackGateway
from bot.store import OutboxClaim
from bot.triage import AlertTriage

log = logging.getLogger(__name__)

CLAIM_BATCH = 50
# A declared group's message links the incident's channel: wait this long for the channel.
CHANNEL_WAIT = timedelta(seconds=60)
# Steps on one group in one pass: a look-up after a lost answer, a post, an update.
STEPS = 3

WHAT_TO_DO = {
    "not_in_channel": "invite me to it (`/invite @incident-bot`), or set INCIDENT_TRIAGE_CHANNEL to "
    "a channel I can post in",
    "channel_not_found": "check INCIDENT_TRIAGE_CHANNEL (or INCIDENT_STAKEHOLDER_CHANNEL) names a "
    "channel ID that exists, and invite me to it if it is private",
    "is_archived": "unarchive it, or set INCIDENT_TRIAGE_CHANNEL to another channel",
    "missing_scope": "reinstall the app from its manifest so it has the permissions it needs",
}


def _nobody() -> None:
    """No loop to wake."""


def _without(note_id: str) -> Callable[[GroupRecord], GroupRecord]:
    return lambda record: record.note_applied(note_id)


class TriageDelivery:
    def __init__(
        self,
        triage: AlertTriage,
        slack: SlackGateway,
        config: DeliveryConfig,
        *,
        channel: str | None,
        owner: str,
        wake_outbox: Callable[[], None] = _nobody,
    ) -> None:
        self.triage = triage
        self.groups = triage.groups
        self.store = triage.groups.store
        self.slack = slack
        self.config = config
        self.channel = channel  # the triage channel; None: nowhere to post
        self.owner = owner  # this process, as its heartbeat names it (Delivery.owner)
        self.wake_outbox = wake_outbox  # the incident outbox's loop: a note is there to say
        self._loop = PollingLoop(
            self.deliver_due, poll=config.poll, name="incident-bot-triage", logger=log, what="triage"
        )
        self._warn = Throttled(log)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.triage.service.clock

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the group under way (within `grace` seconds), then stop."""
        await self._loop.stop(grace)

    async def deliver_due(self) -> int:
        """Work on every group due now; returns how many were looked at."""
        claims = await self.store.claim_outboxes(
            self.clock(), self.config.lease, CLAIM_BATCH, due=keys.TRIAGE_DUE
        )
        await work_on_claims(claims, self.deliver_group, self.config.concurrency, "triage of alert group %s")
        if len(claims) == CLAIM_BATCH:
            self.wake()
        return len(claims)

    async def deliver_group(self, claim: OutboxClaim) -> None:
        group = claim.incident_id  # the hint set's member: here an alert group's id
        lock = keys.alert_delivery_lock(group)
        if not await self.store.lock(lock, self.owner, self.config.lock):
            await self.store.finish_outbox(claim, self.clock() + timedelta(seconds=1), due=keys.TRIAGE_DUE)
            return
        try:
            again = await self.reconcile(group)
            await self.store.finish_outbox(claim, again, due=keys.TRIAGE_DUE)
        finally:
            await self.store.unlock(lock, self.owner)

    # -- one group ---------------------------------------------------------------------------

    async def reconcile(self, group: str) -> datetime | None:
        """Do what the group's record asks of Slack and of its incident; returns when to look
        again (None: it is up to date)."""
        record = await self.groups.get(group)
        if record is None:
            return None  # expired
        for note in record.notes:
            if record.incident_id is not None and await self.triage.apply_note(record.incident_id, note):
                self.wake_outbox()
            record = await self._save(group, _without(note.id))
            if record is None:
                return None
        for _ in range(STEPS):
            if record.shown >= record.revision:
                return None
            if not await self.store.renew_lock(keys.alert_delivery_lock(group), self.owner, self.config.lock):
                log.warning("alert group %s: lost the triage lock; stopping", group)
                return self.clock()
            if record.not_before is not None and record.not_before > self.clock():
                return record.not_before
            outcome = await self._step(record)
            if isinstance(outcome, datetime):
                return outcome
            if outcome is None:
                return None
            record = outcome
        return self.clock()

    async def _step(self, record: GroupRecord) -> GroupRecord | datetime | None:
        """One Slack call (or none) toward the newest revision: the record after it, or when to
        look again, or None when nothing more can be done now."""
        channel = self.channel
        if channel is None:
            self._warn.warn(
                "no_channel",
                "an alert is not posted: set INCIDENT_TRIAGE_CHANNEL (or INCIDENT_STAKEHOLDER_CHANNEL)",
            )
            await self._save(record.id, lambda r: r.shown_up_to(record.revision))
            return None
        if record.message is None and record.posting_since is not None:
            found = await self.slack.find_posted(channel, record.message_key, record.posting_since, join=True)
            if found.ok and "ts" in found.data:
                log.info("alert group %s: its message was posted before the answer was lost", record.id)
                message = TriageMessage(channel=channel, ts=str(found.data["ts"]))
                return await self._save(record.id, lambda r: r.posted(record.episode, message, 0))
            if not found.ok and found.retryable:
                return await self._back_off(record, found)
            if not found.ok:  # can't look: a second message is better than none
                log.warning("can't check whether alert group %s was posted (%s)", record.id, found.error)
        revision = record.revision
        if record.message is None and not record.wants_message:
            return await self._save(record.id, lambda r: r.shown_up_to(revision))
        rendered = await self._render(record)
        if rendered is None:
            return self.clock() + timedelta(seconds=1)  # its incident's channel is on its way
        if record.message is None:
            attempting = await self._save(record.id, lambda r: r.attempting(self.clock()))
            if attempting is None or attempting.episode != record.episode or attempting.message is not None:
                return attempting  # it moved meanwhile: start again from what it is now
            result = await self.slack.post(channel, rendered, record.message_key)
            if result.ok:
                message = TriageMessage(channel=channel, ts=str(result.data["ts"]))
                return await self._save(record.id, lambda r: r.posted(record.episode, message, revision))
        else:
            result = await self.slack.update_message(record.message.channel, record.message.ts, rendered)
            if result.ok:
                return await self._save(record.id, lambda r: r.shown_up_to(revision))
        if result.retryable:
            return await self._back_off(record, result)
        return await self._refused(record, channel, result, revision)

    async def _render(self, record: GroupRecord) -> Rendered | None:
        """The message for the record; None while the incident it was declared as has no
        channel yet (for a while), so the message can link it."""
        incident = None
        if record.state is TriageState.DECLARED and record.incident_id is not None:
            try:
                incident = await self.triage.service.store.get_incident(record.incident_id)
            except IncidentNotFound:
                incident = None
            waited = self.clock() - (record.declared_at or self.clock())
            opening = incident is not None and incident.channel_id is None and not incident.is_resolved
            if opening and waited < CHANNEL_WAIT:
                return None
        return triage_message(record, self.triage.severity_label(record.alert.severity), incident)

    async def _back_off(self, record: GroupRecord, result: Result) -> datetime:
        if result.retry_after is not None:
            wait = max(result.retry_after, 0.1)
        else:
            wait = min(self.config.backoff_cap, self.config.backoff_base * 2**record.attempts)
        until = self.clock() + timedelta(seconds=wait)
        await self._save(record.id, lambda r: r.backing_off(until))
        return until

    async def _refused(
        self, record: GroupRecord, channel: str, result: Result, revision: int
    ) -> GroupRecord | None:
        error = result.error or "unknown_error"
        if record.refused != error:  # once per error, not at every notification
            if record.message is not None and error in GONE_MESSAGE:
                log.warning(
                    "the triage message of the alert %r is gone from Slack (%s): not updated again "
                    "in this episode",
                    record.alert.summary,
                    error,
                )
            else:
                what = WHAT_TO_DO.get(error, "see Slack's error above")
                log.warning(
                    "Slack refused the triage message of the alert %r in %s: %s. To fix it, %s.",
                    record.alert.summary,
                    channel,
                    error,
                    what,
                )
        return await self._save(record.id, lambda r: r.refused_for_good(error, revision))

    async def _save(self, group: str, change: Callable[[GroupRecord], GroupRecord]) -> GroupRecord | None:
        """Apply `change` to the record as it is stored now (None: it expired)."""

        async def decide(current: GroupRecord | None) -> GroupRecord | None:
            return None if current is None else change(current)

        record, _ = await self.groups.update(group, decide, at=self.clock())
        return record
