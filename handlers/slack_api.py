"""Every Web API call the bot makes, in one place: failures are logged with method and error,
and never raised into a listener."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.blocks import Rendered
from bot.naming import channel_name_candidates

log = logging.getLogger(__name__)


# Failures worth trying again: Slack asked us to slow down, or the network hiccupped.
RETRYABLE_ERRORS = frozenset({"ratelimited", "connection_error", "internal_error", "fatal_error"})


@dataclass(frozen=True)
class Result:
    ok: bool
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return not self.ok and self.error in RETRYABLE_ERRORS


class SlackGateway:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def _call(self, method: str, request: Awaitable[AsyncSlackResponse]) -> Result:
        try:
            response = await request
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            details = exc.response.get("errors") or exc.response.get("needed") or ""
            log.warning("Slack API %s failed: %s %s", method, error, details)
            return Result(ok=False, error=error)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("Slack API %s failed: %s", method, exc or type(exc).__name__)
            return Result(ok=False, error="connection_error")
        return Result(ok=True, data=dict(response.data) if isinstance(response.data, dict) else {})

    async def post_message(self, channel: str, message: Rendered) -> str | None:
        """Post to a channel; returns the message ts, or None when Slack refused."""
        result = await self._call(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.block_dicts(),
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        return str(result.data["ts"]) if result.ok else None

    async def update_message(self, channel: str, ts: str, message: Rendered) -> Result:
        return await self._call(
            "chat.update",
            self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.block_dicts()),
        )

    async def post_ephemeral(self, channel: str, user: str, text: str) -> bool:
        result = await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(channel=channel, user=user, text=text),
        )
        return result.ok

    async def open_view(self, trigger_id: str, view: View) -> bool:
        result = await self._call("views.open", self.client.views_open(trigger_id=trigger_id, view=view))
        return result.ok

    async def create_channel(self, name: str) -> Result:
        """Create a public channel, trying other names while Slack answers `name_taken`."""
        result = Result(ok=False, error="no_name")
        for candidate in channel_name_candidates(name):
            result = await self._call(
                "conversations.create", self.client.conversations_create(name=candidate)
            )
            if result.ok or result.error != "name_taken":
                break
        return result

    async def invite(self, channel: str, users: list[str]) -> bool:
        result = await self._call(
            "conversations.invite",
            self.client.conversations_invite(channel=channel, users=",".join(users)),
        )
        return result.ok or result.error == "already_in_channel"
