"""In-memory state of the stand-in workspace: who is in it, what was said, what was called.

Everything here is plain state plus the bookkeeping Slack itself does (ids, timestamps,
generated block ids). The rules of the Web API (errors, scopes, limits) live in
`methods.py` and `limits.py`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonDict = dict[str, Any]

# How a message got there: the app's Web API call, its reply to an interaction, or a person.
MessageSource = Literal["api", "response_url", "ack", "user"]
ReplyOutcome = Literal["ephemeral", "in_channel", "replaced", "deleted"]
FaultKind = Literal["fail", "error", "hang", "close_connection"]
CallKind = Literal["web_api", "reply", "upload"]


class SeedUser(BaseModel):
    """A human member of the workspace, created when the stand-in starts."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    real_name: str = ""


class SeedChannel(BaseModel):
    """A channel that exists before the bot does anything.

    `members=None` means every seeded human; the bot is only a member when listed.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    is_private: bool = False
    is_general: bool = False
    members: frozenset[str] | None = None
    # Who created it; None means the workspace's first seeded human (as a workspace owner would).
    creator: str | None = None


DEFAULT_USERS: tuple[SeedUser, ...] = (
    SeedUser(id="U0ALICE", name="alice", real_name="Alice Archer"),
    SeedUser(id="U0BOB", name="bob", real_name="Bob Baker"),
    SeedUser(id="U0CAROL", name="carol", real_name="Carol Chen"),
)
# The on-call team: each joins a public channel the moment they act in it (as a responder
# clicks "Join channel" in Slack before typing or clicking there). Anyone else stays out until
# added, so a test has bystanders by leaving them out of `responders`.
DEFAULT_RESPONDERS: frozenset[str] = frozenset({"U0ALICE", "U0BOB", "U0CAROL"})

DEFAULT_CHANNELS: tuple[SeedChannel, ...] = (
    SeedChannel(id="C0GENERAL", name="general", is_general=True),
    SeedChannel(id="C0MANAGERS", name="incident-managers"),
)


class BotIdentity(BaseModel):
    """The app under test as Slack knows it."""

    model_config = ConfigDict(frozen=True)

    team_id: str = "T0001"
    team_domain: str = "standin"
    team_name: str = "Stand-in Workspace"
    app_id: str = "A0001"
    bot_id: str = "B0001"
    user_id: str = "U0BOT"
    name: str = "incident-bot"

    @property
    def web_url(self) -> str:
        """The workspace's address, as in its permalinks (https://<domain>.slack.com at Slack)."""
        return f"https://{self.team_domain}.slack.test"


class User(BaseModel):
    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False

    def to_slack(self, team_id: str) -> JsonDict:
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name or self.name,
            "tz": "Etc/UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": {
                "real_name": self.real_name or self.name,
                "display_name": self.name,
                "team": team_id,
            },
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
        }


class Channel(BaseModel):
    id: str
    name: str
    is_private: bool = False
    is_general: bool = False
    is_archived: bool = False
    members: set[str] = Field(default_factory=set)
    created: int
    creator: str = ""

    def to_slack(self, viewer_id: str, *, include_num_members: bool = False) -> JsonDict:
        body: JsonDict = {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "creator": self.creator,
            "is_member": viewer_id in self.members,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [],
        }
        if include_num_members:
            body["num_members"] = len(self.members)
        return body


