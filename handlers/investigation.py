"""Evidence from Slack messages (the "Add to timeline" shortcut) and the hypothesis buttons."""

from __future__ import annotations

import contextlib
import logging

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import format as fmt
from bot.errors import IncidentClosed, NothingToChange, StaleReference, StoreUnavailable, UnknownHypothesis
from bot.ids import HYPOTHESIS_ACTION_PATTERN, CallbackId
from handlers.deps import deps_of
from handlers.messages import STALE, not_a_member, store_problem, unknown_incident
from handlers.payloads import ButtonClick, MessageShortcut

log = logging.getLogger(__name__)

NOT_AN_INCIDENT_CHANNEL = (
    "This message is not in an incident channel, so it was not added to any timeline. Use "
    "*Add to timeline* on messages in the channel of the incident they belong to."
)


async def handle_add_to_timeline(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    deps = deps_of(context)
    try:
        shortcut = MessageShortcut.model_validate(body)
    except ValidationError:
        log.warning("ignored an Add to timeline shortcut with an unexpected shape")
        return

    async def tell(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    channel, ts = shortcut.channel.id, shortcut.message_ts
    try:
        incident = await deps.service.store.incident_for_channel(channel)
        if incident is None:
            await tell(NOT_AN_INCIDENT_CHANNEL)
            return
        refusal = await not_a_member(deps, incident, shortcut.user.id)
        if refusal is not None:
            await tell(refusal)
            return
        link = await deps.slack.permalink(channel, ts)
        author = shortcut.message.user or shortcut.message.bot_id
        added = await deps.service.investigation.add_evidence(
            incident.id, f"{channel}/{ts}", shortcut.message.text, author, link, shortcut.user.id
        )
    except StoreUnavailable as exc:
        await tell(store_problem(exc))
        return
    except StaleReference:
        await tell(await unknown_incident(deps.service, STALE))
        return
    if not added:
        await tell(f"That message is already on the timeline of *{incident.id}*.")
        return
    by = f" by {fmt.user(author)}" if author else ""
    await tell(f":pushpin: Added the message{by} to the timeline of *{incident.id}* as evidence.")


async def handle_hypothesis_button(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Testing, Confirmed or Ruled out on a hypothesis of the live Hypotheses message. Stored
    before the ack, like a tick: a click that was acknowledged is never lost."""
    try:
        text = await _hypothesis_click(body, context)
    finally:
        await ack()
    if text is not None:
        await respond(text=text, response_type="ephemeral", replace_original=False)


async def _hypothesis_click(body: dict[str, object], context: AsyncBoltContext) -> str | None:
    """Apply the click; what to tell the user who clicked, if anything."""
    deps = deps_of(context)
    try:
        click = ButtonClick.model_validate(body)
        ref = click.hypothesis
    except (ValidationError, ValueError):
        log.warning("ignored a hypothesis click with an unexpected value")
        return None
    try:
        incident = await deps.service.get_incident(ref.incident_id, ref.uid or None)
        refusal = await not_a_member(deps, incident, click.user.id)
        if refusal is not None:
            return refusal
        await deps.service.investigation.set_hypothesis(
            ref.incident_id, ref.uid, ref.number, ref.state, click.user.id, f"hyp:{click.trigger_id}"
        )
    except NothingToChange:
        # Someone else's click came first (or this one is a double click): say what it is now.
        with contextlib.suppress(StoreUnavailable, StaleReference, UnknownHypothesis):
            now = (await deps.service.get_incident(ref.incident_id)).hypothesis(ref.number)
            by = f" (by {fmt.user(now.changed_by)})" if now.changed_by else ""
            return f"H{ref.number} is already *{now.state.value}*{by}; nothing was changed."
        return None
    except UnknownHypothesis:
        return f"*{ref.incident_id}* has no hypothesis H{ref.number}; nothing was changed."
    except IncidentClosed:
        return f"*{ref.incident_id}* is already resolved, so nothing was changed."
    except StoreUnavailable as exc:
        return store_problem(exc)
    except StaleReference:
        return await unknown_incident(deps.service, STALE)
    deps.delivery.wake()
    return None


def register(app: AsyncApp) -> None:
    app.message_shortcut(CallbackId.ADD_TO_TIMELINE.value)(handle_add_to_timeline)
    app.action(HYPOTHESIS_ACTION_PATTERN)(handle_hypothesis_button)
