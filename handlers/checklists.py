"""Ticking checklist items in the channel."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import NotAChecklistItem, StaleReference, StoreUnavailable
from bot.ids import TICK_ACTION_PATTERN
from handlers.deps import deps_of
from handlers.messages import not_in_channel, store_problem, unknown_incident
from handlers.payloads import CheckboxClick

log = logging.getLogger(__name__)

TICK_NOT_SAVED = (
    ":warning: I can't reach the incident store (Redis) right now, so your tick was *not* saved "
    "and nothing was changed. Please click again in a moment."
)
NOT_AN_ITEM = (
    "That checklist item belongs to an incident I no longer have (or to an older incident with the "
    "same number), so nothing was changed."
)


async def handle_tick(
    ack: AsyncAck, body: dict[str, object], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    try:
        click = CheckboxClick.model_validate(body)
        ref = click.item
    except ValidationError:
        await ack()
        log.warning("ignored a checklist click with an unexpected shape")
        return
    refusal = await not_in_channel(deps, click.channel.id, ref.i, click.user.id)
    if refusal is not None:
        await ack()
        await respond(text=refusal, response_type="ephemeral", replace_original=False)
        return
    try:
        # Stored before the ack: nothing acknowledged is ever lost.
        _, state = await deps.service.checklists.tick_item(
            ref.i, ref.u, click.message_ts, ref.k, click.user.id, click.checked
        )
    except StoreUnavailable as exc:
        await ack()
        log.warning("tick not saved, store unavailable: %s", exc)
        text = TICK_NOT_SAVED if exc.written is False else store_problem(exc)
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    except (NotAChecklistItem, StaleReference) as exc:
        await ack()
        log.warning("tick ignored: %s", exc)
        text = await unknown_incident(deps.service, NOT_AN_ITEM)
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    await ack()
    deps.refresher.refresh(state)


def register(app: AsyncApp) -> None:
    app.action(TICK_ACTION_PATTERN)(handle_tick)
