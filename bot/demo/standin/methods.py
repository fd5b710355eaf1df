"""The Web API methods the stand-in answers, with Slack's response shapes and errors.

Each handler takes a `CallContext` (the parsed arguments plus the workspace) and returns the
`ok: true` body, or raises `ApiError` with the code Slack would answer.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .limits import Rejection, check_message, check_view, parse_json_argument
from .metadata import CheckedMetadata, check_metadata
from .pagination import BadArgument, decode_cursor, encode_cursor, parse_limit, parse_ts
from .ratelimit import RateLimiter
from .workspace import (
    BotIdentity,
    Channel,
    JsonDict,
    Message,
    OpenedView,
    TriggerId,
    UploadedFile,
    Workspace,
)

# https://docs.slack.dev/reference/methods/views.open: a trigger_id expires 3 seconds after
# it was issued, and can be exchanged once.
TRIGGER_TTL_SECONDS = 3.0
# https://docs.slack.dev/reference/methods/conversations.create: names are lowercase letters,
# digits, hyphens and underscores, at most 80 characters.
MAX_CHANNEL_NAME_CHARS = 80
CHANNEL_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_")
# https://docs.slack.dev/surfaces/modals: a modal holds at most 3 views in its stack.
MAX_VIEW_STACK = 3
# https://docs.slack.dev/reference/methods/conversations.history: limit defaults to 100, "Maximum
# of 999". (Apps distributed commercially outside the Marketplace get 15 since 2025; incident-bot
# is installed by each team as its own internal app, so the internal-app limits apply.)
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 999
# https://docs.slack.dev/reference/methods/conversations.list: limit "Must be an integer under
# 1000". Larger values get a page rather than an error (scripts that list with limit=1000, or far
# more, work); a value Slack does not understand is invalid_limit.
LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 999
# https://docs.slack.dev/reference/methods/conversations.members: "specify a limit value under
# 1000"; the default page is 100, as for conversations.list.
MEMBERS_DEFAULT_LIMIT = 100
MEMBERS_MAX_LIMIT = 999
# https://docs.slack.dev/reference/methods/files.getUploadURLExternal: alt_txt_too_large past
# 1000 characters. files.completeUploadExternal: channels_limit_exceeded past 100 channels.
MAX_ALT_TXT_CHARS = 1000
MAX_SHARE_CHANNELS = 100
# conversations.list `types`, and the scope a bot token needs to list each.
LIST_TYPE_SCOPES = {
    "public_channel": "channels:read",
    "private_channel": "groups:read",
    "mpim": "mpim:read",
    "im": "im:read",
}


class ApiError(Exception):
    """An `ok: false` answer; `extra` carries method-specific fields (needed, provided, ...)."""

    def __init__(
        self,
        error: str,
        *,
        reasons: list[str] | None = None,
        reasons_in_body: bool = False,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        # Reasons are always recorded for tests; Slack only sends them for validation errors.
        self.reasons = list(reasons or [])
        self.reasons_in_body = reasons_in_body
        self.http_status = http_status
        self.headers = dict(headers or {})
        self.extra = extra

    @classmethod
    def from_rejection(cls, rejection: Rejection) -> ApiError:
        return cls(rejection.error, reasons=rejection.reasons, reasons_in_body=True)

    def to_response(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error": self.error, **self.extra}
        if self.reasons_in_body and self.reasons:
            body["errors"] = list(self.reasons)
            body["response_metadata"] = {"messages": [f"[ERROR] {r}" for r in self.reasons]}
        return body


@dataclass
class CallContext:
    workspace: Workspace
    params: JsonDict
    scopes: frozenset[str]
    allow_channel_creation: bool
    limiter: RateLimiter | None
    # Where the stand-in serves HTTP (http://127.0.0.1:PORT/), for the URLs it hands out.
    base_url: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
    # What the stand-in noticed about an accepted call (e.g. metadata Slack drops silently).
    notes: list[str] = field(default_factory=list)

    # -- guards ---------------------------------------------------------------------------

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(
                "missing_scope",
                reasons=[f"this call needs the {scope} scope"],
                needed=scope,
                provided=",".join(sorted(self.scopes)),
            )

    def rate_limit(self, method: str, key: str = "workspace") -> None:
        if self.limiter is None:
            return
        retry_after = self.limiter.take(method, key)
        if retry_after is not None:
            raise ApiError(
                "ratelimited",
                reasons=[f"{method} rate limit reached for {key}; retry after {retry_after}s"],
                http_status=429,
                headers={"Retry-After": str(retry_after)},
            )

    # -- arguments ------------------------------------------------------------------------

    def text_arg(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None:
            return None
        if isinstance(value, bool | int | float):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str):
            raise ApiError("invalid_arguments", reasons=[f"{name} must be a string"])
        return value

    def required_text_arg(self, name: str, error: str = "invalid_arguments") -> str:
        value = self.text_arg(name)
        if not value:
            raise ApiError(error, reasons=[f"missing required argument '{name}'"])
        return value

    def bool_arg(self, name: str) -> bool:
        value = self.params.get(name)
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true") if value is not None else False

    def json_arg(self, name: str, error: str) -> object:
        if self.params.get(name) is None:
            return None
        try:
            return parse_json_argument(self.params[name])
        except (json.JSONDecodeError, TypeError):
            raise ApiError(error, reasons=[f"{name} is not valid JSON"]) from None

    # -- shared lookups -------------------------------------------------------------------

    @property
    def bot_user(self) -> str:
        return self.workspace.bot.user_id

    def visible_channel(self, id_or_name: str | None, *, by_name: bool = True) -> Channel:
        """A channel the bot can see: private channels it is not in do not exist for it."""
        ws = self.workspace
        if not id_or_name:
            raise ApiError("channel_not_found", reasons=["no channel given"])
        channel = ws.resolve_channel(id_or_name) if by_name else ws.channel(id_or_name)
        if channel is None or (channel.is_private and self.bot_user not in channel.members):
            raise ApiError("channel_not_found", reasons=[f"no channel '{id_or_name}' visible"])
        return channel

    def ensure_can_post(self, channel: Channel) -> None:
        if channel.is_archived:
            raise ApiError("is_archived", reasons=[f"#{channel.name} is archived"])
        is_member = self.bot_user in channel.members
        if not is_member and "chat:write.public" not in self.scopes:
            raise ApiError(
                "not_in_channel",
                reasons=[f"the bot is not in #{channel.name} and lacks chat:write.public"],
            )

    def message_content(self) -> tuple[str | None, object, object]:
        text = self.text_arg("text")
        blocks = self.json_arg("blocks", "invalid_blocks_format")
        attachments = self.json_arg("attachments", "invalid_attachments")
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format", reasons=["blocks must be a JSON array"])
        return text, blocks, attachments

    def checked_metadata(self, *, empty_removes: bool = False) -> CheckedMetadata | None:
        """The `metadata` argument as Slack keeps it; None when it was not given."""
        raw = self.params.get("metadata")
        if raw is None:
            return None
        checked = check_metadata(raw, empty_removes=empty_removes)
        if isinstance(checked, Rejection):
            raise ApiError(checked.error, reasons=checked.reasons)
        if checked.dropped_because is not None:
            self.notes.append(checked.dropped_because)
        return checked

    def checked_message_content(self) -> tuple[str | None, object, object]:
        """A new message's content, refused as Slack refuses it (no text, bad blocks, limits)."""
        text, blocks, attachments = self.message_content()
        rejection = check_message(text=text, blocks=blocks, attachments=attachments)
        if rejection is not None:
            raise ApiError.from_rejection(rejection)
        return text, blocks, attachments


