"""What the channel and the stakeholders see after the incident changes."""

from __future__ import annotations

from bot.blocks import Rendered
from bot.blocks import incident as incident_blocks
from bot.blocks import updates as update_blocks
from bot.blocks.checklist import checklist_message, split_sections
from bot.models import ChecklistMessage, ChecklistSection, Incident, MessageState, Phase
from bot.service import SeverityChange, UpdateOutcome
from handlers.deps import Deps


async def refresh_header(deps: Deps, incident: Incident) -> None:
    if incident.channel_id and incident.header_ts:
        spec = deps.service.severity_spec(incident.severity)
        await deps.slack.update_message(
            incident.channel_id, incident.header_ts, incident_blocks.header(incident, spec)
        )


async def post_checklists(
    deps: Deps, incident: Incident, by_phase: dict[Phase, list[ChecklistSection]]
) -> list[ChecklistMessage]:
    """Post one message per phase (split to respect Slack's block limit) and record each."""
    assert incident.channel_id is not None
    posted = []
    for phase, sections in by_phase.items():
        for part, chunk in enumerate(split_sections(sections), start=1):
            draft = ChecklistMessage(
                channel=incident.channel_id, ts="", phase=phase, part=part, sections=chunk
            )
            state = MessageState(incident_id=incident.id, message=draft, ticks={}, rev=0)
            ts = await deps.slack.post_message(incident.channel_id, checklist_message(state))
            if ts is None:
                continue
            message = draft.model_copy(update={"ts": ts})
            if phase is Phase.VERIFY:
                await deps.service.record_verification(incident.id, message)
            else:
                await deps.service.record_checklist_message(incident.id, message)
            posted.append(message)
    return posted


async def to_stakeholders(deps: Deps, message: Rendered) -> None:
    if deps.stakeholder_channel:
        await deps.slack.post_message(deps.stakeholder_channel, message)


async def announce_resolution(deps: Deps, incident: Incident) -> None:
    spec = deps.service.severity_spec(incident.severity)
    open_items = await deps.service.open_verification_items(incident)
    final = update_blocks.resolution(incident, spec, open_items)
    if incident.channel_id:
        await deps.slack.post_message(incident.channel_id, final)
    await to_stakeholders(deps, final)
    await refresh_header(deps, incident)


async def announce_update(deps: Deps, outcome: UpdateOutcome) -> None:
    incident = outcome.incident
    if incident.is_resolved:
        await announce_resolution(deps, incident)
        return
    spec = deps.service.severity_spec(incident.severity)
    message = update_blocks.status_update(incident, spec, outcome.update)
    if incident.channel_id:
        await deps.slack.post_message(incident.channel_id, message)
    await refresh_header(deps, incident)
    await to_stakeholders(deps, message)
    if outcome.post_verification:
        section = deps.service.verification_section()
        await post_checklists(deps, incident, {Phase.VERIFY: [section]})


async def announce_severity_change(deps: Deps, change: SeverityChange, by: str) -> None:
    incident = change.incident
    spec = deps.service.severity_spec(incident.severity)
    previous_spec = deps.service.severity_spec(change.previous)
    note = update_blocks.severity_changed(incident, change.previous, previous_spec, spec, by)
    if incident.channel_id:
        await deps.slack.post_message(incident.channel_id, note)
    await refresh_header(deps, incident)
    added = await deps.service.new_checklists_for(incident, incident.severity)
    if added:
        await post_checklists(deps, incident, added)
    await to_stakeholders(deps, note)
