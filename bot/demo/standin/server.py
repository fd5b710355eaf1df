"""`SlackStandIn`: a loopback HTTP server that answers like the Slack Web API.

Point the bot's clients at `slack.url` (e.g. `AsyncWebClient(base_url=slack.url)`); every
call is recorded, validated like Slack validates it, and applied to an in-memory workspace
that tests can inspect. `slack.faults` makes chosen calls fail the way Slack and the network
between fail: error pages, error codes, late answers, lost answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web

from .faults import HANG_TIMEOUT_PAGE, HANG_TIMEOUT_STATUS, Fault, Faults
from .interactions import apply_view_submission_reply, deliver_reply, response_url_refusal
from .methods import METHODS, ApiError, CallContext
from .ratelimit import RateLimitConfig, RateLimiter
from .socket_mode import DisconnectReason, SocketConnection, SocketEnvelope, SocketModeServer
from .workspace import (
    DEFAULT_CHANNELS,
    DEFAULT_RESPONDERS,
    DEFAULT_USERS,
    ApiCall,
    BotIdentity,
    CallKind,
    Channel,
    EphemeralMessage,
    JsonDict,
    Message,
    OpenedView,
    ResponseDelivery,
    ResponseUrl,
    SeedChannel,
    SeedUser,
    TriggerId,
    UploadedFile,
    Workspace,
)

# What incident-bot asks for at install time: exactly the bot scopes of its manifest.yml.
DEFAULT_BOT_SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "channels:manage",
        "channels:history",
        "channels:read",
        "channels:join",
        "groups:history",
        "groups:read",
        "files:write",
        "users:read",
    }
)
CONNECTIONS_OPEN = "apps.connections.open"


class SlackStandIn:
    """A fake Slack workspace on 127.0.0.1, strict where Slack is strict."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-standin",
        app_token: str = "xapp-standin",
        scopes: Iterable[str] | None = None,
        allow_channel_creation: bool = True,
        rate_limits: bool = False,
        rate_limit_config: RateLimitConfig | None = None,
        channels: Iterable[SeedChannel] = DEFAULT_CHANNELS,
        users: Iterable[SeedUser] = DEFAULT_USERS,
        responders: Iterable[str] | None = None,
        bot: BotIdentity | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.scopes = frozenset(scopes if scopes is not None else DEFAULT_BOT_SCOPES)
        self.allow_channel_creation = allow_channel_creation
        self.bot = bot or BotIdentity()
        users = list(users)
        if responders is None:  # the default on-call team, those of it that are seeded
            responders = DEFAULT_RESPONDERS & {u.id for u in users}
        self.workspace = Workspace(
            bot=self.bot, users=users, channels=channels, clock=clock, responders=responders
        )
        self._clock = clock
        self._limiter = RateLimiter(rate_limit_config or RateLimitConfig(), clock) if rate_limits else None
        self.socket_mode = SocketModeServer(app_id=self.bot.app_id, clock=clock)
        self.faults = Faults()
        self._stopping: asyncio.Event | None = None
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the stand-in is already running")
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        app.router.add_get("/socket/{ticket}", self.socket_mode.handle_websocket)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        address = runner.addresses[0]
        self._runner = runner
        self._base_url = f"http://{address[0]}:{address[1]}/"

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # held answers (faults.hang) go out now, not at their time
        # Open sockets would hold the shutdown for aiohttp's whole grace period.
        await self.socket_mode.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("start() the stand-in first")
        return self._base_url

    @property
    def url(self) -> str:
        """The Web API base URL for slack_sdk clients, e.g. http://127.0.0.1:PORT/api/."""
        return f"{self.base_url}api/"

    # -- what the Slack client side hands out ---------------------------------------------

    def new_trigger_id(self, user_id: str, *, view_id: str | None = None) -> str:
        """A trigger_id for views.open, valid 3 seconds and once, as Slack issues them."""
        number = self.workspace.next_number("trigger")
        trigger_id = f"{number}.{int(self._clock())}.{secrets.token_hex(16)}"
        self.workspace.triggers[trigger_id] = TriggerId(
            id=trigger_id, user_id=user_id, issued_at=self._clock(), view_id=view_id
        )
        return trigger_id

    def new_response_url(self, channel_id: str, user_id: str, *, message_ts: str | None = None) -> str:
        """A response_url bound to a channel and user (and the clicked message, if any)."""
        response_id = f"{self.workspace.next_number('response_url')}-{secrets.token_hex(8)}"
        self.workspace.response_urls[response_id] = ResponseUrl(
            id=response_id,
            channel_id=channel_id,
            user_id=user_id,
            message_ts=message_ts,
            issued_at=self._clock(),
        )
        return f"{self.base_url}response/{response_id}"

    def apply_ack(self, channel_id: str, user_id: str, body: JsonDict) -> ResponseDelivery:
        """Shows a slash command's ack body the way Slack does (ephemeral unless in_channel)."""
        delivery = deliver_reply(
            self.workspace,
            payload=body,
            channel_id=channel_id,
            user_id=user_id,
            message_ts=None,
            response_url_id=None,
            source="ack",
        )
        self._record_reply("ack", delivery)
        return delivery

    def apply_view_submission_reply(self, view_id: str, reply: object) -> list[str]:
        """Applies the app's view_submission ack; a refused new view shows in rejected_calls()."""
        view = self.workspace.views[view_id]
        reasons = apply_view_submission_reply(self.workspace, view, reply)
        if reasons:
            self._record(
                "view_submission.response_action",
                reply if isinstance(reply, dict) else {},
                {"ok": False, "error": "invalid_arguments"},
                200,
                reasons,
                kind="reply",
            )
        return reasons

    # -- queries for tests ----------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Web API calls in the order they arrived, optionally only one method's."""
        return [
            c for c in self.workspace.calls if c.kind == "web_api" and (method is None or c.method == method)
        ]

    def rejected_calls(self) -> list[ApiCall]:
        """Every call answered ok=false (including HTTP 429), with the reasons why.

        Besides Web API methods this covers refused replies: method "response_url", "ack"
        (a slash command's ack body) and "view_submission.response_action". Answers made up by
        an injected fault are not refusals of what the bot sent: see `faulted_calls()`.
        """
        return [c for c in self.workspace.calls if not c.ok and not c.injected]

    def faulted_calls(self, method: str | None = None) -> list[ApiCall]:
        """Web API calls that met an injected fault (`faults`), in the order they arrived."""
        return [c for c in self.calls(method) if c.fault is not None]

    def messages(self, channel_id: str) -> list[Message]:
        return list(self.workspace.messages.get(channel_id, []))

    def message(self, channel_id: str, ts: str) -> Message:
        message = self.workspace.find_message(channel_id, ts)
        if message is None:
            raise KeyError(f"no message {ts} in {channel_id}")
        return message

    def ephemerals(self, user_id: str | None = None) -> list[EphemeralMessage]:
        return [e for e in self.workspace.ephemerals if user_id is None or e.user == user_id]

    def channel_by_name(self, name: str) -> Channel | None:
        return self.workspace.channel_by_name(name)

    def channels(self) -> list[Channel]:
        return list(self.workspace.channels.values())

    def views(self) -> list[OpenedView]:
        return list(self.workspace.views.values())

    def view(self, view_id: str) -> OpenedView:
        return self.workspace.views[view_id]

    def responses(self) -> list[ResponseDelivery]:
        return list(self.workspace.responses)

    def members(self, channel_id: str) -> list[str]:
        """Who is in a channel (the bot included, when it is), by user id."""
        channel = self.workspace.channel(channel_id)
        if channel is None:
            raise KeyError(f"no channel {channel_id}")
        return sorted(channel.members)

    def add_to_channel(self, channel_id: str, *user_ids: str) -> None:
        """Puts users in a channel behind the app's back, as a person inviting them would."""
        self.workspace.add_members(channel_id, user_ids)

    def remove_from_channel(self, channel_id: str, *user_ids: str) -> None:
        """Takes users out of a channel behind the app's back, as leaving would."""
        self.workspace.remove_members(channel_id, user_ids)

    def add_user_message(
        self, channel_id: str, user_id: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A message a person wrote in the channel; no event is sent to the app."""
        return self.workspace.add_user_message(
            channel_id=channel_id, user_id=user_id, text=text, thread_ts=thread_ts
        )

    def files(self, channel_id: str | None = None) -> list[UploadedFile]:
        """Files the app uploaded, in the order it started them; with `channel_id`, only the ones
        shared into that channel (completed uploads)."""
        return [f for f in self.workspace.files.values() if channel_id is None or channel_id in f.channels]

    def file(self, file_id: str) -> UploadedFile:
        return self.workspace.files[file_id]

    # -- Socket Mode ----------------------------------------------------------------------

    def socket_connections(self, *, open_only: bool = True) -> list[SocketConnection]:
        """The app's Socket Mode connections (only the open ones unless `open_only=False`)."""
        return [c for c in self.socket_mode.connections if c.is_open or not open_only]

    def socket_envelopes(self) -> list[SocketEnvelope]:
        """Envelopes sent over Socket Mode, in order, each with the ack it got (if any)."""
        return list(self.socket_mode.envelopes.values())

    async def drop_socket_connections(self, *, reason: DisconnectReason | None = None) -> int:
        """Closes the app's sockets from Slack's side. Returns how many there were.

        With `reason` a `disconnect` message goes first and the app may leave by itself (up to
        a second). Either way it must call apps.connections.open again and reconnect.
        """
        return await self.socket_mode.drop_connections(reason=reason)

    async def send_socket_disconnect(self, reason: DisconnectReason = "refresh_requested") -> int:
        """Sends `{"type": "disconnect", "reason": ...}` on every socket and leaves them open."""
        return await self.socket_mode.send_disconnect(reason)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, token, body_error = await _read_call(request)
        fault = self.faults.take(method, params)
        if fault is not None and not fault.reaches_workspace:
            return await self._injected_answer(request, method, params, fault)

        status, body, headers, reasons = self._answer(request, method, params, token, body_error)
        ok = bool(body.get("ok")) and status == 200
        reasons = [*reasons, fault.describe()] if fault is not None else reasons
        self._record(method, params, body, status, reasons, applied=ok, fault=fault)
        if fault is not None and fault.kind == "close_connection":
            return _close_without_answer(request)
        if fault is not None:
            await self._hold(fault.seconds)
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self,
        request: web.Request,
        method: str,
        params: JsonDict,
        token: str | None,
        body_error: str | None,
    ) -> tuple[int, JsonDict, dict[str, str], list[str]]:
        """The workspace's answer to one call: (HTTP status, body, headers, reasons)."""
        try:
            if body_error is not None:
                raise ApiError("invalid_form_data", reasons=[body_error])
            if method == CONNECTIONS_OPEN:
                return 200, self._open_socket_connection(request, token), {}, []
            handler = METHODS.get(method)
            if handler is None:
                raise ApiError("unknown_method", req_method=method)
            self._authenticate(token)
            context = CallContext(
                workspace=self.workspace,
                params=params,
                scopes=self.scopes,
                allow_channel_creation=self.allow_channel_creation,
                limiter=self._limiter,
                base_url=self.base_url,
            )
            body = handler(context)
            return 200, body, {}, context.notes
        except ApiError as error:
            return error.http_status, error.to_response(), error.headers, error.reasons

    async def _injected_answer(
        self, request: web.Request, method: str, params: JsonDict, fault: Fault
    ) -> web.Response:
        """A fault's answer for a call the workspace never sees."""
        reasons = [fault.describe()]
        if fault.kind == "close_connection":
            self._record(method, params, {}, None, reasons, fault=fault, injected=True)
            return _close_without_answer(request)
        if fault.kind == "hang":
            self._record(method, params, {}, HANG_TIMEOUT_STATUS, reasons, fault=fault, injected=True)
            await self._hold(fault.seconds)
            return _raw_response(HANG_TIMEOUT_STATUS, "text/html", HANG_TIMEOUT_PAGE)
        if fault.kind == "error":
            body: JsonDict = {"ok": False, "error": fault.error}
            self._record(method, params, body, fault.status, reasons, fault=fault, injected=True)
            return web.json_response(body, status=fault.status, headers=fault.headers)
        self._record(method, params, {}, fault.status, reasons, fault=fault, injected=True)
        return _raw_response(fault.status, fault.content_type, fault.body)

    async def _hold(self, seconds: float) -> None:
        if self._stopping is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _authenticate(self, token: str | None) -> None:
        if not token:
            raise ApiError("not_authed", reasons=["no token: use Authorization: Bearer"])
        if token == self.app_token:
            raise ApiError(
                "not_allowed_token_type",
                reasons=["an app-level token only opens Socket Mode connections; use the bot token"],
            )
        if token != self.bot_token:
            raise ApiError("invalid_auth", reasons=["the token is not this workspace's bot token"])

    def _open_socket_connection(self, request: web.Request, token: str | None) -> JsonDict:
        """apps.connections.open: the app-level token, in the Authorization header, buys a URL.

        https://docs.slack.dev/reference/methods/apps.connections.open
        """
        if request.method != "POST":
            raise ApiError("insecure_request", reasons=["apps.connections.open must be POSTed"])
        if not token:
            raise ApiError("not_authed", reasons=["no token: send the app-level token as a Bearer"])
        if _bearer_token(request) is None:
            raise ApiError(
                "not_authed",
                reasons=["apps.connections.open reads the token from the Authorization header only"],
            )
        if token == self.bot_token:
            raise ApiError(
                "not_allowed_token_type",
                reasons=["apps.connections.open needs the app-level token (xapp-...), not the bot token"],
            )
        if token != self.app_token:
            raise ApiError("invalid_auth", reasons=["the token is not this app's app-level token"])
        return {"ok": True, "url": self.socket_mode.issue_url(self.base_url)}

    def _record(
        self,
        method: str,
        params: JsonDict,
        body: JsonDict,
        status: int | None,
        reasons: list[str] | None = None,
        kind: CallKind = "web_api",
        *,
        applied: bool = False,
        fault: Fault | None = None,
        injected: bool = False,
    ) -> None:
        error = body.get("error")
        self.workspace.calls.append(
            ApiCall(
                kind=kind,
                method=method,
                params=params,
                ok=bool(body.get("ok")) and status == 200,
                error=error if isinstance(error, str) else None,
                http_status=status,
                reasons=list(reasons or []),
                response=body,
                at=self._clock(),
                applied=applied,
                fault=fault.kind if fault is not None else None,
                injected=injected,
            )
        )

    def _record_reply(self, method: str, delivery: ResponseDelivery) -> None:
        # Replies are not Web API calls, but a refused one is just as much a bot bug.
        body: JsonDict = {"ok": delivery.ok}
        if delivery.error is not None:
            body["error"] = delivery.error
        self._record(method, delivery.payload, body, delivery.http_status, delivery.reasons, kind="reply")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url = self.workspace.response_urls.get(request.match_info["response_id"])
        if url is None:
            return web.Response(status=404, text="no_service")
        try:
            payload: object = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        refusal = response_url_refusal(self.workspace, url)
        if refusal is not None:
            delivery = ResponseDelivery(
                response_url_id=url.id,
                channel_id=url.channel_id,
                user_id=url.user_id,
                payload=payload if isinstance(payload, dict) else {},
                ok=False,
                http_status=404,
                error="expired_url",
                reasons=[refusal],
                at=self._clock(),
            )
            self.workspace.responses.append(delivery)
        else:
            delivery = deliver_reply(
                self.workspace,
                payload=payload,
                channel_id=url.channel_id,
                user_id=url.user_id,
                message_ts=url.message_ts,
                response_url_id=url.id,
            )
            if delivery.ok:
                url.uses += 1
        self._record_reply("response_url", delivery)
        return web.Response(status=delivery.http_status, text=delivery.error or "ok")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """Step 2 of an external upload: the file's bytes, raw or as a multipart form's file part.

        Slack answers 200 for bytes it took (as text/plain "OK - <size>") and another status
        otherwise. Sizes are compared with `length` at files.completeUploadExternal.
        """
        uploaded = self.workspace.file_by_ticket(request.match_info["ticket"])
        content = await _read_upload(request)
        params: JsonDict = {"file_id": uploaded.id if uploaded else None, "bytes": len(content)}
        if uploaded is None or uploaded.completed:
            why = "no upload was started for this URL" if uploaded is None else "the upload was completed"
            body: JsonDict = {"ok": False, "error": "not_found"}
            self._record("upload_url", params, body, 404, [why], kind="upload")
            return web.Response(status=404, text="not_found", content_type="text/plain")
        uploaded.content = content
        self._record("upload_url", params, {"ok": True}, 200, kind="upload", applied=True)
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")