Handler = Callable[[CallContext], JsonDict]


# -- auth / users ---------------------------------------------------------------------------


def auth_test(ctx: CallContext) -> JsonDict:
    bot = ctx.workspace.bot
    return {
        "ok": True,
        "url": f"{bot.web_url}/",
        "team": bot.team_name,
        "user": bot.name,
        "team_id": bot.team_id,
        "user_id": bot.user_id,
        "bot_id": bot.bot_id,
        "is_enterprise_install": False,
    }


def users_info(ctx: CallContext) -> JsonDict:
    ctx.require_scope("users:read")
    user_id = ctx.required_text_arg("user", "user_not_found")
    user = ctx.workspace.users.get(user_id)
    if user is None:
        raise ApiError("user_not_found", reasons=[f"no user {user_id}"])
    return {"ok": True, "user": user.to_slack(ctx.workspace.bot.team_id)}


# -- chat -----------------------------------------------------------------------------------


def chat_post_message(ctx: CallContext) -> JsonDict:
    ctx.require_scope("chat:write")
    channel = ctx.visible_channel(ctx.text_arg("channel"))
    ctx.ensure_can_post(channel)
    ctx.rate_limit("chat.postMessage", channel.id)
    text, blocks, attachments = ctx.checked_message_content()
    metadata = ctx.checked_metadata()
    message = ctx.workspace.add_message(
        channel_id=channel.id,
        text=text or "",
        blocks=_as_block_list(blocks),
        attachments=_as_block_list(attachments),
        thread_ts=ctx.text_arg("thread_ts"),
        metadata=metadata.metadata if metadata is not None else None,
    )
    # The answer leaves the metadata out: slackapi/python-slack-sdk#1501 reports Slack's answer
    # to a bot's post without its event_payload, so the bot must not rely on reading it there.
    message_body = message.to_slack(include_metadata=False)
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": message_body}


