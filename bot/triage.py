"""Alerts from Alertmanager, from the webhook to the incident: the rules of triage.

`AlertReceiver` takes `POST /alerts/alertmanager` (bot.intake has checked the token and the
size): a body that is not a version 4 payload gets 400 saying why; a group whose state could not
be stored gets 503, so Alertmanager sends it again; 200 only once it is stored. `AlertTriage`
keeps each group's record (bot.alert_groups) and declares or dismisses it when someone clicks.
Works on pydantic models through the stores; knows nothing of Slack beyond the work it leaves
for the triage loop (bot.triage_delivery) and the incident's outbox.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.alert_groups import AlertView, GroupRecord, IncidentNote, TriageState, group_id
from bot.alert_store import AlertGroupStore
from bot.alerts import MAX_BODY_BYTES, AlertGroup, InvalidAlerts, parse_alertmanager
from bot.change_log import ChangeLog
from bot.commands import TITLE_MAX_CHARS
from bot.effects import Say, Target, UploadChart, Work
from bot.errors import IncidentNotFound, StaleReference, StoreUnavailable
from bot.ids import AlertRef
from bot.intake import Answer
from bot.logs import Throttled
from bot.models import EventKind, Incident, Severity, TimelineEvent
from bot.service import IncidentService
from bot.store import Change
from bot.text import truncate

log = logging.getLogger(__name__)

# The chart posted with an incident declared from an alert of a known service.
CHART_WINDOW = timedelta(hours=1)


def _nobody() -> None:
    """No loop to wake."""


@dataclass(frozen=True)
class Click:
    """What a Declare or Dismiss click came to: the group as it stands after it, and whether
    this click changed it (False: it was declared or dismissed before, see the record, or it
    has fired again since the message clicked). `incident`: the one the click declared, or the
    group was declared as before.

    `unlinked`: the click declared `incident`, but the group moved on meanwhile (a newer episode
    began, or its record is gone), so the incident stands on its own."""

    record: GroupRecord
    applied: bool
    incident: Incident | None = None
    unlinked: bool = False


class AlertTriage:
    def __init__(
        self,
        service: IncidentService,
        groups: AlertGroupStore,
        *,
        changes: ChangeLog | None = None,
        charts: bool = False,
        wake: Callable[[], None] = _nobody,
    ) -> None:
        self.service = service
        self.groups = groups
        self.changes = changes  # the change events, when the bot takes them
        self.charts = charts  # a Prometheus is configured to chart from
        self.wake = wake  # tells the triage loop of this process there is work

    def severity_label(self, severity: Severity) -> str:
        return self.service.severity_spec(severity).label

    # -- notifications -----------------------------------------------------------------------

    async def notified(self, group: AlertGroup) -> GroupRecord:
        """Store what one notification says of its group; returns the record as stored."""
        now = self.service.clock()
        view = AlertView.of(group, self.service.playbook.alerts.mapping())
        found = group_id(group.group_key)

        async def decide(current: GroupRecord | None) -> GroupRecord:
            if current is None or current.group_key != group.group_key:
                return GroupRecord.first(group.group_key, secrets.token_hex(8), view, now)
            open_incident = False
            if current.state is TriageState.DECLARED and current.incident_id is not None:
                open_incident = await self._is_open(current.incident_id)
            return current.notified(view, now, open_incident, self.severity_label)

        record, _ = await self.groups.update(found, decide, at=now, notified=True)
        assert record is not None  # decide always writes
        if record.needs_work:
            self.wake()
        return record

    async def _is_open(self, incident_id: str) -> bool:
        try:
            return not (await self.service.store.get_incident(incident_id)).is_resolved
        except IncidentNotFound:
            return False

    # -- clicks ------------------------------------------------------------------------------

    async def declare(self, ref: AlertRef, by: str, origin: str, *, create_channel: bool = True) -> Click:
        """Declare the incident the alert asks for, as `/incident sevN <summary>` would, by `by`
        from `origin` (the triage channel), with the alert, the recent changes and, for a known
        service with Prometheus configured, its chart. Once per episode: every click of it (a
        double click, a retry, two people at once) declares under the same request id.

        The group is then linked to the incident, unless a newer episode began meanwhile (it was
        dismissed and fired anew, say): that episode stays in triage for someone to look at, and
        the incident's timeline says the alert fired anew without it.

        StaleReference when the record is gone or is another record than the button's."""
        record = await self._record(ref)
        if record.episode != ref.episode or record.state is TriageState.DISMISSED:
            return Click(record, applied=False)
        if record.state is TriageState.DECLARED:
            return Click(record, applied=False, incident=await self._incident_of(record))
        now = self.service.clock()
        view = record.alert
        changes = None
        if self.changes is not None:
            try:
                changes = await self.changes.recent(before=now, service=view.service)
            except StoreUnavailable as exc:  # as /incident does: declared without them
                log.warning("declaring without Recent changes: reading them failed: %s", exc)
        chart = None
        if self.charts and view.service is not None and view.service in self.service.playbook.services:
            chart = UploadChart(service=view.service, window=CHART_WINDOW, end=now)
        incident = await self.service.declare_incident(
            ref.severity,
            truncate(" ".join(view.summary.split()), TITLE_MAX_CHARS),
            by,
            origin,
            request_id=f"alert:{record.uid}:{record.episode}",
            create_channel=create_channel,
            alert=view.note(record.group_key),
            recent_changes=changes,
            chart=chart,
        )

        def same_episode(current: GroupRecord | None) -> bool:
            return current is not None and current.uid == record.uid and current.episode == record.episode

        async def link(current: GroupRecord | None) -> GroupRecord | None:
            if current is None or not same_episode(current):
                return None  # gone, or a newer episode: the incident stands on its own
            if current.state is TriageState.DECLARED:
                return None  # another click of this episode linked it: the same request, incident
            # Dismissed meanwhile included: the incident is declared, so the message says so.
            return current.declared_as(incident.id, incident.declared_by, incident.declared_at)

        try:
            after, applied = await self.groups.update(ref.group_id, link, at=now)
        except StoreUnavailable as exc:
            # The incident is declared; a click again links it (the same request id finds it).
            raise StoreUnavailable(str(exc), written=True) from exc
        self.wake()
        if same_episode(after):
            return Click(after or record, applied=applied, incident=incident)
        if after is not None and after.uid == record.uid:
            await self._fired_anew(incident.id, record)
        return Click(after or record, applied=False, incident=incident, unlinked=True)

    async def _fired_anew(self, incident_id: str, clicked: GroupRecord) -> None:
        """Tell the incident declared from `clicked` that its group began a newer episode
        meanwhile, which is not linked to it. Once (by request id); a store error leaves it out,
        as the incident stands without it."""
        note = IncidentNote(
            id=f"alert:{clicked.uid}:{clicked.episode}:fired-anew",
            text="Alertmanager: the alert fired anew while this incident was declared from it, with "
            "a new triage message, which is not linked to this incident",
        )
        try:
            await self.apply_note(incident_id, note)
        except StoreUnavailable as exc:
            log.warning("%s: not noted that its alert fired anew: %s", incident_id, exc)

    async def dismiss(self, ref: AlertRef, by: str) -> Click:
        """Dismiss the group for this episode. StaleReference as for declare."""
        now = self.service.clock()

        async def decide(current: GroupRecord | None) -> GroupRecord | None:
            if current is None or current.uid != ref.uid:
                raise StaleReference(ref.group_id)
            if current.episode != ref.episode or current.state is not TriageState.TRIAGE:
                return None
            return current.dismissed(by, now)

        after, applied = await self.groups.update(ref.group_id, decide, at=now)
        assert after is not None
        if applied:
            self.wake()
        incident = await self._incident_of(after) if after.state is TriageState.DECLARED else None
        return Click(after, applied=applied, incident=incident)

    async def _record(self, ref: AlertRef) -> GroupRecord:
        record = await self.groups.get(ref.group_id)
        if record is None or record.uid != ref.uid:
            raise StaleReference(ref.group_id)
        return record

    async def _incident_of(self, record: GroupRecord) -> Incident | None:
        if record.incident_id is None:
            return None
        try:
            return await self.service.store.get_incident(record.incident_id)
        except IncidentNotFound:
            return None

    # -- the incident's notes ----------------------------------------------------------------

    async def apply_note(self, incident_id: str, note: IncidentNote) -> bool:
        """Put a note the group owes its incident on the timeline (and say it in the channel),
        once; nothing once the incident is resolved or gone. Returns whether it was written."""
        now = self.service.clock()

        def change(incident: Incident) -> Change | None:
            if incident.has_applied(note.id) or incident.is_resolved:
                return None
            event = TimelineEvent(at=now, kind=EventKind.ALERT, text=note.text)
            works: list[Work] = [Say(target=Target.INCIDENT, text=note.say)] if note.say else []
            return Change(incident.noted(now, note.id), [event], works)

        try:
            _, written = await self.service.store.update_incident(incident_id, change)
        except IncidentNotFound:
            return False
        return written


class AlertReceiver:
    """`POST /alerts/alertmanager`: one notification of one alert group (bot.intake)."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, triage: AlertTriage) -> None:
        self.triage = triage
        self._warn = Throttled(log)

    async def receive(self, body: bytes) -> Answer:
        parsed = parse_alertmanager(body)
        if isinstance(parsed, InvalidAlerts):
            return Answer(400, {"error": parsed.message})
        try:
            record = await self.triage.notified(parsed)
        except StoreUnavailable as exc:
            self._warn.warn("store", "an Alertmanager notification was not stored (answered 503): %s", exc)
            return Answer(503, {"error": "the bot's store (Redis) is unavailable; send it again"})
        return Answer(200, {"group": record.id, "episode": record.episode, "state": record.state.value})
