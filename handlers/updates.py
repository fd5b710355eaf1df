"""Status updates: the "Post update" button, the update modal and its submission."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import updates as update_blocks
from bot.errors import IncidentClosed, NotAllowed, StaleReference, StoreUnavailable
from bot.ids import ActionId, CallbackId, UpdateField
from bot.models import Incident
from bot.service import UpdateDraft, validate_update
from handlers.deps import Deps, deps_of
from handlers.messages import STALE, already_resolved, not_a_member, store_problem, unknown_incident
from handlers.payloads import ButtonClick, ViewSubmission

log = logging.getLogger(__name__)

MODAL_FAILED = (
    ":warning: Slack didn't open the update form just now. Please try again "
    "(`/incident update`, or the *Post update* button)."
)
STORE_DOWN_SHORT = "The incident store (Redis) is unreachable, nothing was saved. Submit again shortly."
STORE_UNSURE_SHORT = (
    "The incident store (Redis) stopped answering, so I can't tell whether this was saved. "
    "Submitting again is safe: it is never posted twice."
)


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
        ref = click.incident
    except (ValidationError, ValueError):
        log.warning("ignored a Post update click with an unexpected value")
        return
    try:
        incident = await deps.service.get_incident(ref.incident_id, ref.uid or None)
        if incident.is_resolved:
            await respond(text=already_resolved(incident), response_type="ephemeral", replace_original=False)
            return
        refusal = await not_a_member(deps, incident, click.user.id)
        if refusal is not None:
            await respond(text=refusal, response_type="ephemeral", replace_original=False)
            return
        # A double click opens one modal: one per user and incident within a couple of seconds.
        if not await deps.service.store.first_request(f"modal:{incident.id}:{click.user.id}", seconds=2):
            return
        if not await open_update_modal(deps, incident, click.trigger_id):
            await respond(text=MODAL_FAILED, response_type="ephemeral", replace_original=False)
    except StaleReference:
        text = await unknown_incident(deps.service, STALE)
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except StoreUnavailable as exc:
        await respond(text=store_problem(exc), response_type="ephemeral", replace_original=False)


async def handle_update_submission(ack: AsyncAck, body: dict[str, object], context: AsyncBoltContext) -> None:
    deps = deps_of(context)
    submission = ViewSubmission.model_validate(body)
    ref = submission.incident
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
    # The same view submitted twice (same id and hash) is the same request: posted once.
    request_id = f"view:{submission.view.id}:{submission.view.hash}"
    try:
        await deps.service.post_update(
            ref.incident_id, ref.uid or None, draft, submission.user.id, request_id
        )
    except StoreUnavailable as exc:
        # Keep the modal open with what was typed; the responder can submit again.
        problem = STORE_DOWN_SHORT if exc.written is False else STORE_UNSURE_SHORT
        await ack(response_action="errors", errors={UpdateField.IMPACT.value: problem})
        return
    except IncidentClosed:
        resolved = {UpdateField.STATUS.value: "This incident is already resolved."}
        await ack(response_action="errors", errors=resolved)
        return
    except NotAllowed:
        only = {UpdateField.STATUS.value: "Only the incident commander may resolve it, under the playbook."}
        await ack(response_action="errors", errors=only)
        return
    except StaleReference:
        text = await unknown_incident(deps.service, STALE)
        await ack(response_action="errors", errors={UpdateField.IMPACT.value: text[:150]})
        return
    await ack()
    deps.delivery.wake()


def register(app: AsyncApp) -> None:
    app.action(ActionId.OPEN_UPDATE.value)(handle_post_update_button)
    app.view(CallbackId.UPDATE.value)(handle_update_submission)