def chat_update(ctx: CallContext) -> JsonDict:
    ctx.require_scope("chat:write")
    # chat.update identifies the conversation by ID only, never by name.
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ts = ctx.required_text_arg("ts", "message_not_found")
    message = ctx.workspace.find_message(channel.id, ts)
    if message is None:
        raise ApiError("message_not_found", reasons=[f"no message {ts} in {channel.id}"])
    if message.user != ctx.bot_user:
        raise ApiError("cant_update_message", reasons=["only the bot's own messages can change"])
    ctx.rate_limit("chat.update")
    text, blocks, attachments = ctx.message_content()
    if text is None and blocks is None and attachments is None:
        raise ApiError("no_text", reasons=["chat.update needs text, blocks or attachments"])
    rejection = check_message(text=text, blocks=blocks, content_required=False)
    if rejection is not None:
        raise ApiError.from_rejection(rejection)
    # Without `metadata` the message keeps its metadata; `{}` removes it (chat.update docs).
    metadata = ctx.checked_metadata(empty_removes=True)

    # Slack keeps the previous blocks only when neither text nor blocks are given.
    new_blocks = _as_block_list(blocks) if blocks is not None else []
    new_text = text if text is not None else message.text
    if not new_text and not new_blocks and not attachments:
        raise ApiError("no_text", reasons=["the updated message would be empty"])
    message.text = new_text
    message.blocks = ctx.workspace.with_generated_ids(new_blocks)
    if attachments is not None:
        message.attachments = _as_block_list(attachments)
    if metadata is not None and metadata.dropped_because is None:
        message.metadata = metadata.metadata
    if blocks is None:
        message.edited_ts = ctx.workspace.next_ts()
    return {
        "ok": True,
        "channel": channel.id,
        "ts": message.ts,
        "text": message.text,
        "message": message.to_slack(include_metadata=False),
    }


def chat_post_ephemeral(ctx: CallContext) -> JsonDict:
    ctx.require_scope("chat:write")
    channel = ctx.visible_channel(ctx.text_arg("channel"))
    ctx.ensure_can_post(channel)
    user_id = ctx.required_text_arg("user", "user_not_in_channel")
    if user_id not in ctx.workspace.users or (not channel.is_general and user_id not in channel.members):
        raise ApiError("user_not_in_channel", reasons=[f"{user_id} is not in #{channel.name}"])
    text, blocks, _ = ctx.checked_message_content()
    ephemeral = ctx.workspace.add_ephemeral(
        channel_id=channel.id,
        user_id=user_id,
        text=text or "",
        blocks=_as_block_list(blocks),
        thread_ts=ctx.text_arg("thread_ts"),
    )
    return {"ok": True, "message_ts": ephemeral.ts}


def chat_get_permalink(ctx: CallContext) -> JsonDict:
    """https://docs.slack.dev/reference/methods/chat.getPermalink needs no scope, only a token."""
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ts = ctx.required_text_arg("message_ts", "message_not_found")
    message = ctx.workspace.find_message(channel.id, ts)
    if message is None:
        raise ApiError("message_not_found", reasons=[f"no message {ts} in {channel.id}"])
    return {"ok": True, "channel": channel.id, "permalink": permalink(ctx.workspace.bot, message)}


def permalink(bot: BotIdentity, message: Message) -> str:
    link = f"{bot.web_url}/archives/{message.channel}/p{message.ts.replace('.', '')}"
    if message.thread_ts is not None and message.thread_ts != message.ts:
        link += f"?thread_ts={message.thread_ts}&cid={message.channel}"
    return link