async def _read_call(request: web.Request) -> tuple[JsonDict, str | None, str | None]:
    """Merges query string, form body and JSON body the way Slack reads arguments.

    Returns (params without the token, token, why the body could not be read).
    """
    params: dict[str, Any] = dict(request.query)
    token = _bearer_token(request)
    body_error: str | None = None
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict):
                # Slack ignores a token inside a JSON body: JSON calls must use the header.
                data.pop("token", None)
                params.update(data)
            else:
                body_error = "the JSON body is not an object"
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    form_token = params.pop("token", None)
    if token is None and isinstance(form_token, str):
        token = form_token
    return params, token, body_error


async def _read_upload(request: web.Request) -> bytes:
    if not request.content_type.startswith("multipart/"):
        return await request.read()
    reader = await request.multipart()
    first: bytes | None = None
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        data = bytes(await part.read())
        if part.filename is not None:
            return data
        first = data if first is None else first
    return first or b""


def _raw_response(status: int, content_type: str | None, body: str) -> web.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    response = web.Response(status=status, body=body.encode(), headers=headers)
    if not content_type:
        # aiohttp fills in application/octet-stream unless told there is no content type.
        response.headers.popall("Content-Type", None)
    return response


def _close_without_answer(request: web.Request) -> web.Response:
    """Closes the connection; aiohttp drops the response returned after that, unsent."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[len("Bearer ") :].strip() if header.startswith("Bearer ") else None
