"""The `/incident` slash command: parse, check who may act, dispatch on the command's type."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import assert_never

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import incident as incident_blocks
from bot.blocks import updates as update_blocks
from bot.blocks.changes import recent_changes_message
from bot.changes import ChangeEvent
from bot.commands import (
    AddFollowUp,
    AddHypothesis,
    AssignRole,
    Declare,
    HandOver,
    Help,
    InIncident,
    ListIncidents,
    Note,
    Postmortem,
    Resolve,
    Runbook,
    SetPhase,
    ShowChanges,
    ShowMetrics,
    ShowStatus,
    ShowTimeline,
    Update,
    parse_command,
)
from bot.errors import (
    ChannelTaken,
    IncidentClosed,
    NotAllowed,
    NothingToChange,
    StaleReference,
    StoreLost,
    StoreUnavailable,
)
from bot.investigation import phase_line
from bot.models import Incident, format_duration
from bot.roles import UnknownRole
from bot.text import escape_mrkdwn
from handlers.deps import Deps, deps_of
from handlers.messages import already_resolved, not_a_member, store_problem
from handlers.payloads import SlashCommand
from handlers.updates import MODAL_FAILED, open_update_modal

log = logging.getLogger(__name__)

# How long a command's trigger_id is remembered, so that Slack re-sending the command is known.
RESENT_WITHIN = 600.0
# Commands that only read: anyone who can type in the channel may use them.
READ_ONLY = (ShowStatus, ShowTimeline, Postmortem, ShowMetrics)


@dataclass(frozen=True)
class Invocation:
    """One `/incident` as received: who, where, and the id that makes a re-send harmless."""

    deps: Deps
    command: SlashCommand
    request_id: str
    ack: AsyncAck
    respond: AsyncRespond

    async def say(self, text: str) -> None:
        """Answer the user alone."""
        await self.ack(text=text, response_type="ephemeral")

    def woke(self) -> None:
        self.deps.delivery.wake()


async def handle_incident_command(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    command = SlashCommand.model_validate(body)
    parsed = parse_command(command.text)
    # Slack sends one trigger_id per invocation: a re-sent request carries the same one.
    request_id = f"cmd:{command.trigger_id}" if command.trigger_id else f"cmd:{secrets.token_hex(8)}"
    run = Invocation(deps, command, request_id, ack, respond)
    try:
        match parsed:
            case Help():
                await run.say(incident_blocks.usage(parsed.problem))
            case ListIncidents():
                await _list(run)
            case Declare():
                await _declare_or_change_severity(run, parsed)
            case ShowChanges():
                await _changes(run, parsed)
            case _:
                await _in_incident(run, parsed)
    except StoreUnavailable as exc:
        log.warning("/incident %s: store unavailable: %s", parsed.kind, exc)
        await run.say(store_problem(exc))
    except StoreLost as exc:
        log.error("/incident %s refused: %s", parsed.kind, exc)
        what = "declared" if isinstance(parsed, Declare) else "changed"
        await run.say(f":warning: Nothing was {what}: {exc}.")
    except ChannelTaken as exc:
        await run.say(
            f"*{exc.incident_id}* already runs in this channel, so nothing was declared. "
            "Declare the new incident from another channel, or resolve that one first."
        )
    except IncidentClosed:
        await run.say("This incident is already resolved, so nothing was changed.")
    except NotAllowed as exc:
        await run.say(str(exc))
    except StaleReference:
        await run.say("This channel's incident is gone from the store, so nothing was changed.")


async def _list(run: Invocation) -> None:
    service = run.deps.service
    incidents = await service.open_incidents()
    pairs = [(i, service.severity_spec(i.severity)) for i in incidents]
    await run.say(incident_blocks.incident_list(pairs, service.clock()))


async def _declare_or_change_severity(run: Invocation, parsed: Declare) -> None:
    deps, command = run.deps, run.command
    current = await deps.service.store.incident_for_channel(command.channel_id)
    if current is None:
        incident = await deps.service.declare_incident(
            parsed.severity,
            parsed.title,
            command.user_id,
            command.channel_id,
            request_id=run.request_id,
            response_url=command.response_url,
            create_channel=deps.create_channels,
            recent_changes=await _recent_changes(deps),
        )
        await run.say(incident_blocks.declared(incident))
        run.woke()
        return
    if current.is_resolved or parsed.title:
        # A title means a new incident: never fold it into the one this channel runs.
        await run.say(incident_blocks.already_running(current))
        return
    if not await _may_act(run, current):
        return
    try:
        await deps.service.change_severity(current.id, parsed.severity, command.user_id, run.request_id)
    except NothingToChange:
        label = deps.service.severity_spec(parsed.severity).label
        await run.say(f"*{current.id}* is already {label}; nothing was changed.")
        return
    await run.ack()
    run.woke()


async def _recent_changes(deps: Deps) -> list[ChangeEvent] | None:
    """The changes of the two hours before now, for a declaration's Recent changes; None when
    the bot takes no change events, or Redis did not give them (declared without them)."""
    if deps.changes is None:
        return None
    try:
        return await deps.changes.recent(before=deps.service.clock())
    except StoreUnavailable as exc:
        log.warning("declaring without Recent changes: reading them failed: %s", exc)
        return None


async def _changes(run: Invocation, parsed: ShowChanges) -> None:
    """In an incident's channel, post the changes there (and on the timeline); elsewhere, answer
    the user alone with them."""
    deps = run.deps
    if deps.changes is None:
        await run.say(CHANGES_OFF)
        return
    incident = await deps.service.store.incident_for_channel(run.command.channel_id)
    service = parsed.service
    if service is None and incident is not None and incident.alert is not None:
        service = incident.alert.service  # as at the declaration: the alert's service first
    now = deps.service.clock()
    changes = await deps.changes.recent(before=now, window=parsed.window, service=service)
    if incident is None:
        shown = recent_changes_message(changes, before=now, window=parsed.window, service=service)
        await run.ack(text=shown.text, blocks=shown.blocks, response_type="ephemeral")
        return
    await deps.service.investigation.show_changes(
        incident.id,
        changes,
        before=now,
        window=parsed.window,
        service=service,
        by=run.command.user_id,
        request_id=run.request_id,
    )
    await run.ack()
    run.woke()


CHANGES_OFF = (
    "Change events are off: set `INCIDENT_ALERT_TOKEN` so CI pipelines can report deploys, config "
    "changes and flags with `POST /events/change`."
)
CHARTS_OFF = "Metrics charts are off: set `PROMETHEUS_URL` to the Prometheus to chart from."


async def _may_act(run: Invocation, incident: Incident) -> bool:
    """Acting on an incident needs membership of its channel; says why not when it is refused."""
    refusal = await not_a_member(run.deps, incident, run.command.user_id)
    if refusal is not None:
        await run.say(refusal)
        return False
    return True


async def _in_incident(run: Invocation, parsed: InIncident) -> None:
    deps = run.deps
    incident = await deps.service.store.incident_for_channel(run.command.channel_id)
    if incident is None:
        await run.say(incident_blocks.no_incident_here(parsed.kind))
        return
    if isinstance(parsed, Runbook) and parsed.name is None:
        await run.say(_runbook_list(run))
        return
    takes_closed = isinstance(parsed, (*READ_ONLY, AddFollowUp))
    if incident.is_resolved and not takes_closed:
        await run.say(already_resolved(incident))
        return
    if not isinstance(parsed, READ_ONLY) and not await _may_act(run, incident):
        return
    try:
        await _act(run, parsed, incident)
    except NothingToChange as exc:
        await run.say(_nothing_changed(parsed, incident, exc))


async def _act(run: Invocation, parsed: InIncident, incident: Incident) -> None:
    """One subcommand on the channel's incident; every branch acks."""
    service, user, request = run.deps.service, run.command.user_id, run.request_id
    investigation = service.investigation
    match parsed:
        case Update():
            # A re-sent command opens nothing more: its trigger_id was spent on the modal already
            # open, and views.open failing on it again must not tell the user to try again.
            first = await service.store.first_request(f"modal:{request}", seconds=RESENT_WITHIN)
            await run.ack()
            if first and not await open_update_modal(run.deps, incident, run.command.trigger_id):
                await run.respond(text=MODAL_FAILED, response_type="ephemeral")
            return
        case ShowStatus():
            spec = service.severity_spec(incident.severity)
            await run.say(update_blocks.status_reply(incident, spec, service.clock()))
            return
        case Resolve():
            resolved, _ = await service.resolve(incident.id, user, request)
            await run.say(f"Resolving *{resolved.id}*. The postmortem draft follows in the channel.")
        case Note():
            await investigation.add_note(incident.id, parsed.text, user, request)
            await run.ack()
        case AddHypothesis():
            added = await investigation.propose(incident.id, parsed.text, user, request)
            await run.say(f"Added *{added.label}*. Set it to *Testing* when you start checking it.")
        case SetPhase():
            await investigation.set_phase(incident.id, parsed.phase, user, request)
            await run.ack()
        case Runbook():
            await _post_runbook(run, incident, parsed)
        case HandOver():
            await service.roles.assign(incident.id, "commander", parsed.user, user, request)
            await run.ack()
        case AssignRole():
            try:
                await service.roles.assign(incident.id, parsed.role, parsed.user, user, request)
            except UnknownRole as exc:
                await run.say(str(exc))
                return
            await run.ack()
        case ShowTimeline():
            await investigation.show_timeline(incident.id, user, request)
            await run.ack()
        case AddFollowUp():
            await investigation.add_followup(incident.id, parsed.text, user, request)
            await run.ack()
        case Postmortem():
            await investigation.request_postmortem(incident.id, user, request)
            await run.say(f"Uploading the postmortem draft of *{incident.id}* to this channel.")
        case ShowMetrics():
            if not run.deps.charts:
                await run.say(CHARTS_OFF)
                return
            try:
                await investigation.request_chart(incident.id, parsed.service, parsed.window, user, request)
            except KeyError:
                await run.say(_unknown_service(run, parsed.service))
                return
            window = format_duration(parsed.window)
            await run.say(f"Drawing the chart of *{escape_mrkdwn(parsed.service)}* (the last {window})…")
        case _:
            assert_never(parsed)
    run.woke()