# -- conversations --------------------------------------------------------------------------


def conversations_create(ctx: CallContext) -> JsonDict:
    is_private = ctx.bool_arg("is_private")
    ctx.require_scope("groups:write" if is_private else "channels:manage")
    ctx.rate_limit("conversations.create")
    if not ctx.allow_channel_creation:
        raise ApiError("restricted_action", reasons=["workspace settings forbid creating channels"])
    name = ctx.text_arg("name") or ""
    _check_channel_name(ctx.workspace, name)
    channel = ctx.workspace.create_channel(name, is_private=is_private, creator=ctx.bot_user)
    return {"ok": True, "channel": channel.to_slack(ctx.bot_user)}


def _check_channel_name(workspace: Workspace, name: str) -> None:
    if not name:
        raise ApiError("invalid_name_required", reasons=["channel name is empty"])
    if len(name) > MAX_CHANNEL_NAME_CHARS:
        raise ApiError(
            "invalid_name_maxlength",
            reasons=[f"channel name is {len(name)} characters; at most {MAX_CHANNEL_NAME_CHARS}"],
        )
    bad = sorted(set(name) - CHANNEL_NAME_CHARS)
    if bad:
        raise ApiError(
            "invalid_name_specials",
            reasons=[f"channel name has characters Slack refuses: {''.join(bad)!r}"],
        )
    if set(name) <= {"-", "_"}:
        raise ApiError("invalid_name_punctuation", reasons=["channel name is only punctuation"])
    if workspace.channel_by_name(name) is not None:
        raise ApiError("name_taken", reasons=[f"#{name} already exists"])


def conversations_invite(ctx: CallContext) -> JsonDict:
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ctx.require_scope("groups:write" if channel.is_private else "channels:manage")
    if ctx.bot_user not in channel.members:
        raise ApiError("not_in_channel", reasons=[f"the bot is not in #{channel.name}"])
    user_ids = _user_list(ctx.params.get("users"))
    if not user_ids:
        raise ApiError("no_user", reasons=["no users given"])

    failures: list[JsonDict] = []
    for user_id in user_ids:
        if user_id == ctx.bot_user:
            failures.append({"user": user_id, "ok": False, "error": "cant_invite_self"})
        elif user_id not in ctx.workspace.users:
            failures.append({"user": user_id, "ok": False, "error": "user_not_found"})
        elif user_id in channel.members:
            failures.append({"user": user_id, "ok": False, "error": "already_in_channel"})
    if failures:
        # Without force=true Slack invites nobody when any user fails.
        raise ApiError(
            str(failures[0]["error"]),
            reasons=[f"{f['user']}: {f['error']}" for f in failures],
            errors=failures,
        )
    channel.members.update(user_ids)
    return {"ok": True, "channel": channel.to_slack(ctx.bot_user)}


def _user_list(raw: object) -> list[str]:
    if isinstance(raw, list):
        return [str(u).strip() for u in raw if str(u).strip()]
    if isinstance(raw, str):
        return [u.strip() for u in raw.split(",") if u.strip()]
    return []


def conversations_join(ctx: CallContext) -> JsonDict:
    ctx.require_scope("channels:join")
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    if channel.is_private:
        raise ApiError(
            "method_not_supported_for_channel_type",
            reasons=["private channels cannot be joined, only invited to"],
        )
    body: JsonDict = {"ok": True, "channel": channel.to_slack(ctx.bot_user)}
    if ctx.bot_user in channel.members:
        body["warning"] = "already_in_channel"
        body["response_metadata"] = {"warnings": ["already_in_channel"]}
        return body
    channel.members.add(ctx.bot_user)
    body["channel"] = channel.to_slack(ctx.bot_user)
    return body


def conversations_info(ctx: CallContext) -> JsonDict:
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ctx.require_scope("groups:read" if channel.is_private else "channels:read")
    include_num = ctx.bool_arg("include_num_members")
    return {"ok": True, "channel": channel.to_slack(ctx.bot_user, include_num_members=include_num)}


