"""`SlackUser`: plays Slack's side toward the bot under test (commands, clicks, submissions).

Two transports, as Slack has them. Over HTTP, requests are signed the way Slack signs them
(https://docs.slack.dev/authentication/verifying-requests-from-slack): `X-Slack-Signature`
is `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` keyed with the signing secret.
Over Socket Mode (`SlackUser.over_socket_mode`), the same payloads travel as envelopes on the
app's WebSocket and the ack payload stands in for the HTTP response body.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from pydantic import BaseModel, Field

from .payloads import (
    Actor,
    block_actions_payload,
    checkbox_selection,
    checkbox_state,
    find_element,
    message_action_payload,
    slash_command_form,
    view_submission_payload,
)
from .server import SlackStandIn
from .socket_mode import ACK_WINDOW_SECONDS, EnvelopeType
from .workspace import JsonDict

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Socket Mode failures, as statuses a test can tell apart; the user sees `dispatch_failed` for both.
NOT_CONNECTED_STATUS = 503  # no socket was open to carry the envelope
NO_ACK_STATUS = 504  # the app did not ack within the window


class BotReply(BaseModel):
    """What the bot answered to one request from Slack.

    Over Socket Mode, `status` is 200 and `body` the ack payload (None for a bare ack), or a
    failure status with `error` set to what Slack shows the user.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    error: str | None = None

    def json_body(self) -> JsonDict:
        if not isinstance(self.body, dict):
            raise TypeError(f"the bot answered {self.body!r}, not a JSON object")
        return self.body


