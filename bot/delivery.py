"""The delivery loop: performs the Slack work stored in each incident's outbox, in order.

Any bot process may deliver any incident's work. An incident is claimed from the shared hint set
with a lease, and locked while one process delivers it. Each effect is removed from the outbox only
after Slack accepted it (recording what Slack answered, like a message ts, in the same write). A
failure that passes (5xx, timeouts, rate limits) is retried with backoff; one that will not change
is recorded as failed, put on the timeline and told to whom it concerns. Before an effect whose
earlier attempt got no answer is tried again, the bot looks for it in Slack (message metadata,
or the channel list), so nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks import MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.blocks import incident as incident_blocks
from bot.blocks import updates as update_blocks
from bot.blocks.checklist import checklist_message
from bot.blocks.hypotheses import hypotheses_message
from bot.charting import ChartMaker, ChartUnavailable, chart_title
from bot.charts import chart_filename
from bot.effects import (
    Announce,
    Effect,
    EffectState,
    InviteDeclarer,
    Notice,
    OpenChannel,
    OverdueNote,
    PostChecklist,
    PostHeader,
    PostUpdate,
    RefreshHeader,
    Reminder,
    Resolution,
    Say,
    SeverityNote,
    ShowHypotheses,
    Target,
    UploadChart,
    UploadPostmortem,
    Work,
)
from bot.errors import IncidentNotFound, NotAChecklistItem, StoreLost, StoreUnavailable
from bot.investigation import postmortem_filename
from bot.logs import Throttled, incident_context
from bot.metrics import Metrics
from bot.models import (
    ChartNote,
    ChecklistMessage,
    Claim,
    EventKind,
    Incident,
    MessageState,
    Phase,
    TimelineEvent,
    format_duration,
)
from bot.naming import channel_name
from bot.polling import PollingLoop
from bot.service import IncidentService
from bot.slack_gateway import Outcome, Result, SlackGateway
from bot.store import Change, OutboxClaim
from bot.text import escape_mrkdwn

log = logging.getLogger(__name__)

# Refusals of a channel creation that will not change: run in the channel it was declared in.
CHANNEL_REFUSALS = {
    "missing_scope": "the app lacks the scope to create channels",
    "restricted_action": "this workspace restricts who can create channels",
    "no_permission": "the app may not create channels here",
}
# Incidents claimed at a time; a full batch is followed by another at once.
CLAIM_BATCH = 50

# How long the postmortem waits for people's names before it shows them by id.
NAMES_DEADLINE = 5.0

# Refusals of an update that mean the message is no longer there to update.
GONE_MESSAGE = frozenset({"message_not_found", "cant_update_message"})

# Refusals of a post that mean "the bot cannot see or write in that channel".
NOT_THERE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


@dataclass(frozen=True)
class DeliveryConfig:
    stakeholder_channel: str | None = None
    create_channels: bool = True
    channel_prefix: str = "inc"
    lease: float = 5.0  # how long a claimed incident waits before another process looks at it
    lock: float = 60.0  # renewed before each effect; one effect's Slack calls fit well within it
    heartbeat: float = 5.0  # a process silent this long is dead: its locks may be taken over
    budget: float = 15.0  # stop starting new effects of one incident after this long
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    poll: float = 0.25
    concurrency: int = 16


Record = Callable[[Incident], Change]


@dataclass(frozen=True)
class _Step:
    """What one effect's attempt came to, and what to record with its completion: a change
    applied to the incident as stored then (listeners may have changed it meanwhile)."""

    result: Result
    record: Record | None = None
    attempt_saved: bool = False  # the attempt was recorded (in doubt) before the call


class Delivery:
    def __init__(
        self,
        service: IncidentService,
        slack: SlackGateway,
        config: DeliveryConfig,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
        charts: ChartMaker | None = None,
    ) -> None:
        self.service = service
        self.charts = charts  # None: no Prometheus is configured (PROMETHEUS_URL)
        self.store = service.store
        self.slack = slack
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self._loop = PollingLoop(
            self.deliver_due, poll=config.poll, name="incident-bot-delivery", logger=log, what="delivery"
        )
        self._beat_task: asyncio.Task[None] | None = None
        self.owner = secrets.token_hex(8)  # this process, in the locks it holds
        self._beaten_at = 0.0
        self._warn = Throttled(log)

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        """New work was stored by this process: look now rather than at the next poll."""
        self._loop.wake()

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start()
            # Its own task: a delivery waiting on Slack must not look like a dead process.
            self._beat_task = asyncio.create_task(self._beat_forever(), name="incident-bot-heartbeat")

    async def _beat_forever(self) -> None:
        while True:  # until stop() cancels it
            try:
                await self._beat()
            except StoreUnavailable as exc:
                self._warn.warn("beat", "heartbeat not written, store unavailable: %s", exc)
            await asyncio.sleep(self.config.heartbeat / 4)

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the delivery under way (within `grace` seconds), then stop."""
        if self._beat_task is not None:
            self._beat_task.cancel()
            self._beat_task = None
        await self._loop.stop(grace)

    @property
    def idle(self) -> bool:
        return self._loop.idle

    async def _beat(self) -> None:
        """Tell the other processes this one is alive, a few times per heartbeat period."""
        if time.monotonic() - self._beaten_at >= self.config.heartbeat / 4:
            await self.store.heartbeat(self.owner, self.config.heartbeat)
            self._beaten_at = time.monotonic()
            try:
                await self.store.check_identity()  # a data loss is noticed (and marked) within seconds
            except StoreLost as exc:
                self._warn.warn("lost", "%s", exc)

    async def deliver_due(self) -> int:
        """Deliver the outbox of every incident due now; returns how many were looked at."""
        await self._beat()
        claims = await self.store.claim_outboxes(self.clock(), self.config.lease, CLAIM_BATCH)
        await work_on_claims(claims, self.deliver_incident, self.config.concurrency, "delivery for %s")
        if len(claims) == CLAIM_BATCH:
            self.wake()  # more may be due: look again at once, not at the next poll
        return len(claims)

    async def deliver_incident(self, claim: OutboxClaim) -> None:
        token = self.owner
        if not await self.store.lock_outbox(claim.incident_id, token, self.config.lock):
            # Another process is delivering it: look again shortly.
            await self.store.finish_outbox(claim, self.clock() + timedelta(seconds=1))
            return
        try:
            with incident_context(claim.incident_id):
                again = await self._deliver_outbox(claim.incident_id)
            await self.store.finish_outbox(claim, again)
        finally:
            await self.store.unlock_outbox(claim.incident_id, token)

    async def _deliver_outbox(self, incident_id: str) -> datetime | None:
        """Deliver what is pending; returns when to look again (None: nothing left)."""
        started = time.monotonic()
        stored = await self.store.outbox(incident_id)
        effects = [e for e in stored if e.pending]
        # With its channel refused for good, the incident's own messages have nowhere to go.
        no_channel = any(isinstance(e.work, OpenChannel) and not e.pending for e in stored)
        blocked: set[str] = set()  # channels where a message is waiting: later ones keep their order
        again: list[datetime] = []
        later_refresh = {e.id for e in effects if isinstance(e.work, RefreshHeader)}
        later_hypotheses = {e.id for e in effects if isinstance(e.work, ShowHypotheses)}
        for effect in effects:
            if time.monotonic() - started > self.config.budget:
                return self.clock()
            # Still ours? (A process that stalled past its lock stops here: another took over.)
            if not await self.store.renew_outbox_lock(incident_id, self.owner, self.config.lock):
                log.warning("%s: lost the delivery lock; stopping", incident_id)
                return self.clock()
            try:
                incident = await self.store.get_incident(incident_id)
            except IncidentNotFound:
                return None
            target = _target_of(effect)
            channel = self._channel(incident, target) if target is not None else None
            if channel is not None and channel in blocked:
                continue
            if isinstance(effect.work, OverdueNote) and incident.channel_id in blocked:
                continue  # managers hear of a reminder only once the channel has it
            later_refresh.discard(effect.id)
            later_hypotheses.discard(effect.id)
            if isinstance(effect.work, RefreshHeader) and later_refresh:
                await self.store.complete_effect(incident_id, effect.id)  # a later one shows more
                continue
            if (
                isinstance(effect.work, ShowHypotheses)
                and later_hypotheses
                and incident.hypotheses_ts is not None
                and effect.in_doubt_since is None
            ):
                await self.store.complete_effect(incident_id, effect.id)  # an update a later one makes
                continue
            if effect.not_before is not None and effect.not_before > self.clock():
                again.append(effect.not_before)  # backing off (Retry-After, or after failures)
                if channel is not None:
                    blocked.add(channel)
                if isinstance(effect.work, OpenChannel):
                    break
                continue
            if target is Target.INCIDENT and incident.channel_id is None and no_channel:
                # Already told, when the channel was refused: recorded, not told again.
                failed = effect.model_copy(update={"state": EffectState.FAILED, "error": "no_channel"})
                await self.store.save_effect(incident_id, failed)
                continue
            if _superseded(incident, effect):
                await self.store.complete_effect(incident_id, effect.id)
                continue
            try:
                step = await self._attempt(incident, effect)
            except (StoreUnavailable, StoreLost):
                raise
            except Exception as exc:  # a bug, or an answer of an unexpected shape: try later
                log.exception("%s: %s failed", incident_id, effect.id)
                step = _Step(Result(Outcome.TRANSIENT, type(exc).__name__))
            if step.result.ok:
                await self._complete(incident, effect, step.record)
                self._count_delivered(effect, step.result)
            elif step.result.retryable:
                latest = (await self.store.effect(incident_id, effect.id)) or effect
                wait = self._backoff(latest, step.result)
                not_before = self.clock() + timedelta(seconds=wait)
                again.append(not_before)
                update: dict[str, object] = {"not_before": not_before}
                if not step.attempt_saved:
                    update["attempts"] = latest.attempts + 1
                await self.store.save_effect(incident_id, latest.model_copy(update=update))
                if channel is not None:
                    blocked.add(channel)
                if isinstance(effect.work, OpenChannel):
                    break  # nothing in the incident's channel can go before the channel
            else:
                await self._refused(incident, effect, step.result)
                no_channel = no_channel or isinstance(effect.work, OpenChannel)
        stale_retry = await self._refresh_stale_checklists(incident_id)
        if stale_retry is not None:
            again.append(self.clock() + timedelta(seconds=stale_retry))
        return min(again) if again else None

    def _count_delivered(self, effect: Effect, result: Result) -> None:
        """Count what reached the incident's channel: an update, a reminder. Counted once the
        effect is completed, which happens once; a post skipped (a reminder made moot, nowhere to
        post) has no message ts and is not counted."""
        if self.metrics is None or "ts" not in result.data:
            return
        work = effect.work
        if isinstance(work, PostUpdate) and work.target is Target.INCIDENT:
            self.metrics.update_posted()
        elif isinstance(work, Reminder):
            self.metrics.reminder_posted((self.clock() - work.due_at).total_seconds())

    def _backoff(self, effect: Effect, result: Result) -> float:
        if result.retry_after is not None:
            return max(result.retry_after, 0.1)
        wait = self.config.backoff_base * 2 ** max(effect.attempts - 1, 0)
        return float(min(self.config.backoff_cap, wait))

    async def _complete(self, incident: Incident, effect: Effect, record: Record | None) -> None:
        if record is None:
            await self.store.complete_effect(incident.id, effect.id, _delivered_event(effect, self.clock()))
            return

        def complete(current: Incident) -> Change:
            change = record(current)
            change.done_effects.append(effect.id)
            return change

        await self.store.update_incident(incident.id, complete)

    async def _refused(self, incident: Incident, effect: Effect, result: Result) -> None:
        error = result.error or "unknown_error"
        now = self.clock()
        where = self._describe_target(incident, effect)
        event = TimelineEvent(
            at=now, kind=EventKind.DELIVERY_FAILED, text=f"Slack refused {effect.work.kind} {where}: {error}"
        )
        failed = effect.model_copy(update={"state": EffectState.FAILED, "error": error})
        await self.store.save_effect(incident.id, failed, event)
        log.warning("%s: %s %s refused for good: %s", incident.id, effect.work.kind, where, error)
        if isinstance(effect.work, Notice):
            return
        if isinstance(effect.work, OpenChannel):
            # Nowhere to run: closed, so it takes no reminders and no command looks for it.
            await self.service.close_without_channel(incident.id)
            holder = result.data.get("holder", "another incident")
            text = (
                f":warning: *{incident.id}* was closed: Slack refused to create its channel, and "
                f"<#{incident.origin_channel}> already runs *{holder}*. Declare it again from "
                "another channel."
            )
        else:
            text = _what_to_do(incident, effect, where, error)
        notice = Effect(id=f"{effect.id}.notice", work=Notice(user=incident.commander, text=text))
        await self.store.add_effects(incident.id, [notice], now)

    def _describe_target(self, incident: Incident, effect: Effect) -> str:
        channel = self._channel(incident, _target_of(effect) or Target.INCIDENT)
        return f"in <#{channel}>" if channel else ""

    # -- one effect --------------------------------------------------------------------------

    def _channel(self, incident: Incident, target: Target) -> str | None:
        match target:
            case Target.INCIDENT:
                return incident.channel_id
            case Target.ORIGIN:
                return incident.origin_channel
            case Target.STAKEHOLDERS:
                return self.config.stakeholder_channel
            case _:
                assert_never(target)

    async def _attempt(self, incident: Incident, effect: Effect) -> _Step:
        spec = self.service.severity_spec(incident.severity)
        work = effect.work
        now = self.clock()
        match work:
            case OpenChannel():
                return await self._open_channel(incident, effect, work)
            case InviteDeclarer():
                if not incident.dedicated_channel or incident.channel_id is None:
                    return _Step(Result(Outcome.OK))
                return _Step(await self.slack.invite(incident.channel_id, [incident.declared_by]))
            case PostHeader():
                header = incident_blocks.header(incident, spec, dict(self.service.playbook.roles))
                step = await self._post(incident, effect, Target.INCIDENT, header)
                return _recorded(step, lambda current, ts: Change(current.with_header(ts, now)))
            case RefreshHeader():
                if incident.channel_id is None or incident.header_ts is None:
                    return _Step(Result(Outcome.OK))
                rendered = incident_blocks.header(incident, spec, dict(self.service.playbook.roles))
                updated = await self.slack.update_message(incident.channel_id, incident.header_ts, rendered)
                return _Step(updated)
            case PostChecklist():
                return await self._post_checklist(incident, effect, work)
            case Announce():
                return await self._announce(incident, effect, work)
            case PostUpdate():
                rendered = update_blocks.status_update(incident, spec, work.update)
                return await self._post(incident, effect, work.target, rendered)
            case SeverityNote():
                new_spec = self.service.severity_spec(work.severity)
                old_spec = self.service.severity_spec(work.previous)
                rendered = update_blocks.severity_changed(
                    incident, work.previous, work.severity, old_spec, new_spec, work.by
                )
                return await self._post(incident, effect, work.target, rendered)
            case Resolution():
                open_items = await self.service.checklists.open_verification_items(incident)
                rendered = update_blocks.resolution(incident, spec, open_items)
                return await self._post(incident, effect, work.target, rendered)
            case Reminder():
                if incident.is_resolved:
                    return _Step(Result(Outcome.OK))
                claim = Claim(member=incident.id, due_at=work.due_at, token="", missed=work.missed)
                rendered = update_blocks.reminder(incident, spec, claim, now if work.late else work.due_at)
                return await self._post(incident, effect, Target.INCIDENT, rendered)
            case OverdueNote():
                if incident.is_resolved:
                    return _Step(Result(Outcome.OK))
                rendered = update_blocks.overdue_note(incident, spec, now)
                return await self._post(incident, effect, Target.STAKEHOLDERS, rendered)
            case Say():
                blocks = [Block.parse(b) for b in work.blocks] or _said(work)
                rendered = Rendered(text=work.text, blocks=[b for b in blocks if b is not None])
                return await self._post(incident, effect, work.target, rendered)
            case ShowHypotheses():
                rendered = hypotheses_message(incident)
                channel, ts = incident.channel_id, incident.hypotheses_ts
                if ts is not None and channel is not None:
                    updated = await self.slack.update_message(channel, ts, rendered)
                    if updated.error not in GONE_MESSAGE:
                        return _Step(updated)
                    # Deleted (by a person, or a retention policy): the live message starts anew.
                step = await self._post(incident, effect, Target.INCIDENT, rendered)
                return _recorded(
                    step, lambda current, posted: Change(current.with_hypotheses_message(posted, now))
                )
            case UploadPostmortem():
                return await self._upload_postmortem(incident, effect)
            case UploadChart():
                return await self._upload_chart(incident, effect, work)
            case Notice():
                return _Step(await self._notify(incident, work))
            case _:
                assert_never(work)

    async def _upload_postmortem(self, incident: Incident, effect: Effect) -> _Step:
        """Upload the draft as the incident stands now; an upload whose answer was lost is
        looked for (a file of that name shared since) before uploading again."""
        channel = incident.channel_id
        if channel is None:
            return _Step(Result(Outcome.TRANSIENT, "no_channel_yet"))
        filename = postmortem_filename(incident)
        # Every draft has the same file name; its title names the change that asked for it, so a
        # look-up finds this upload and never an earlier draft.
        title = f"{incident.id} postmortem draft, revision {int(effect.id.split('.')[0])}"

        if not incident.dedicated_channel:
            # Posting in a borrowed channel needs no membership (chat:write.public); sharing a
            # file there, or reading its history, does: join it (a public one; a private one
            # it was invited to).
            await self.slack.join(channel)
        if effect.in_doubt_since is not None:
            found = await self.slack.find_file(channel, filename, title, effect.in_doubt_since)
            if not found.ok or "file" in found.data:
                return _Step(found)
        draft = await self.service.investigation.postmortem_draft(incident.id)
        try:  # names are a nicety: a slow Slack must not hold the incident's lock for long
            names = await asyncio.wait_for(self.slack.user_names(draft.people), NAMES_DEADLINE)
        except TimeoutError:
            names = {}
        content = draft.markdown(lambda user: names.get(user, user) if user else "incident-bot")
        await self._in_doubt(incident, effect)
        uploaded = await self.slack.upload_file(channel, filename, title, content)
        return _Step(uploaded, attempt_saved=True)

    async def _upload_chart(self, incident: Incident, effect: Effect, work: UploadChart) -> _Step:
        """Draw the chart and upload it with each panel's latest value in its comment; record it on
        the incident. An upload whose answer was lost is looked for (by file name and title)
        before drawing again. When there can be no chart (no Prometheus, a failing query, a
        service without queries), a message in the channel says why, and the effect is done."""
        channel = incident.channel_id
        if channel is None:
            return _Step(Result(Outcome.TRANSIENT, "no_channel_yet"))
        title = chart_title(incident.id, work)
        if not incident.dedicated_channel:
            await self.slack.join(channel)  # sharing a file in a borrowed channel needs membership
        if effect.in_doubt_since is not None and work.latest is not None:
            found = await self.slack.find_file(
                channel, chart_filename(incident.id, work.service), title, effect.in_doubt_since
            )
            if not found.ok:
                return _Step(found)
            if "file" in found.data:
                log.info("%s: %s was uploaded before its answer was lost", incident.id, effect.id)
                return _Step(found, _chart_recorded(incident, work, work.latest, self.clock()))
        if self.charts is None:
            why = "no Prometheus is configured (`PROMETHEUS_URL`)"
            return _Step(Result(Outcome.OK), _chart_failed(work, why, self.clock()))
        try:
            drawn = await self.charts.draw(incident, work)
        except ChartUnavailable as exc:
            log.warning("%s: no %s chart: %s", incident.id, work.service, exc)
            return _Step(Result(Outcome.OK), _chart_failed(work, str(exc), self.clock()))
        latest = drawn.latest
        await self._in_doubt(incident, effect, work.model_copy(update={"latest": latest}))
        uploaded = await self.slack.upload_file(
            channel, drawn.filename, title, drawn.png, comment=drawn.comment, alt_text=drawn.alt_text
        )
        return _Step(uploaded, _chart_recorded(incident, work, latest, self.clock()), attempt_saved=True)

    async def _post(self, incident: Incident, effect: Effect, target: Target, message: Rendered) -> _Step:
        """Post once: if an earlier attempt's answer was lost, look for it before posting again."""
        channel = self._channel(incident, target)
        if channel is None:
            if target is Target.STAKEHOLDERS:
                return _Step(Result(Outcome.OK))  # no stakeholder channel is configured
            return _Step(Result(Outcome.TRANSIENT, "no_channel_yet"))
        key = f"{incident.uid}/{effect.id}"
        if effect.in_doubt_since is not None:
            found = await self.slack.find_posted(
                channel,
                key,
                effect.in_doubt_since,
                # Reading a channel needs membership: the bot is in the channels it created.
                join=not (incident.dedicated_channel and channel == incident.channel_id),
            )
            if found.ok and "ts" in found.data:
                log.info("%s: %s was posted before its answer was lost", incident.id, effect.id)
                return _Step(found)
            if not found.ok:
                log.warning("%s: can't check whether %s was posted (%s)", incident.id, effect.id, found.error)
                if found.retryable:
                    return _Step(found)
        # Recorded before the call: if no answer comes (or this process dies), the next attempt
        # knows to look before posting again.
        await self._in_doubt(incident, effect)
        return _Step(await self.slack.post(channel, message, key), attempt_saved=True)

    async def _in_doubt(self, incident: Incident, effect: Effect, work: Work | None = None) -> None:
        """Record an attempt before making it; the first one's time bounds the later look-ups.
        `work`: the effect's work as this attempt completed it (what a look-up then records)."""
        since = effect.in_doubt_since or self.clock()
        update: dict[str, object] = {"attempts": effect.attempts + 1, "in_doubt_since": since}
        if work is not None:
            update["work"] = work
        attempted = effect.model_copy(update=update)
        await self.store.save_effect(incident.id, attempted)

    async def _post_checklist(self, incident: Incident, effect: Effect, work: PostChecklist) -> _Step:
        draft = ChecklistMessage(
            channel=incident.channel_id or "",
            ts="",
            incident_uid=incident.uid,
            phase=work.phase,
            part=work.part,
            sections=work.sections,
        )
        rendered = checklist_message(MessageState(incident_id=incident.id, message=draft, ticks={}, rev=0))
        # Item ids carry the incident's unique id, so clicks on it reach only this incident.
        step = await self._post(incident, effect, Target.INCIDENT, rendered)
        if not step.result.ok:
            return step
        ts = str(step.result.data["ts"])
        message = draft.model_copy(update={"ts": ts, "channel": incident.channel_id or ""})
        count = len(message.item_ids())
        event = TimelineEvent(
            at=self.clock(),
            kind=EventKind.CHECKLIST_POSTED,
            text=f"Posted the {work.phase.value} checklist ({count} items)",
        )
        now = self.clock()

        def record(current: Incident) -> Change:
            after = current.with_verification(ts, now) if work.phase is Phase.VERIFY else current
            return Change(after, [event], checklist=message)

        return _Step(step.result, record)

    async def _announce(self, incident: Incident, effect: Effect, work: Announce) -> _Step:
        if work.target is Target.ORIGIN and incident.origin_channel == self.config.stakeholder_channel:
            # Declared in the stakeholder channel (by hand, or from an alert triaged there): its
            # stakeholders' copy is the announcement; a second would say the same twice.
            return _Step(Result(Outcome.OK))
        rendered = incident_blocks.announcement(
            incident, self.service.severity_spec(incident.severity), incident.channel_note
        )
        step = await self._post(incident, effect, work.target, rendered)
        if step.result.error in NOT_THERE and work.response_url:
            # The bot can't post where /incident was typed (a DM, a private channel): answer there
            # through the command's response_url instead.
            return _Step(await self.slack.respond(work.response_url, rendered))
        return step

    async def _notify(self, incident: Incident, work: Notice) -> Result:
        result = Result(Outcome.REFUSED, "no_channel")
        for channel in dict.fromkeys(c for c in (incident.channel_id, incident.origin_channel) if c):
            result = await self.slack.post_ephemeral(channel, work.user, work.text)
            if result.ok or result.retryable:
                return result
        return result

    async def _open_channel(self, incident: Incident, effect: Effect, work: OpenChannel) -> _Step:
        if incident.channel_id is not None:
            return _Step(Result(Outcome.OK))
        if not work.create:
            note = "Running in the channel it was declared in: channel creation is switched off."
            return await self._borrow_origin(incident, note)
        name = channel_name(self.config.channel_prefix, incident.number, incident.title)
        if effect.in_doubt_since is not None:
            found = await self.slack.find_created_channel(name, effect.in_doubt_since)
            if found.retryable:
                return _Step(found)
            if not found.ok:
                # Can't look (e.g. installed before channels:read): a second channel (`-2`) is
                # better than none.
                log.warning("%s: can't look for a channel created earlier: %s", incident.id, found.error)
            if "channel" in found.data:
                return await self._attach_created(incident, found.data["channel"])
        await self._in_doubt(incident, effect)
        created = await self.slack.create_channel(name)
        if created.ok:
            return await self._attach_created(incident, created.data["channel"])
        if created.retryable:
            return _Step(created, attempt_saved=True)
        reason = CHANNEL_REFUSALS.get(created.error or "", f"Slack refused ({created.error})")
        return await self._borrow_origin(
            incident, f"Running in the channel it was declared in: {reason} to create a channel."
        )

    async def _attach_created(self, incident: Incident, channel: dict[str, object]) -> _Step:
        channel_id, name = str(channel["id"]), str(channel["name"])
        await self.store.index_channel(channel_id, incident.id)
        await self.service.ensure_tracked(incident)  # in case the declaration's last step failed
        event = TimelineEvent(at=self.clock(), kind=EventKind.CHANNEL, text=f"Opened #{name}")
        return _Step(Result(Outcome.OK), _attach(channel_id, name, True, event))

    async def _borrow_origin(self, incident: Incident, note: str) -> _Step:
        holder = await self.store.claim_channel(incident.origin_channel, incident.id)
        if holder is not None:
            log.warning("%s: no channel of its own, and its origin runs %s", incident.id, holder)
            return _Step(Result(Outcome.REFUSED, "channel_taken", data={"holder": holder}))
        await self.service.ensure_tracked(incident)
        event = TimelineEvent(at=self.clock(), kind=EventKind.CHANNEL, text=note)
        return _Step(Result(Outcome.OK), _attach(incident.origin_channel, None, False, event, note))

    # -- checklist messages ------------------------------------------------------------------

    async def _refresh_stale_checklists(self, incident_id: str) -> float | None:
        """Re-render checklist messages whose newest state Slack has not accepted; returns when
        to try again if Slack failed."""
        retry_in: float | None = None
        for ts in await self.store.stale_messages(incident_id):
            try:
                state = await self.store.message_state(incident_id, ts)
            except NotAChecklistItem:
                continue
            result = await self.slack.update_message(state.message.channel, ts, checklist_message(state))
            if result.ok or not result.retryable:
                if not result.ok:
                    log.warning("%s: checklist %s can't be re-rendered: %s", incident_id, ts, result.error)
                await self.store.mark_shown(incident_id, ts, state.rev)  # newest read again later
            else:
                wait = result.retry_after or self.config.backoff_base
                retry_in = wait if retry_in is None else min(retry_in, wait)
        return retry_in