def conversations_history(ctx: CallContext) -> JsonDict:
    """Top-level messages of a channel the bot is in, newest first, in cursor pages.

    https://docs.slack.dev/reference/methods/conversations.history: a bot token reads "any
    conversation the relevant bot is a member of" with the relevant *:history scope, and its
    `not_in_channel` error says "Only user tokens can access public channels they are not in".
    So a bot outside a public channel gets not_in_channel; a private channel it is not in does
    not exist for it (channel_not_found), as everywhere else.
    """
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ctx.require_scope("groups:history" if channel.is_private else "channels:history")
    if ctx.bot_user not in channel.members:
        raise ApiError("not_in_channel", reasons=[f"the bot is not in #{channel.name}"])
    try:
        oldest = parse_ts(ctx.params.get("oldest"), "invalid_ts_oldest")
        latest = parse_ts(ctx.params.get("latest"), "invalid_ts_latest")
        limit = parse_limit(ctx.params.get("limit"), default=HISTORY_DEFAULT_LIMIT, maximum=HISTORY_MAX_LIMIT)
        cursor = ctx.text_arg("cursor")
        start = Decimal(decode_cursor(cursor, "next_ts")) if cursor else None
    except BadArgument as bad:
        raise ApiError(bad.error, reasons=[bad.reason]) from None
    inclusive = ctx.bool_arg("inclusive")

    def in_range(ts: Decimal) -> bool:
        # `latest` defaults to "now" at Slack; with a frozen test clock stand-in timestamps can
        # run ahead of now, so no upper bound stands in for it.
        above = oldest is None or ts > oldest or (inclusive and ts == oldest)
        below = latest is None or ts < latest or (inclusive and ts == latest)
        return above and below and (start is None or ts <= start)

    # Thread replies stay in conversations.replies; only their parents are in the history.
    top_level = [m for m in ctx.workspace.messages[channel.id] if m.thread_ts in (None, m.ts)]
    matching = sorted(
        (m for m in top_level if in_range(Decimal(m.ts))), key=lambda m: Decimal(m.ts), reverse=True
    )
    page, rest = matching[:limit], matching[limit:]
    with_metadata = ctx.bool_arg("include_all_metadata")
    body: JsonDict = {
        "ok": True,
        "messages": [m.to_slack(include_metadata=with_metadata) for m in page],
        "has_more": bool(rest),
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }
    if latest is not None:
        body["latest"] = ctx.text_arg("latest")
    if rest:
        body["response_metadata"] = {"next_cursor": encode_cursor("next_ts", rest[0].ts)}
    return body


def conversations_list(ctx: CallContext) -> JsonDict:
    """The channels the bot can see, in cursor pages.

    https://docs.slack.dev/reference/methods/conversations.list: every public channel (with
    `is_member` from the bot's side), and private channels only where the bot is a member. Each
    requested type needs its read scope: channels:read for public_channel, groups:read for
    private_channel.
    """
    types = [t.strip() for t in (ctx.text_arg("types") or "public_channel").split(",") if t.strip()]
    unknown = sorted(set(types) - set(LIST_TYPE_SCOPES))
    if unknown or not types:
        raise ApiError("invalid_types", reasons=[f"unknown conversation types: {', '.join(unknown)}"])
    for kind in types:
        ctx.require_scope(LIST_TYPE_SCOPES[kind])
    try:
        limit = parse_limit(ctx.params.get("limit"), default=LIST_DEFAULT_LIMIT, maximum=LIST_MAX_LIMIT)
        cursor = ctx.text_arg("cursor")
        start_id = decode_cursor(cursor, "team") if cursor else None
    except BadArgument as bad:
        raise ApiError(bad.error, reasons=[bad.reason]) from None
    exclude_archived = ctx.bool_arg("exclude_archived")

    def listed(channel: Channel) -> bool:
        if channel.is_archived and exclude_archived:
            return False
        if channel.is_private:
            return "private_channel" in types and ctx.bot_user in channel.members
        return "public_channel" in types

    channels = [c for c in ctx.workspace.channels.values() if listed(c)]
    if start_id is not None:
        position = next((i for i, c in enumerate(channels) if c.id == start_id), None)
        if position is None:
            raise ApiError("invalid_cursor", reasons=[f"cursor points at {start_id}, no longer listed"])
        channels = channels[position:]
    page, rest = channels[:limit], channels[limit:]
    return {
        "ok": True,
        "channels": [c.to_slack(ctx.bot_user, include_num_members=True) for c in page],
        "response_metadata": {"next_cursor": encode_cursor("team", rest[0].id) if rest else ""},
    }