async def _post_runbook(run: Invocation, incident: Incident, parsed: Runbook) -> None:
    name = parsed.name or ""
    try:
        await run.deps.service.investigation.post_runbook(
            incident.id, name, run.command.user_id, run.request_id
        )
    except KeyError:
        await run.say(f"There is no runbook `{escape_mrkdwn(name[:30])}`.\n\n{_runbook_list(run)}")
        return
    await run.ack()


def _runbook_list(run: Invocation) -> str:
    runbooks = run.deps.service.playbook.runbooks
    if not runbooks:
        return "The playbook has no runbooks."
    lines = [f"• `{name}`: {escape_mrkdwn(book.title)}" for name, book in runbooks.items()]
    return "*Runbooks* (`/incident runbook <name>` posts one here)\n" + "\n".join(lines)


def _unknown_service(run: Invocation, service: str) -> str:
    services = run.deps.service.playbook.services
    if not services:
        return (
            "No services are configured for charts: add them, with their queries, under the "
            "playbook's `services` key."
        )
    known = ", ".join(f"`{escape_mrkdwn(name)}`" for name in services)
    return f"There is no service `{escape_mrkdwn(service[:30])}` in the playbook. Known services: {known}."


def _nothing_changed(parsed: InIncident, incident: Incident, exc: NothingToChange) -> str:
    match parsed:
        case SetPhase():
            return f"*{incident.id}* is already at *{phase_line(parsed.phase)}*; nothing was changed."
        case HandOver() | AssignRole():
            return f"They already hold that role in *{incident.id}*; nothing was changed."
        case Runbook():
            return f"That runbook's steps are already in this channel; nothing was changed ({exc})."
        case _:
            return f"Nothing to change: {exc}."


def register(app: AsyncApp) -> None:
    app.command("/incident")(handle_incident_command)
