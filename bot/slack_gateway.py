"""Every Web API call the bot makes, in one place. A call never raises: it returns a `Result`
that says whether Slack did the work, refused it for good, or may have done it (or not) and is
worth trying again later."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.blocks import Rendered
from bot.naming import channel_name_candidates

log = logging.getLogger(__name__)

# Slack errors that pass: try again later. Everything else Slack answers is a refusal.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The metadata event type that carries an effect's id on every message the bot posts.
EFFECT_EVENT = "incident_bot_effect"
HISTORY_PAGE = 200
# Message timestamps are Slack's clock; the attempt time is the bot's: look a little earlier.
CLOCK_MARGIN = 300


class Outcome(StrEnum):
    OK = "ok"
    TRANSIENT = "transient"  # try again later; Slack may or may not have done it
    REFUSED = "refused"  # Slack will not do it; retrying changes nothing


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None  # seconds, when Slack said how long to wait

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def retryable(self) -> bool:
        return self.outcome is Outcome.TRANSIENT


def _status_and_body(response: object) -> tuple[int, object, Any]:
    """(HTTP status, body, headers) of whatever slack_sdk attached to its error."""
    if isinstance(response, AsyncSlackResponse):
        return response.status_code, response.data, response.headers
    status = getattr(response, "status", 0)
    return int(status) if isinstance(status, int) else 0, None, getattr(response, "headers", {})


def classify_error(exc: SlackApiError) -> Result:
    status, body, headers = _status_and_body(exc.response)
    error = body.get("error") if isinstance(body, dict) else None
    retry_after: float | None = None
    try:
        retry_after = float(headers.get("Retry-After")) if headers and headers.get("Retry-After") else None
    except (TypeError, ValueError):
        retry_after = None
    if not isinstance(error, str):
        error = f"http_{status}" if status else "unreadable_response"
    transient = error in TRANSIENT_ERRORS or status >= 500 or status in (408, 429) or not status
    return Result(Outcome.TRANSIENT if transient else Outcome.REFUSED, error, retry_after=retry_after)


# Slack errors a call's outcome is reported by name (the ones the bot acts on, or an operator
# would): any other is `other_error`, so the metric's label takes a bounded set of values.
NAMED_ERRORS = TRANSIENT_ERRORS | {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "missing_scope",
    "restricted_action",
    "no_permission",
    "name_taken",
    "already_in_channel",
    "cant_invite_self",
    "message_not_found",
    "cant_update_message",
    "user_not_found",
    "invalid_blocks",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
}

CallObserver = Callable[[str, str, float], None]


def call_outcome(exc: BaseException | None) -> str:
    """What became of a Web API call, in a few words: `ok`, a Slack error (see NAMED_ERRORS),
    `other_error`, `http_4xx`, `http_5xx`, `timeout`, `connection_error`, `cancelled` or `error`."""
    if exc is None:
        return "ok"
    if isinstance(exc, SlackApiError):
        error = classify_error(exc).error or ""
        if error in NAMED_ERRORS:
            return error
        if error.startswith("http_"):
            return "http_5xx" if error.startswith("http_5") else "http_4xx"
        return "other_error"
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return "timeout"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection_error"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"  # e.g. the membership check's deadline
    return "error"


class MeasuredWebClient(AsyncWebClient):
    """The Web API client, telling `on_call(method, outcome, seconds)` of every call made
    through it: the one place all of the bot's calls pass (each of its methods calls `api_call`),
    Socket Mode's apps.connections.open included; files_upload_v2 counts as the API methods it
    calls."""

    def __init__(self, *, on_call: CallObserver, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_call = on_call

    async def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> AsyncSlackResponse:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await super().api_call(api_method, *args, **kwargs)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._on_call(api_method, call_outcome(failure), time.perf_counter() - started)


# How long a channel's member list is trusted for a member: leaves show within this. A user
# missing from it is looked up again at once, so someone who just joined can act right away.
MEMBERS_FRESH_FOR = 30.0
MEMBERS_PAGE = 1000
# The membership check runs before a listener acks: it must leave room in Slack's 3 seconds.
MEMBERS_DEADLINE = 1.5


class SlackGateway:
    def __init__(self, client: AsyncWebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._bot_user: str | None = None
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, str] = {}

    async def _call(self, method: str, request: Awaitable[AsyncSlackResponse]) -> Result:
        try:
            response = await request
        except SlackApiError as exc:
            result = classify_error(exc)
            log.warning("Slack API %s failed: %s (%s)", method, result.error, result.outcome.value)
            return result
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, SlackRequestError) as exc:
            # SlackRequestError: an upload URL that did not take the bytes (files_upload_v2).
            log.warning("Slack API %s failed: %s", method, str(exc) or type(exc).__name__)
            return Result(Outcome.TRANSIENT, "connection_error")
        data = dict(response.data) if isinstance(response.data, dict) else {}
        return Result(Outcome.OK, data=data)

    async def post(self, channel: str, message: Rendered, effect_key: str | None = None) -> Result:
        """chat.postMessage; `effect_key` goes into the message's metadata, so `find_posted`
        can tell later whether a post whose answer was lost went through."""
        metadata = (
            {"event_type": EFFECT_EVENT, "event_payload": {"effect": effect_key}} if effect_key else None
        )
        return await self._call(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.block_dicts(),
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
            ),
        )

    async def post_message(self, channel: str, message: Rendered) -> str | None:
        """Post to a channel; returns the message ts, or None when it failed."""
        result = await self.post(channel, message)
        return str(result.data["ts"]) if result.ok else None

    async def find_posted(
        self, channel: str, effect_key: str, since: datetime, *, join: bool = False
    ) -> Result:
        """Look for a message the bot posted with `effect_key` in its metadata since `since`.

        OK with `data["ts"]` when found, OK with empty data when surely not there, else why not.
        `join`: the bot may post there through chat:write.public without being a member, and
        reading the history of a channel needs membership, so join it first."""
        if join:
            await self.join(channel)
        return await self._find_posted(channel, effect_key, since)

    async def join(self, channel: str) -> Result:
        return await self._call("conversations.join", self.client.conversations_join(channel=channel))

    async def _find_posted(self, channel: str, effect_key: str, since: datetime) -> Result:
        def posted(message: dict[str, Any]) -> dict[str, Any] | None:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == EFFECT_EVENT and payload.get("effect") == effect_key:
                return {"ts": message["ts"]}
            return None

        return await self._search_history(channel, since, posted, metadata=True)

    async def _search_history(
        self,
        channel: str,
        since: datetime,
        match: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        metadata: bool = False,
    ) -> Result:
        """The first message since `since` that `match` finds something in: OK with what it
        found, OK with empty data when surely none, else why it can't tell."""
        cursor: str | None = None
        for _ in range(5):  # 1,000 messages since the attempt is more than any incident channel sees
            result = await self._call(
                "conversations.history",
                self.client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp() - CLOCK_MARGIN:.6f}",
                    limit=HISTORY_PAGE,
                    include_all_metadata=metadata,
                    cursor=cursor,
                ),
            )
            if not result.ok:
                return result
            for message in result.data.get("messages", []):
                found = match(message)
                if found is not None:
                    return Result(Outcome.OK, data=found)
            cursor = (result.data.get("response_metadata") or {}).get("next_cursor") or None
            if not result.data.get("has_more") or not cursor:
                return Result(Outcome.OK)
        # Stopped looking with more to read: not "not there", but "can't tell yet".
        return Result(Outcome.TRANSIENT, "history_too_long")

    async def update_message(self, channel: str, ts: str, message: Rendered) -> Result:
        return await self._call(
            "chat.update",
            self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.block_dicts()),
        )

    async def post_ephemeral(self, channel: str, user: str, text: str) -> Result:
        return await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(channel=channel, user=user, text=text),
        )

    async def respond(self, response_url: str, message: Rendered) -> Result:
        """Post through a slash command's response_url (valid 30 minutes, 5 times)."""
        session = self.client.session
        body = {"text": message.text, "blocks": message.block_dicts(), "response_type": "in_channel"}
        try:
            if session is None:
                async with aiohttp.ClientSession() as own:
                    return await self._respond(own, response_url, body)
            return await self._respond(session, response_url, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("response_url failed: %s", str(exc) or type(exc).__name__)
            return Result(Outcome.TRANSIENT, "connection_error")

    async def _respond(self, session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Result:
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=json.dumps(body), headers=headers) as r:
            if r.status == 200:
                return Result(Outcome.OK)
            outcome = Outcome.TRANSIENT if r.status >= 500 else Outcome.REFUSED
            return Result(outcome, f"http_{r.status}")

    async def open_view(self, trigger_id: str, view: View) -> bool:
        result = await self._call("views.open", self.client.views_open(trigger_id=trigger_id, view=view))
        return result.ok

    async def bot_user(self) -> str | None:
        if self._bot_user is None:
            result = await self._call("auth.test", self.client.auth_test())
            if result.ok:
                self._bot_user = str(result.data.get("user_id") or "") or None
        return self._bot_user

    async def create_channel(self, name: str) -> Result:
        """Create a public channel, trying other names while Slack answers `name_taken`."""
        result = Result(Outcome.REFUSED, "no_name")
        for candidate in channel_name_candidates(name):
            result = await self._call(
                "conversations.create", self.client.conversations_create(name=candidate)
            )
            if result.ok or result.error != "name_taken":
                break
        return result

    async def find_created_channel(self, name: str, since: datetime) -> Result:
        """A channel the bot created since `since` under `name` or one of its variants: the
        channel of an earlier conversations.create whose answer was lost."""
        names = set(channel_name_candidates(name))
        me = await self.bot_user()
        if me is None:
            return Result(Outcome.TRANSIENT, "auth_test_failed")  # can't tell whose channels they are
        cursor: str | None = None
        for _ in range(20):
            result = await self._call(
                "conversations.list",
                self.client.conversations_list(
                    types="public_channel", exclude_archived=True, limit=1000, cursor=cursor
                ),
            )
            if not result.ok:
                return result
            for channel in result.data.get("channels", []):
                mine = channel.get("creator") == me
                recent = float(channel.get("created") or 0) >= since.timestamp() - 60
                if channel.get("name") in names and mine and recent:
                    return Result(Outcome.OK, data={"channel": channel})
            cursor = (result.data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return Result(Outcome.OK)

    async def invite(self, channel: str, users: list[str]) -> Result:
        result = await self._call(
            "conversations.invite",
            self.client.conversations_invite(channel=channel, users=",".join(users)),
        )
        if result.error in ("already_in_channel", "cant_invite_self"):
            return Result(Outcome.OK)
        return result

    async def is_member(self, channel: str, user: str) -> Result:
        """OK with `data["member"]` (bool) once known, within MEMBERS_DEADLINE; the member list
        is cached briefly (see MEMBERS_FRESH_FOR)."""
        cached = self._members.get(channel)
        now = self._clock()
        if cached is not None and user in cached[1] and now - cached[0] < MEMBERS_FRESH_FOR:
            return Result(Outcome.OK, data={"member": True})
        try:
            return await asyncio.wait_for(self._fetch_members(channel, user, now), MEMBERS_DEADLINE)
        except TimeoutError:
            log.warning("conversations.members for %s took over %.1fs", channel, MEMBERS_DEADLINE)
            return Result(Outcome.TRANSIENT, "timeout")

    async def _fetch_members(self, channel: str, user: str, now: float) -> Result:
        members: set[str] = set()
        cursor: str | None = None
        for _ in range(50):  # 50,000 members
            result = await self._call(
                "conversations.members",
                self.client.conversations_members(channel=channel, limit=MEMBERS_PAGE, cursor=cursor),
            )
            if not result.ok:
                return result
            members.update(str(m) for m in result.data.get("members", []))
            cursor = (result.data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        self._members[channel] = (now, frozenset(members))
        return Result(Outcome.OK, data={"member": user in members})

    async def permalink(self, channel: str, ts: str) -> str | None:
        result = await self._call(
            "chat.getPermalink", self.client.chat_getPermalink(channel=channel, message_ts=ts)
        )
        return str(result.data["permalink"]) if result.ok and result.data.get("permalink") else None

    async def upload_file(
        self,
        channel: str,
        filename: str,
        title: str,
        content: str | bytes,
        *,
        comment: str | None = None,
        alt_text: str | None = None,
    ) -> Result:
        """Upload a file into a channel (Slack's external upload flow: an upload URL, the bytes,
        then completing the upload into the channel), with `comment` as its message's text."""
        return await self._call(
            "files.uploadV2",
            self.client.files_upload_v2(
                channel=channel,
                filename=filename,
                title=title,
                content=content,
                initial_comment=comment,
                alt_txt=alt_text,
            ),
        )

    async def find_file(self, channel: str, filename: str, title: str, since: datetime) -> Result:
        """OK with `data["file"]` when a file named `filename` with `title` was shared in the
        channel since `since` (an upload whose answer was lost), OK with empty data when surely
        not."""

        def shared(message: dict[str, Any]) -> dict[str, Any] | None:
            files = message.get("files") or []
            found = [f for f in files if f.get("name") == filename and f.get("title") == title]
            return {"file": found[0]} if found else None

        return await self._search_history(channel, since, shared)

    async def user_names(self, users: set[str]) -> dict[str, str]:
        """Display names of users (users.info, remembered); a user Slack does not answer for
        is left out, for the caller to show by id."""
        for user in sorted(users - set(self._names)):
            result = await self._call("users.info", self.client.users_info(user=user))
            if not result.ok:
                continue
            found = result.data.get("user") or {}
            profile = found.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or found.get("name")
            if name:
                self._names[user] = str(name)
        return {user: self._names[user] for user in users if user in self._names}