def conversations_members(ctx: CallContext) -> JsonDict:
    """The user ids in a channel, in cursor pages.

    https://docs.slack.dev/reference/methods/conversations.members: channels:read for a public
    channel (the bot need not be in it), groups:read for a private one; a private channel the bot
    is not in does not exist for it (channel_not_found). Cursors look like Slack's, base64 of
    `user:<id>`; members are listed by id, so a cursor stays good when its user leaves.
    """
    channel = ctx.visible_channel(ctx.text_arg("channel"), by_name=False)
    ctx.require_scope("groups:read" if channel.is_private else "channels:read")
    try:
        limit = parse_limit(ctx.params.get("limit"), default=MEMBERS_DEFAULT_LIMIT, maximum=MEMBERS_MAX_LIMIT)
        cursor = ctx.text_arg("cursor")
        start_id = decode_cursor(cursor, "user") if cursor else None
    except BadArgument as bad:
        raise ApiError(bad.error, reasons=[bad.reason]) from None
    members = sorted(m for m in channel.members if start_id is None or m >= start_id)
    page, rest = members[:limit], members[limit:]
    return {
        "ok": True,
        "members": page,
        "response_metadata": {"next_cursor": encode_cursor("user", rest[0]) if rest else ""},
    }


# -- files ----------------------------------------------------------------------------------


def files_get_upload_url_external(ctx: CallContext) -> JsonDict:
    """Step 1 of an upload: a file id and the URL to POST its bytes to (served by the stand-in).

    https://docs.slack.dev/reference/methods/files.getUploadURLExternal: files:write; `filename`
    and `length` are required, and a `length` of 0 is missing_argument.
    """
    ctx.require_scope("files:write")
    filename = ctx.required_text_arg("filename")
    raw_length = ctx.text_arg("length")
    if not raw_length or raw_length == "0":
        raise ApiError("missing_argument", reasons=["length is missing or 0"])
    try:
        length = int(raw_length)
    except ValueError:
        raise ApiError("invalid_arguments", reasons=[f"length {raw_length!r} is not an integer"]) from None
    if length < 0:
        raise ApiError("invalid_arguments", reasons=[f"length {length} is negative"])
    alt_txt = ctx.text_arg("alt_txt")
    if alt_txt is not None and len(alt_txt) > MAX_ALT_TXT_CHARS:
        raise ApiError(
            "alt_txt_too_large",
            reasons=[f"alt_txt is {len(alt_txt)} characters; at most {MAX_ALT_TXT_CHARS}"],
        )
    ws = ctx.workspace
    uploaded = UploadedFile(
        id=f"F{ws.next_number('file'):04d}",
        name=filename,
        length=length,
        user=ctx.bot_user,
        created=int(ws.clock()),
        upload_ticket=f"{ws.next_number('upload')}-{secrets.token_hex(8)}",
        alt_txt=alt_txt,
        snippet_type=ctx.text_arg("snippet_type"),
    )
    ws.files[uploaded.id] = uploaded
    upload_url = f"{ctx.base_url}upload/v1/{uploaded.upload_ticket}"
    return {"ok": True, "upload_url": upload_url, "file_id": uploaded.id}


def files_complete_upload_external(ctx: CallContext) -> JsonDict:
    """Step 3 of an upload: titles the files and shares them, each in a message of its own channel.

    https://docs.slack.dev/reference/methods/files.completeUploadExternal: files:write; "Could not
    find the file from the upload ticket" is file_not_found, which the stand-in also answers for
    bytes that never arrived or differ in size from `length` (Slack documents no closer error),
    and for a second completion ("This method can only be called once"). Sharing needs the bot in
    the channel (not_in_channel), even in a public one where chat:write.public lets it post; a
    private one it is not in answers not_in_channel here too, not channel_not_found.
    Everything is checked before anything is shared. Slack shares asynchronously; the stand-in
    shares at once.
    """
    ctx.require_scope("files:write")
    uploads = _files_to_complete(ctx)
    channels = _share_channels(ctx)
    thread_ts = ctx.text_arg("thread_ts")
    if thread_ts and len(channels) > 1:
        raise ApiError("invalid_arguments", reasons=["thread_ts shares into one channel only"])
    if ctx.params.get("blocks") is not None and not ctx.text_arg("initial_comment"):
        ctx.notes.append("blocks in files.completeUploadExternal are not shown by the stand-in")

    ws = ctx.workspace
    for uploaded, title in uploads:
        uploaded.title = title or uploaded.name
        uploaded.completed = True
    shared = [uploaded.to_slack(ws.bot) for uploaded, _ in uploads]
    for channel in channels:
        ws.add_message(
            channel_id=channel.id,
            text=ctx.text_arg("initial_comment") or "",
            blocks=[],
            thread_ts=thread_ts,
            files=shared,
        )
        for uploaded, _ in uploads:
            uploaded.channels.append(channel.id)
    return {"ok": True, "files": shared}


