"""Interaction payloads exactly as Slack sends them to an app's request URL.

Shapes follow https://docs.slack.dev/interactivity/implementing-slash-commands,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload,
https://docs.slack.dev/reference/interaction-payloads/view-interactions-payload and
https://docs.slack.dev/reference/interaction-payloads/shortcuts-interaction-payload.
These are pure functions: the caller supplies ids, trigger ids and response URLs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from .workspace import BotIdentity, JsonDict, User


class Actor(BaseModel):
    """Who clicked, where, as the payload describes them."""

    model_config = ConfigDict(frozen=True)

    user: User
    channel_id: str
    channel_name: str
    bot: BotIdentity
    verification_token: str

    def user_field(self) -> JsonDict:
        return {
            "id": self.user.id,
            "username": self.user.name,
            "name": self.user.name,
            "team_id": self.bot.team_id,
        }

    def team_field(self) -> JsonDict:
        return {"id": self.bot.team_id, "domain": self.bot.team_domain}


def slash_command_form(
    actor: Actor, *, command: str, text: str, response_url: str, trigger_id: str
) -> dict[str, str]:
    return {
        "token": actor.verification_token,
        "team_id": actor.bot.team_id,
        "team_domain": actor.bot.team_domain,
        "channel_id": actor.channel_id,
        "channel_name": actor.channel_name,
        "user_id": actor.user.id,
        "user_name": actor.user.name,
        "command": command,
        "text": text,
        "api_app_id": actor.bot.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def find_element(message: JsonDict, action_id: str) -> tuple[str, JsonDict]:
    """The (block_id, element) a user would click, searched in the message's blocks."""
    for block_id, element in _interactive_elements(message):
        if element.get("action_id") == action_id:
            return block_id, element
    raise LookupError(f"no element with action_id {action_id!r} in message {message.get('ts')}")


def checkbox_selection(element: JsonDict, *, option_value: str | None, selected: bool) -> list[JsonDict]:
    """The options now ticked in a checkboxes element after ticking/unticking one option."""
    options: list[JsonDict] = list(element.get("options") or [])
    if option_value is None:
        if len(options) != 1:
            raise ValueError("this checkboxes element has several options: pass option_value")
        option_value = str(options[0].get("value"))
    if not any(o.get("value") == option_value for o in options):
        raise LookupError(f"no option {option_value!r} in {element.get('action_id')!r}")
    ticked = {o.get("value") for o in element.get("initial_options") or []}
    if selected:
        ticked.add(option_value)
    else:
        ticked.discard(option_value)
    return [copy.deepcopy(o) for o in options if o.get("value") in ticked]


def checkbox_state(message: JsonDict, changed: tuple[str, str, list[JsonDict]] | None) -> JsonDict:
    """state.values for every checkboxes element of the message as the client shows it."""
    values: JsonDict = {}
    for block_id, element in _interactive_elements(message):
        if element.get("type") != "checkboxes":
            continue
        action_id = str(element.get("action_id"))
        selected = copy.deepcopy(list(element.get("initial_options") or []))
        if changed is not None and changed[:2] == (block_id, action_id):
            selected = changed[2]
        values.setdefault(block_id, {})[action_id] = {
            "type": "checkboxes",
            "selected_options": selected,
        }
    return values


def block_actions_payload(
    actor: Actor,
    *,
    message: JsonDict,
    action: JsonDict,
    state_values: JsonDict,
    trigger_id: str,
    response_url: str,
) -> JsonDict:
    return {
        "type": "block_actions",
        "user": actor.user_field(),
        "api_app_id": actor.bot.app_id,
        "token": actor.verification_token,
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": actor.channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": actor.team_field(),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": actor.channel_id, "name": actor.channel_name},
        "message": copy.deepcopy(message),
        "state": {"values": state_values},
        "response_url": response_url,
        "actions": [action],
    }


def message_action_payload(
    actor: Actor,
    *,
    callback_id: str,
    message: JsonDict,
    trigger_id: str,
    response_url: str,
    action_ts: str,
) -> JsonDict:
    """A message shortcut ("More actions" on a message): `message` is the whole message shown."""
    return {
        "type": "message_action",
        "token": actor.verification_token,
        "action_ts": action_ts,
        "team": actor.team_field(),
        "user": actor.user_field(),
        "channel": {"id": actor.channel_id, "name": actor.channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id,
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": copy.deepcopy(message),
    }


def view_submission_payload(actor: Actor, *, view: JsonDict, trigger_id: str) -> JsonDict:
    return {
        "type": "view_submission",
        "team": actor.team_field(),
        "user": actor.user_field(),
        "api_app_id": actor.bot.app_id,
        "token": actor.verification_token,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def _interactive_elements(message: JsonDict) -> Iterator[tuple[str, JsonDict]]:
    for block in message.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        block_id = str(block.get("block_id", ""))
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        candidates.append(block.get("accessory"))
        for element in candidates:
            if isinstance(element, dict) and "action_id" in element:
                yield block_id, element