class SlackUser:
    """Sends what Slack would send when a person types a command or clicks in a message."""

    def __init__(
        self,
        standin: SlackStandIn,
        request_url: str,
        signing_secret: str,
        *,
        verification_token: str = "standin-verification-token",
        timeout_seconds: float = 10.0,
    ) -> None:
        self.standin = standin
        self.request_url = request_url
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.transport: Literal["http", "socket_mode"] = "http"
        self.ack_timeout = ACK_WINDOW_SECONDS

    @classmethod
    def over_socket_mode(
        cls,
        standin: SlackStandIn,
        *,
        ack_timeout: float = ACK_WINDOW_SECONDS,
        verification_token: str = "standin-verification-token",
    ) -> SlackUser:
        """A user whose commands and clicks reach the bot over its Socket Mode connection."""
        user = cls(standin, "", "", verification_token=verification_token)
        user.transport = "socket_mode"
        user.ack_timeout = ack_timeout
        return user

    # -- signing and raw delivery ---------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two headers Slack adds to every request it sends to an app."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    async def post_raw(self, body: bytes, headers: Mapping[str, str]) -> BotReply:
        """Posts exactly these bytes and headers (for forged or stale signature tests)."""
        if self.transport != "http":
            raise RuntimeError("post_raw needs the HTTP transport; this user talks Socket Mode")
        async with (
            aiohttp.ClientSession(timeout=self.timeout) as session,
            session.post(self.request_url, data=body, headers=dict(headers)) as response,
        ):
            text = await response.text()
            parsed: Any = text or None
            if text and response.content_type == "application/json":
                parsed = json.loads(text)
            return BotReply(status=response.status, body=parsed, headers=dict(response.headers))

    async def _post_signed_form(self, fields: Mapping[str, str]) -> BotReply:
        body = urlencode(fields).encode()
        headers = {"Content-Type": FORM_CONTENT_TYPE, **self.sign(body)}
        return await self.post_raw(body, headers)

    async def _send_slash_command(self, form: dict[str, str]) -> BotReply:
        if self.transport == "socket_mode":
            # Socket Mode carries the command's form fields as a JSON object.
            return await self._send_envelope("slash_commands", dict(form))
        return await self._post_signed_form(form)

    async def _send_interaction(self, payload: JsonDict) -> BotReply:
        if self.transport == "socket_mode":
            return await self._send_envelope("interactive", payload)
        return await self._post_signed_form({"payload": json.dumps(payload)})

    async def _send_envelope(self, kind: EnvelopeType, payload: JsonDict) -> BotReply:
        # The documented slash command, block_actions and view_submission envelopes all say
        # accepts_response_payload: true (docs.slack.dev/apis/events-api/using-socket-mode).
        envelope = await self.standin.socket_mode.deliver(
            kind, payload, accepts_response_payload=True, timeout=self.ack_timeout
        )
        if envelope is None:
            return BotReply(status=NOT_CONNECTED_STATUS, error="dispatch_failed")
        if not envelope.acked:
            return BotReply(status=NO_ACK_STATUS, error="dispatch_failed")
        return BotReply(status=200, body=envelope.ack_payload)

    # -- what a person does ---------------------------------------------------------------

    async def slash_command(
        self, user_id: str, channel_id: str, text: str, command: str = "/incident"
    ) -> BotReply:
        actor = self._actor(user_id, channel_id)
        form = slash_command_form(
            actor,
            command=command,
            text=text,
            response_url=self.standin.new_response_url(channel_id, user_id),
            trigger_id=self.standin.new_trigger_id(user_id),
        )
        reply = await self._send_slash_command(form)
        if reply.status == 200 and reply.body:
            # Slack shows a non-empty ack to the user, like a response_url message.
            body = reply.body if isinstance(reply.body, dict) else {"text": str(reply.body)}
            self.standin.apply_ack(channel_id, user_id, body)
        return reply

    async def click_checkbox(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        selected: bool,
        *,
        option_value: str | None = None,
        snapshot: JsonDict | None = None,
    ) -> BotReply:
        """Ticks (or unticks) one option of a checkboxes element in a bot message.

        `snapshot` is the message as a stale client still shows it; by default the client
        shows the message as it stands now. `option_value` picks the option when the element
        has more than one.
        """
        message = self._message_as_shown(channel_id, message_ts, snapshot)
        block_id, element = find_element(message, action_id)
        if element.get("type") != "checkboxes":
            raise TypeError(f"{action_id!r} is a {element.get('type')}, not checkboxes")
        now_selected = checkbox_selection(element, option_value=option_value, selected=selected)
        action = {
            "type": "checkboxes",
            "action_id": action_id,
            "block_id": block_id,
            "selected_options": now_selected,
            "action_ts": self._action_ts(),
        }
        state = checkbox_state(message, (block_id, action_id, copy.deepcopy(now_selected)))
        return await self._send_block_action(user_id, channel_id, message, action, state)

    async def click_button(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        *,
        snapshot: JsonDict | None = None,
    ) -> BotReply:
        message = self._message_as_shown(channel_id, message_ts, snapshot)
        block_id, element = find_element(message, action_id)
        if element.get("type") != "button":
            raise TypeError(f"{action_id!r} is a {element.get('type')}, not a button")
        action: JsonDict = {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": copy.deepcopy(element.get("text")),
            "action_ts": self._action_ts(),
        }
        for key in ("value", "style"):
            if key in element:
                action[key] = element[key]
        state = checkbox_state(message, None)
        return await self._send_block_action(user_id, channel_id, message, action, state)

    async def use_message_shortcut(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        callback_id: str,
        *,
        snapshot: JsonDict | None = None,
    ) -> BotReply:
        """Picks the app's message shortcut `callback_id` from a message's "More actions" menu.

        Works on any message, a person's or the bot's. `snapshot` is the message as a stale
        client still shows it. The response_url can replace or delete only the app's own message.
        """
        message = self._message_as_shown(channel_id, message_ts, snapshot)
        stored = self.standin.workspace.find_message(channel_id, message_ts)
        own = stored is not None and stored.user == self.standin.bot.user_id
        payload = message_action_payload(
            self._actor(user_id, channel_id),
            callback_id=callback_id,
            message=message,
            trigger_id=self.standin.new_trigger_id(user_id),
            response_url=self.standin.new_response_url(
                channel_id, user_id, message_ts=message_ts if own else None
            ),
            action_ts=self._action_ts(),
        )
        return await self._send_interaction(payload)

    async def submit_view(self, user_id: str, view_id: str, values: JsonDict) -> BotReply:
        """Submits an open modal with `values` as view.state.values ({block_id: {action_id: ...}})."""
        opened = self.standin.view(view_id)
        if not opened.is_open:
            raise RuntimeError(f"view {view_id} is not open")
        block_ids = {b.get("block_id") for b in opened.view.get("blocks", [])}
        unknown = sorted(set(values) - block_ids)
        if unknown:
            raise LookupError(f"view {view_id} has no blocks {unknown}")
        actor = self._actor(user_id, None)
        payload = view_submission_payload(
            actor,
            view=opened.to_slack(self.standin.bot, state_values=values),
            trigger_id=self.standin.new_trigger_id(user_id, view_id=view_id),
        )
        reply = await self._send_interaction(payload)
        if reply.status == 200:
            self.standin.apply_view_submission_reply(view_id, reply.body)
        return reply

    # -- helpers --------------------------------------------------------------------------

    async def _send_block_action(
        self,
        user_id: str,
        channel_id: str,
        message: JsonDict,
        action: JsonDict,
        state: JsonDict,
    ) -> BotReply:
        payload = block_actions_payload(
            self._actor(user_id, channel_id),
            message=message,
            action=action,
            state_values=state,
            trigger_id=self.standin.new_trigger_id(user_id),
            response_url=self.standin.new_response_url(channel_id, user_id, message_ts=str(message["ts"])),
        )
        return await self._send_interaction(payload)

    def _actor(self, user_id: str, channel_id: str | None) -> Actor:
        ws = self.standin.workspace
        user = ws.users.get(user_id)
        if user is None:
            raise LookupError(f"no user {user_id} in the stand-in workspace")
        channel = ws.channel(channel_id) if channel_id is not None else None
        if channel_id is not None and channel is None:
            raise LookupError(f"no channel {channel_id} in the stand-in workspace")
        if channel is not None and not channel.is_private and user_id in ws.responders:
            ws.add_members(channel.id, [user_id])  # a responder joins to act there
        return Actor(
            user=user,
            channel_id=channel.id if channel else "",
            channel_name=channel.name if channel else "",
            bot=self.standin.bot,
            verification_token=self.verification_token,
        )

    def _message_as_shown(self, channel_id: str, message_ts: str, snapshot: JsonDict | None) -> JsonDict:
        if snapshot is not None:
            return copy.deepcopy(snapshot)
        return self.standin.message(channel_id, message_ts).to_slack()

    def _action_ts(self) -> str:
        return f"{time.time():.6f}"