def _files_to_complete(ctx: CallContext) -> list[tuple[UploadedFile, str | None]]:
    listed = ctx.json_arg("files", "invalid_arguments")
    if not isinstance(listed, list) or not listed:
        raise ApiError("invalid_arguments", reasons=["files must be a non-empty JSON array"])
    uploads: list[tuple[UploadedFile, str | None]] = []
    for entry in listed:
        file_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise ApiError("invalid_arguments", reasons=[f"{entry!r} is not an object with an id"])
        title = entry.get("title")
        uploads.append((_uploaded_file(ctx.workspace, file_id), title if isinstance(title, str) else None))
    return uploads


def _uploaded_file(ws: Workspace, file_id: str) -> UploadedFile:
    uploaded = ws.files.get(file_id)
    if uploaded is None:
        raise ApiError("file_not_found", reasons=[f"no upload {file_id} was started"])
    if uploaded.completed:
        raise ApiError("file_not_found", reasons=[f"{file_id} was already completed"])
    if uploaded.content is None:
        raise ApiError("file_not_found", reasons=[f"no bytes were POSTed to the upload URL of {file_id}"])
    if len(uploaded.content) != uploaded.length:
        raise ApiError(
            "file_not_found",
            reasons=[f"{file_id} got {len(uploaded.content)} bytes; length said {uploaded.length}"],
        )
    return uploaded


def _share_channels(ctx: CallContext) -> list[Channel]:
    """The channels named by `channel_id` and `channels`, each one the bot may share into."""
    ids = [ctx.text_arg("channel_id") or "", *(ctx.text_arg("channels") or "").split(",")]
    wanted = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if len(wanted) > MAX_SHARE_CHANNELS:
        raise ApiError(
            "channels_limit_exceeded", reasons=[f"{len(wanted)} channels; at most {MAX_SHARE_CHANNELS}"]
        )
    channels: list[Channel] = []
    for channel_id in wanted:
        channel = ctx.workspace.channel(channel_id)
        if channel is None:
            raise ApiError("channel_not_found", reasons=[f"no channel {channel_id}"])
        if ctx.bot_user not in channel.members:
            raise ApiError("not_in_channel", reasons=[f"the bot is not in #{channel.name}"])
        channels.append(channel)
    return channels


# -- views ----------------------------------------------------------------------------------


def views_open(ctx: CallContext) -> JsonDict:
    view = _checked_view(ctx)
    trigger = _exchange_trigger(ctx)
    opened = open_view(ctx.workspace, view, user_id=trigger.user_id, trigger_id=trigger.id)
    return {"ok": True, "view": opened.to_slack(ctx.workspace.bot)}


def views_push(ctx: CallContext) -> JsonDict:
    view = _checked_view(ctx)
    trigger = _exchange_trigger(ctx)
    ws = ctx.workspace
    below = _top_view(ws, trigger)
    if below is None:
        # Slack does not document a push with no modal open; treat it as a fresh modal.
        opened = open_view(ws, view, user_id=trigger.user_id, trigger_id=trigger.id)
        return {"ok": True, "view": opened.to_slack(ws.bot)}
    stack = [v for v in ws.views.values() if v.is_open and v.root_view_id == below.root_view_id]
    if len(stack) >= MAX_VIEW_STACK:
        raise ApiError("push_limit_reached", reasons=[f"a modal holds at most {MAX_VIEW_STACK}"])
    opened = open_view(ws, view, user_id=trigger.user_id, trigger_id=trigger.id, below=below)
    return {"ok": True, "view": opened.to_slack(ws.bot)}