async def work_on_claims(
    claims: list[OutboxClaim],
    work: Callable[[OutboxClaim], Awaitable[None]],
    concurrency: int,
    what: str,
) -> None:
    """`work` on each claim, `concurrency` at a time. One that fails is logged (`what` names it,
    with %s for the claimed member); its lease expires and it is claimed again then."""
    slots = asyncio.Semaphore(concurrency)

    async def one(claim: OutboxClaim) -> None:
        async with slots:
            await work(claim)

    results = await asyncio.gather(*(one(c) for c in claims), return_exceptions=True)
    for claim, result in zip(claims, results, strict=True):
        if isinstance(result, Exception):
            log.error(what + " failed: %r", claim.incident_id, result)


def _target_of(effect: Effect) -> Target | None:
    work = effect.work
    match work:
        case Announce() | PostUpdate() | SeverityNote() | Resolution():
            return work.target
        case OverdueNote():
            return Target.STAKEHOLDERS
        case Say():
            return work.target
        case Notice() | OpenChannel():
            return None
        case (
            InviteDeclarer()
            | PostHeader()
            | RefreshHeader()
            | PostChecklist()
            | Reminder()
            | ShowHypotheses()
            | UploadPostmortem()
            | UploadChart()
        ):
            return Target.INCIDENT
        case _:
            assert_never(work)


