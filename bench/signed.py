"""Requests exactly as Slack sends them, built and signed ahead of time.

The payloads come from the stand-in's own builders (the ones `SlackUser` sends), with fresh
response URLs and trigger ids from the stand-in; only the sending is left to the load client.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bot.demo.standin import SlackStandIn, SlackUser
from bot.demo.standin.payloads import (
    Actor,
    block_actions_payload,
    checkbox_selection,
    checkbox_state,
    find_element,
    slash_command_form,
)
from bot.demo.standin.user import FORM_CONTENT_TYPE

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]

    def to_json(self) -> JsonDict:
        return {"body": base64.b64encode(self.body).decode(), "headers": self.headers}


class RequestFactory:
    def __init__(self, slack: SlackStandIn, user: SlackUser) -> None:
        self.slack = slack
        self.user = user

    def _signed_form(self, fields: dict[str, str]) -> SignedRequest:
        body = urlencode(fields).encode()
        return SignedRequest(body, {"Content-Type": FORM_CONTENT_TYPE, **self.user.sign(body)})

    def _actor(self, user_id: str, channel_id: str) -> Actor:
        workspace = self.slack.workspace
        channel = workspace.channels[channel_id]
        return Actor(
            user=workspace.users[user_id],
            channel_id=channel.id,
            channel_name=channel.name,
            bot=self.slack.bot,
            verification_token=self.user.verification_token,
        )

    def slash_command(self, user_id: str, channel_id: str, text: str) -> SignedRequest:
        form = slash_command_form(
            self._actor(user_id, channel_id),
            command="/incident",
            text=text,
            response_url=self.slack.new_response_url(channel_id, user_id),
            trigger_id=self.slack.new_trigger_id(user_id),
        )
        return self._signed_form(form)

    def checkbox_click(
        self, user_id: str, channel_id: str, shown: JsonDict, action_id: str, checked: bool
    ) -> SignedRequest:
        """A click on one item's checkbox in `shown` (the message as this user's client shows it)."""
        message = copy.deepcopy(shown)
        block_id, element = find_element(message, action_id)
        selected = checkbox_selection(element, option_value=None, selected=checked)
        action = {
            "type": "checkboxes",
            "action_id": action_id,
            "block_id": block_id,
            "selected_options": selected,
            "action_ts": f"{time.time():.6f}",
        }
        payload = block_actions_payload(
            self._actor(user_id, channel_id),
            message=message,
            action=action,
            state_values=checkbox_state(message, (block_id, action_id, copy.deepcopy(selected))),
            trigger_id=self.slack.new_trigger_id(user_id),
            response_url=self.slack.new_response_url(channel_id, user_id, message_ts=str(message["ts"])),
        )
        return self._signed_form({"payload": json.dumps(payload)})


def checkbox_action_ids(message: JsonDict) -> list[str]:
    """Action ids of the message's checkboxes elements, in the order they are shown."""
    return [
        element["action_id"]
        for block in message.get("blocks", [])
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "checkboxes"
    ]