def views_update(ctx: CallContext) -> JsonDict:
    ws = ctx.workspace
    view_id = ctx.text_arg("view_id")
    external_id = ctx.text_arg("external_id")
    if not view_id and not external_id:
        raise ApiError("invalid_arguments", reasons=["views.update needs view_id or external_id"])
    target = next(
        (
            v
            for v in ws.views.values()
            if (view_id and v.id == view_id) or (external_id and v.external_id == external_id)
        ),
        None,
    )
    if target is None or not target.is_open:
        raise ApiError("not_found", reasons=[f"no open view {view_id or external_id}"])
    expected_hash = ctx.text_arg("hash")
    if expected_hash and expected_hash != target.hash:
        raise ApiError("hash_conflict", reasons=["the view changed since that hash was issued"])
    view = _checked_view(ctx, updating=target)
    replace_view(ws, target, view)
    return {"ok": True, "view": target.to_slack(ws.bot)}


def _checked_view(ctx: CallContext, updating: OpenedView | None = None) -> JsonDict:
    view = ctx.json_arg("view", "invalid_arguments")
    if view is None:
        raise ApiError("invalid_arguments", reasons=["missing required argument 'view'"])
    rejection = check_view(view)
    if rejection is not None:
        raise ApiError.from_rejection(rejection)
    assert isinstance(view, dict)  # check_view refuses anything else
    external_id = view.get("external_id")
    # external_id must be unique across the team's views.
    if external_id and any(
        v.external_id == external_id and v is not updating for v in ctx.workspace.views.values()
    ):
        raise ApiError("duplicate_external_id", reasons=[f"external_id {external_id} is taken"])
    return view


def _exchange_trigger(ctx: CallContext) -> TriggerId:
    trigger_id = ctx.required_text_arg("trigger_id", "invalid_trigger_id")
    trigger = ctx.workspace.triggers.get(trigger_id)
    if trigger is None:
        raise ApiError("invalid_trigger_id", reasons=[f"{trigger_id} was never issued"])
    if trigger.used:
        raise ApiError("exchanged_trigger_id", reasons=[f"{trigger_id} was already used"])
    age = ctx.workspace.clock() - trigger.issued_at
    if age > TRIGGER_TTL_SECONDS:
        raise ApiError(
            "expired_trigger_id",
            reasons=[f"{trigger_id} is {age:.1f}s old; it lives {TRIGGER_TTL_SECONDS:.0f}s"],
        )
    trigger.used = True
    return trigger


def _top_view(ws: Workspace, trigger: TriggerId) -> OpenedView | None:
    if trigger.view_id is not None:
        source = ws.views.get(trigger.view_id)
        if source is not None and source.is_open:
            stack = [v for v in ws.views.values() if v.is_open and v.root_view_id == source.root_view_id]
            return stack[-1]
    open_views = [v for v in ws.views.values() if v.is_open and v.user_id == trigger.user_id]
    return open_views[-1] if open_views else None


def open_view(
    ws: Workspace,
    view: JsonDict,
    *,
    user_id: str,
    trigger_id: str | None,
    below: OpenedView | None = None,
) -> OpenedView:
    view_id = f"V{ws.next_number('view'):04d}"
    stored = copy.deepcopy(view)
    stored["blocks"] = ws.with_generated_ids(list(view.get("blocks", [])))
    opened = OpenedView(
        id=view_id,
        user_id=user_id,
        trigger_id=trigger_id,
        view=stored,
        hash=_new_hash(ws),
        root_view_id=below.root_view_id if below is not None else view_id,
        previous_view_id=below.id if below is not None else None,
        opened_at=ws.clock(),
    )
    ws.views[view_id] = opened
    return opened


def replace_view(ws: Workspace, target: OpenedView, view: JsonDict) -> None:
    stored = copy.deepcopy(view)
    stored["blocks"] = ws.with_generated_ids(list(view.get("blocks", [])))
    target.view = stored
    target.hash = _new_hash(ws)


def _new_hash(ws: Workspace) -> str:
    return f"{int(ws.clock())}.{secrets.token_hex(4)}"


def _as_block_list(value: object) -> list[JsonDict]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


METHODS: dict[str, Handler] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "conversations.create": conversations_create,
    "conversations.invite": conversations_invite,
    "conversations.join": conversations_join,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.list": conversations_list,
    "conversations.members": conversations_members,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
    "views.open": views_open,
    "views.update": views_update,
    "views.push": views_push,
    "users.info": users_info,
}
