"""Status updates: the "Post update" button, the update modal and its submission."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import updates as update_blocks
from bot.ids import ActionId, CallbackId, UpdateField
from bot.models import Incident
from bot.service import IncidentClosed, UpdateDraft, validate_update
from bot.store import IncidentNotFound, StoreUnavailable
from handlers.announce import announce_update
from handlers.deps import Deps, deps_of
from handlers.messages import STORE_DOWN, already_resolved
from handlers.payloads import ButtonClick, ViewSubmission

log = logging.getLogger(__name__)


async def open_update_modal(deps: Deps, incident: Incident, trigger_id: str) -> bool:
    spec = deps.service.severity_spec(incident.severity)
    return await deps.slack.open_view(trigger_id, update_blocks.update_modal(incident, spec))


async def handle_post_update_button(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    deps = deps_of(context)
    try:
        click = ButtonClick.model_validate(body)
        incident = await deps.service.get_incident(click.incident.incident_id)
    except (ValidationError, IncidentNotFound):
        log.warning("ignored a Post update click with an unexpected value")
        return
    except StoreUnavailable:
        await respond(text=STORE_DOWN, response_type="ephemeral", replace_original=False)
        return
    if incident.is_resolved:
        await respond(text=already_resolved(incident), response_type="ephemeral", replace_original=False)
        return
    await open_update_modal(deps, incident, click.trigger_id)


async def handle_update_submission(ack: AsyncAck, body: dict[str, object], context: AsyncBoltContext) -> None:
    deps = deps_of(context)
    submission = ViewSubmission.model_validate(body)
    draft = UpdateDraft(
        status=submission.field(UpdateField.STATUS),
        impact=submission.field(UpdateField.IMPACT),
        current_state=submission.field(UpdateField.CURRENT_STATE),
        next_update=submission.field(UpdateField.NEXT_UPDATE),
    )
    errors = validate_update(draft)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    try:
        outcome = await deps.service.post_update(submission.incident.incident_id, draft, submission.user.id)
    except StoreUnavailable:
        # Keep the modal open with what was typed; the responder can submit again.
        await ack(response_action="errors", errors={UpdateField.IMPACT.value: STORE_DOWN_SHORT})
        return
    except IncidentClosed:
        await ack(
            response_action="errors",
            errors={UpdateField.STATUS.value: "This incident is already resolved."},
        )
        return
    await ack()
    await announce_update(deps, outcome)


STORE_DOWN_SHORT = "The incident store (Redis) is unreachable, nothing was saved. Submit again shortly."


def register(app: AsyncApp) -> None:
    app.action(ActionId.OPEN_UPDATE.value)(handle_post_update_button)
    app.view(CallbackId.UPDATE.value)(handle_update_submission)