class Message(BaseModel):
    """A message as it currently stands in a channel (after any chat.update)."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[JsonDict] = Field(default_factory=list)
    attachments: list[JsonDict] = Field(default_factory=list)
    user: str
    bot_id: str | None = None
    app_id: str | None = None
    team: str
    thread_ts: str | None = None
    edited_ts: str | None = None
    source: MessageSource = "api"
    # {"event_type": ..., "event_payload": {...}} as chat.postMessage / chat.update stored it.
    metadata: JsonDict | None = None
    # File objects shared with the message (files.completeUploadExternal), as Slack shows them.
    files: list[JsonDict] = Field(default_factory=list)

    def to_slack(self, *, include_metadata: bool = True) -> JsonDict:
        """The message as Slack returns it in API responses and interaction payloads.

        Metadata is left out where Slack leaves it out (conversations.history without
        include_all_metadata, the answer to chat.postMessage).
        """
        body: JsonDict = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts}
        if self.bot_id is not None:
            body["bot_id"] = self.bot_id
        if self.app_id is not None:
            body["app_id"] = self.app_id
        if self.blocks:
            body["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            body["attachments"] = copy.deepcopy(self.attachments)
        body["team"] = self.team
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.edited_ts is not None:
            body["edited"] = {"user": self.user, "ts": self.edited_ts}
        if include_metadata and self.metadata is not None:
            body["metadata"] = copy.deepcopy(self.metadata)
        if self.files:
            body["files"] = copy.deepcopy(self.files)
            body["upload"] = True
        return body


class EphemeralMessage(BaseModel):
    """A message only one user sees ("Only visible to you")."""

    channel: str
    user: str
    ts: str
    text: str = ""
    blocks: list[JsonDict] = Field(default_factory=list)
    thread_ts: str | None = None
    source: MessageSource = "api"


class UploadedFile(BaseModel):
    """A file the app uploaded, and where it was shared.

    The external way, as files_upload_v2 does it: files.getUploadURLExternal, a POST of the
    bytes to the upload URL, then files.completeUploadExternal (which titles and shares it).
    """

    id: str
    name: str
    title: str = ""
    # The size files.getUploadURLExternal was told; `content` is what was POSTed (None: nothing yet).
    length: int
    content: bytes | None = None
    user: str
    created: int
    upload_ticket: str
    alt_txt: str | None = None
    snippet_type: str | None = None
    completed: bool = False
    # Where completion shared it, in order; empty for a file completed without a channel (private).
    channels: list[str] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The content as UTF-8 text (a postmortem draft, a snippet)."""
        if self.content is None:
            raise ValueError(f"no bytes were uploaded for {self.id}")
        return self.content.decode()

    def to_slack(self, bot: BotIdentity) -> JsonDict:
        """The file object as files.completeUploadExternal answers it and messages carry it."""
        private = f"https://files.slack.test/files-pri/{bot.team_id}-{self.id}"
        return {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title or self.name,
            "user": self.user,
            "user_team": bot.team_id,
            "editable": False,
            "size": len(self.content or b""),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "display_as_bot": False,
            "username": "",
            "url_private": f"{private}/{self.name}",
            "url_private_download": f"{private}/download/{self.name}",
            "permalink": f"{bot.web_url}/files/{self.user}/{self.id}/{self.name}",
        }


class OpenedView(BaseModel):
    """A modal view as the stand-in holds it; `view` is what the app sent, with ids filled in."""

    id: str
    user_id: str
    trigger_id: str | None
    view: JsonDict
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    is_open: bool = True
    opened_at: float

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata", ""))

    @property
    def external_id(self) -> str:
        return str(self.view.get("external_id", ""))

    def to_slack(self, bot: BotIdentity, state_values: JsonDict | None = None) -> JsonDict:
        """The view object as Slack returns it from views.* and in view_submission payloads."""
        view = self.view
        return {
            "id": self.id,
            "team_id": bot.team_id,
            "type": view.get("type", "modal"),
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "state": {"values": copy.deepcopy(state_values or {})},
            "hash": self.hash,
            "title": copy.deepcopy(view.get("title")),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": copy.deepcopy(view.get("close")),
            "submit": copy.deepcopy(view.get("submit")),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": bot.app_id,
            "external_id": self.external_id,
            "app_installed_team_id": bot.team_id,
            "bot_id": bot.bot_id,
        }


class TriggerId(BaseModel):
    id: str
    user_id: str
    issued_at: float
    view_id: str | None = None
    used: bool = False


class ResponseUrl(BaseModel):
    id: str
    channel_id: str
    user_id: str
    message_ts: str | None = None
    issued_at: float
    uses: int = 0


class ResponseDelivery(BaseModel):
    """One POST to a response_url (or a slash command's ack body), accepted or not."""

    response_url_id: str | None
    channel_id: str
    user_id: str
    payload: JsonDict
    ok: bool
    http_status: int
    error: str | None = None
    reasons: list[str] = Field(default_factory=list)
    applied_as: ReplyOutcome | None = None
    at: float