def _said(work: Say) -> list[Block]:
    """One section (and a context line): the text is composed safe, cut without breaking markup."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=fmt.clip(work.text, MAX_SECTION_TEXT)))]
    if work.context:
        context = MarkdownTextObject(text=fmt.clip(work.context, MAX_SECTION_TEXT))
        blocks.append(ContextBlock(elements=[context]))
    return blocks


def _recorded(step: _Step, record: Callable[[Incident, str], Change]) -> _Step:
    """The step, recording the ts of the message Slack accepted."""
    if not step.result.ok:
        return step
    ts = str(step.result.data["ts"])
    return _Step(step.result, lambda current: record(current, ts))


def _attach(
    channel_id: str, name: str | None, dedicated: bool, event: TimelineEvent, note: str | None = None
) -> Record:
    def record(current: Incident) -> Change:
        if current.channel_id is not None:
            return Change(current)
        return Change(current.in_channel(channel_id, name, dedicated, event.at, note), [event])

    return record


def _chart_recorded(incident: Incident, work: UploadChart, latest: dict[str, str], now: datetime) -> Record:
    """The chart on the incident (for the postmortem) and on its timeline."""
    note = ChartNote(
        service=work.service,
        window=work.window,
        end=work.end,
        latest=latest,
        file=chart_filename(incident.id, work.service),
    )
    values = "; ".join(f"{escape_mrkdwn(title)}: {value}" for title, value in latest.items())
    text = f"uploaded the {escape_mrkdwn(work.service)} metrics chart ({format_duration(work.window)})"
    event = TimelineEvent(at=now, kind=EventKind.CHART, text=f"{text}: {values}" if values else text)

    def record(current: Incident) -> Change:
        return Change(current.with_chart(note, now), [event])

    return record


def _chart_failed(work: UploadChart, why: str, now: datetime) -> Record:
    """No chart: said in the channel (a message of its own, delivered like any other) and on the
    timeline. `why` is safe mrkdwn."""
    service = escape_mrkdwn(work.service)
    said = Say(
        target=Target.INCIDENT,
        text=f":warning: The *{service}* metrics chart (the last {format_duration(work.window)}) "
        f"could not be drawn: {why}",
    )
    event = TimelineEvent(at=now, kind=EventKind.CHART, text=f"the {service} metrics chart failed: {why}")

    def record(current: Incident) -> Change:
        # A revision of its own, so the message's effect id is new.
        return Change(current.noted(now), [event], [said])

    return record


def _superseded(incident: Incident, effect: Effect) -> bool:
    """A reminder that an update (or a resolution) made moot while it waited: not posted."""
    work = effect.work
    if isinstance(work, Reminder | OverdueNote) and incident.is_resolved:
        return True
    if isinstance(work, Reminder):
        return incident.next_update_due is not None and incident.next_update_due > work.due_at
    return False


def _delivered_event(effect: Effect, now: datetime) -> TimelineEvent | None:
    work = effect.work
    if isinstance(work, Reminder):
        text = f"Reminder {work.missed}: update overdue"
        if work.late:
            text += f" (delivered {int((now - work.due_at).total_seconds())}s late)"
        return TimelineEvent(at=now, kind=EventKind.REMINDER, text=text)
    return None


def _what_to_do(incident: Incident, effect: Effect, where: str, error: str) -> str:
    what = {
        "not_in_channel": "invite me there (`/invite @incident-bot`)",
        "channel_not_found": "invite me there (`/invite @incident-bot`), or check the channel still exists",
        "is_archived": "unarchive the channel, or ask an admin to point me at another one",
        "missing_scope": "reinstall the app from its manifest so it has the permissions it needs",
    }.get(error, "an admin can find the details in the bot's log")
    return (
        f":warning: *{incident.id}*: Slack refused my {effect.work.kind.replace('_', ' ')} {where} "
        f"(`{error}`). To fix it, {what}."
    )


async def deliver_digest(
    service: IncidentService, slack: SlackGateway, stakeholder_channel: str | None, claim: Claim
) -> None:
    """Post the managers' digest once and confirm it only when Slack accepted it; a claim whose
    lease expired (its earlier delivery may have posted) is looked for first."""
    if not stakeholder_channel:
        await service.reminders.digest_sent(claim)
        return
    now = service.clock()
    key = f"digest/{claim.token}"
    if claim.is_late(now):
        found = await slack.find_posted(stakeholder_channel, key, claim.due_at, join=True)
        if found.ok and "ts" in found.data:
            await service.reminders.digest_sent(claim)
            return
    incidents = await service.open_incidents()
    pairs = [(i, service.severity_spec(i.severity)) for i in incidents]
    result = await slack.post(stakeholder_channel, update_blocks.digest(pairs, now), key)
    if result.ok or not result.retryable:
        await service.reminders.digest_sent(claim)  # a refusal is logged by the gateway; retrying won't help