class ApiCall(BaseModel):
    """One Web API call as the stand-in received and answered it.

    `kind="reply"` marks what the app sent back outside the Web API (a response_url post, a
    slash command's ack body, a view_submission response_action), and `kind="upload"` a file's
    bytes POSTed to its upload URL: those are logged here so `rejected_calls()` shows every
    refusal, but `calls()` lists Web API calls only.

    A call that met an injected fault (`SlackStandIn.faults`) names it in `fault`. `injected`
    says the answer was made up by the fault and the workspace never saw the call; otherwise
    `ok`, `error` and `response` are the workspace's own answer, even if the client got it late
    or not at all. `applied` says the workspace carried the call out. `http_status` is None
    when the connection was closed without an answer.
    """

    kind: CallKind = "web_api"
    method: str
    params: JsonDict
    ok: bool
    error: str | None = None
    http_status: int | None = 200
    reasons: list[str] = Field(default_factory=list)
    response: JsonDict = Field(default_factory=dict)
    at: float
    applied: bool = False
    fault: FaultKind | None = None
    injected: bool = False


class Workspace:
    """All mutable state of one stand-in workspace."""

    def __init__(
        self,
        *,
        bot: BotIdentity,
        users: Iterable[SeedUser],
        channels: Iterable[SeedChannel],
        clock: Callable[[], float],
        responders: Iterable[str] = (),
    ) -> None:
        self.bot = bot
        self.clock = clock
        self.responders = frozenset(responders)  # users who join a public channel to act in it
        self._counters: dict[str, Iterator[int]] = {}
        self._last_ts_micros = 0

        self.users: dict[str, User] = {
            bot.user_id: User(id=bot.user_id, name=bot.name, real_name=bot.name, is_bot=True)
        }
        for seed_user in users:
            self.users[seed_user.id] = User(
                id=seed_user.id, name=seed_user.name, real_name=seed_user.real_name
            )
        humans = {uid for uid, user in self.users.items() if not user.is_bot}
        first_human = next((uid for uid, user in self.users.items() if not user.is_bot), "")

        self.channels: dict[str, Channel] = {}
        for seed in channels:
            members = set(seed.members) if seed.members is not None else set(humans)
            self.channels[seed.id] = Channel(
                id=seed.id,
                name=seed.name,
                is_private=seed.is_private,
                is_general=seed.is_general,
                members=members,
                created=int(clock()),
                creator=seed.creator if seed.creator is not None else first_human,
            )

        self.messages: dict[str, list[Message]] = {cid: [] for cid in self.channels}
        self.ephemerals: list[EphemeralMessage] = []
        self.views: dict[str, OpenedView] = {}
        self.triggers: dict[str, TriggerId] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.responses: list[ResponseDelivery] = []
        self.files: dict[str, UploadedFile] = {}
        self.calls: list[ApiCall] = []

    # -- ids and timestamps -------------------------------------------------------------

    def next_number(self, kind: str) -> int:
        counter = self._counters.setdefault(kind, itertools.count(1))
        return next(counter)

    def next_ts(self) -> str:
        """A message ts: wall-clock based like Slack's, and strictly increasing."""
        micros = max(int(self.clock() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def generated_id(self, kind: str) -> str:
        # Slack fills in short random-looking ids for blocks/actions the app left unnamed.
        number = self.next_number(kind)
        digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        encoded = ""
        while True:
            number, rest = divmod(number, len(digits))
            encoded = digits[rest] + encoded
            if number == 0:
                break
        return encoded.rjust(4, "0")

    # -- lookups -------------------------------------------------------------------------

    def channel(self, channel_id: str) -> Channel | None:
        return self.channels.get(channel_id)

    def channel_by_name(self, name: str) -> Channel | None:
        wanted = name.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == wanted), None)

    def resolve_channel(self, id_or_name: str) -> Channel | None:
        return self.channel(id_or_name) or self.channel_by_name(id_or_name)

    def find_message(self, channel_id: str, ts: str) -> Message | None:
        return next((m for m in self.messages.get(channel_id, []) if m.ts == ts), None)

    def file_by_ticket(self, ticket: str) -> UploadedFile | None:
        return next((f for f in self.files.values() if f.upload_ticket == ticket), None)

    # -- changes -------------------------------------------------------------------------

    def create_channel(self, name: str, *, is_private: bool, creator: str) -> Channel:
        channel_id = f"C{self.next_number('channel'):04d}"
        channel = Channel(
            id=channel_id,
            name=name,
            is_private=is_private,
            members={creator},
            created=int(self.clock()),
            creator=creator,
        )
        self.channels[channel_id] = channel
        self.messages[channel_id] = []
        return channel

    def add_members(self, channel_id: str, user_ids: Iterable[str]) -> None:
        """Puts users (the bot included) in a channel, as joining or being invited does."""
        channel = self._existing_channel(channel_id)
        ids = list(user_ids)
        unknown = sorted(set(ids) - set(self.users))
        if unknown:
            raise LookupError(f"no users {unknown} in the stand-in workspace")
        channel.members.update(ids)

    def remove_members(self, channel_id: str, user_ids: Iterable[str]) -> None:
        """Takes users out of a channel, as leaving or being removed does."""
        self._existing_channel(channel_id).members.difference_update(user_ids)

    def _existing_channel(self, channel_id: str) -> Channel:
        channel = self.channel(channel_id)
        if channel is None:
            raise LookupError(f"no channel {channel_id} in the stand-in workspace")
        return channel

    def add_message(
        self,
        *,
        channel_id: str,
        text: str,
        blocks: list[JsonDict],
        attachments: list[JsonDict] | None = None,
        thread_ts: str | None = None,
        source: MessageSource = "api",
        metadata: JsonDict | None = None,
        files: list[JsonDict] | None = None,
    ) -> Message:
        message = Message(
            channel=channel_id,
            ts=self.next_ts(),
            text=text,
            blocks=self.with_generated_ids(blocks),
            attachments=copy.deepcopy(attachments or []),
            user=self.bot.user_id,
            bot_id=self.bot.bot_id,
            app_id=self.bot.app_id,
            team=self.bot.team_id,
            thread_ts=thread_ts,
            source=source,
            metadata=copy.deepcopy(metadata),
            files=copy.deepcopy(files or []),
        )
        self.messages[channel_id].append(message)
        return message

    def add_user_message(
        self, *, channel_id: str, user_id: str, text: str, thread_ts: str | None = None
    ) -> Message:
        """A message a person wrote in the channel (no event reaches the app)."""
        self._existing_channel(channel_id)
        if user_id not in self.users:
            raise LookupError(f"no user {user_id} in the stand-in workspace")
        message = Message(
            channel=channel_id,
            ts=self.next_ts(),
            text=text,
            user=user_id,
            team=self.bot.team_id,
            thread_ts=thread_ts,
            source="user",
        )
        self.messages[channel_id].append(message)
        return message

    def add_ephemeral(
        self,
        *,
        channel_id: str,
        user_id: str,
        text: str,
        blocks: list[JsonDict],
        thread_ts: str | None = None,
        source: MessageSource = "api",
    ) -> EphemeralMessage:
        ephemeral = EphemeralMessage(
            channel=channel_id,
            user=user_id,
            ts=self.next_ts(),
            text=text,
            blocks=self.with_generated_ids(blocks),
            thread_ts=thread_ts,
            source=source,
        )
        self.ephemerals.append(ephemeral)
        return ephemeral

    def delete_message(self, channel_id: str, ts: str) -> None:
        self.messages[channel_id] = [m for m in self.messages[channel_id] if m.ts != ts]

    def with_generated_ids(self, blocks: list[JsonDict]) -> list[JsonDict]:
        """Deep-copies blocks, giving every block a block_id and every element an action_id.

        Slack does this on storage, and interaction payloads always carry both ids.
        """
        stored = copy.deepcopy(blocks)
        block_ids = {b["block_id"] for b in stored if "block_id" in b}
        for block in stored:
            if "block_id" not in block:
                block["block_id"] = self._fresh_id("block_id", block_ids)
            elements = _interactive_elements(block)
            action_ids = {e["action_id"] for e in elements if "action_id" in e}
            for element in elements:
                if "action_id" not in element:
                    element["action_id"] = self._fresh_id("action_id", action_ids)
        return stored

    def _fresh_id(self, kind: str, taken: set[str]) -> str:
        while (candidate := self.generated_id(kind)) in taken:
            pass
        taken.add(candidate)
        return candidate


def _interactive_elements(block: JsonDict) -> list[JsonDict]:
    candidates: list[Any] = []
    if block.get("type") == "actions":
        candidates.extend(block.get("elements", []))
    candidates.append(block.get("accessory"))
    candidates.append(block.get("element"))
    return [
        el
        for el in candidates
        if isinstance(el, dict) and el.get("type") not in (None, "image", "plain_text", "mrkdwn")
    ]
