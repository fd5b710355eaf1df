"""The HTTP edge of `POST /slack/events`: size, signature and shape are checked before Bolt sees a byte.

Bolt checks the signature too, but only after its Starlette adapter has read the whole body,
however large, and after decoding and parsing it: a forged body that is not UTF-8 or not JSON
gets a 500 instead of a 401. Here the order is: the length, the signature over the raw bytes,
and only then the shape. What passes is handed to Bolt byte for byte, so Bolt's own checks and
parsing still run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field, ValidationError
from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.response import BoltResponse
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_CLOCK_SKEW_SECONDS = 5 * 60  # Slack's replay window for signed requests

# None of the malformed requests below is something Slack sends, so each gets 400 rather than
# an empty 200 ack: a 200 would tell a broken sender that the request worked, and where a person
# is waiting (a modal, a button) Slack shows a non-200 as an error instead of silently dropping
# the input. The one 200 left is a listener that had already acked before it failed: that
# answer is on its way, so the error handler only logs.
MALFORMED = 400


# What Bolt's routing reads without checking (`body["actions"][0]["action_id"]`,
# `body["view"]["callback_id"]`, `body["command"]`, ...) for the requests this app gets.
class _Typed(BaseModel):
    type: str


class _Action(BaseModel):
    action_id: str


class _BlockActions(BaseModel):
    actions: list[_Action] = Field(min_length=1)


class _View(BaseModel):
    type: str
    callback_id: str


class _ViewInteraction(BaseModel):
    view: _View


class _SlashCommand(BaseModel):
    command: str


_ROUTED_BY_TYPE: dict[str, type[BaseModel]] = {
    "block_actions": _BlockActions,
    "view_submission": _ViewInteraction,
    "view_closed": _ViewInteraction,
}


class _ClientGone(Exception):
    """The client disconnected before sending the whole body: nobody is left to answer."""


class SlackRequestGuard:
    """ASGI middleware for the Slack request URL: 413, 401 or 400 before the app runs.

    Reads the body once, at most `max_body_bytes` of it, then replays it to `app` through
    `receive`. Put it in front of the one route that takes Slack's requests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        signing_secret: str,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signing_secret:
            raise ValueError("a signing secret is needed to verify Slack's requests")
        self.app = app
        self.secret = signing_secret.encode()
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_body_bytes:
            await _answer(scope, receive, send, 413, "body too large", close=True)
            return
        try:
            body = await self._read_body(receive)
        except _ClientGone:
            return
        if body is None:
            await _answer(scope, receive, send, 413, "body too large", close=True)
            return
        refusal = self._signature_problem(scope, body)
        if refusal is not None:
            # One line, so a wrong signing secret or a drifting clock shows in the logs.
            log.warning("refused a request to %s: %s", scope["path"], refusal)
            await _answer(scope, receive, send, 401, "invalid signature")
            return
        problem = _shape_problem(_header(scope, b"content-type"), body)
        if problem is not None:
            log.warning("refused a signed request with a malformed body: %s", problem)
            await _answer(scope, receive, send, MALFORMED, "malformed request")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    def _signature_problem(self, scope: Scope, body: bytes) -> str | None:
        """Slack's scheme, over the raw bytes: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
        timestamp = _header(scope, b"x-slack-request-timestamp")
        signature = _header(scope, b"x-slack-signature")
        if not signature or not timestamp.isdigit() or len(timestamp) > 12:
            return "no signature or timestamp"
        if abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return "timestamp outside the 5 minute window (replayed, or a clock is off)"
        digest = hmac.new(self.secret, b"v0:" + timestamp + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(b"v0=" + digest.encode(), signature):
            return "signature does not match (forged, or a different signing secret)"
        return None


def install_error_handler(bolt: AsyncApp) -> None:
    """Bolt's global error handler: a payload a listener cannot parse is a 400 and one warning;
    anything else is logged with its traceback and answered 500 with an empty body."""

    async def on_error(
        error: Exception, body: dict[str, Any], response: BoltResponse | None
    ) -> BoltResponse | None:
        kind = _kind(body)
        if isinstance(error, ValidationError | ValueError):
            log.warning("refused a malformed %s: %s", kind, _one_line(error))
            status = MALFORMED
        else:
            log.error("unexpected error handling a %s", kind, exc_info=error)
            status = 500
        # None when the listener acked before it failed: that 200 has already been answered.
        if response is None:
            return None
        return BoltResponse(status=status, body="")

    bolt.error(on_error)


def _shape_problem(content_type: bytes, body: bytes) -> str | None:
    """Why Bolt could not route this body, parsed the way Bolt parses it; None if it can."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    # Bolt's rule: JSON (the Events API) by content type or a leading brace, otherwise a form.
    if content_type.split(b";")[0] == b"application/json" or text.startswith("{"):
        return _payload_problem(text, "the body")
    # Bolt looks for `payload` as a substring of the whole form (a slash command whose text says
    # "payload" would reach it as {}); `bolt_request` corrects that, and this reads the fields
    # properly too.
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in fields:
        return _payload_problem(fields["payload"], "the payload field")
    if fields.get("ssl_check") == "1":
        return None
    return _model_problem(_SlashCommand, fields, "slash command")


def _payload_problem(raw: str, what: str) -> str | None:
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return f"{what} is not JSON"
    if not isinstance(payload, dict):
        return f"{what} is not a JSON object"
    problem = _model_problem(_Typed, payload, "payload")
    if problem is not None:
        return problem
    routed = _ROUTED_BY_TYPE.get(payload["type"])
    return _model_problem(routed, payload, payload["type"]) if routed is not None else None


def _model_problem(model: type[BaseModel], data: dict[str, Any], what: str) -> str | None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return f"{what}: {_one_line(exc)}"
    return None


def _one_line(error: Exception) -> str:
    """The first problem, on one line, without the offending input (it may be large or personal)."""
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or error.title
        return f"{where}: {first['msg']}".replace("\n", " ")
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:200]


def _kind(body: dict[str, Any]) -> str:
    command = body.get("command")
    if isinstance(command, str):
        return f"{command} command"
    kind = body.get("type")
    return kind if isinstance(kind, str) else "request"


def _header(scope: Scope, name: bytes) -> bytes:
    """The raw value of a header; ASGI servers give names in lower case."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


def _declared_length(scope: Scope) -> int:
    """Content-Length, or 0 when absent (chunked) or unreadable: the read loop then enforces the limit."""
    value = _header(scope, b"content-length")
    return int(value) if value.isdigit() and len(value) <= 18 else 0


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(
    scope: Scope, receive: Receive, send: Send, status: int, text: str, *, close: bool = False
) -> None:
    # After a 413 the rest of the body is still on the wire: close rather than let the server
    # read and discard it to keep the connection alive.
    headers = {"connection": "close"} if close else None
    await PlainTextResponse(text, status_code=status, headers=headers)(scope, receive, send)


def bolt_request(
    body: bytes, query: str, headers: dict[str, str | Sequence[str]]
) -> AsyncBoltRequest:
    """The Bolt request for a body the guard has passed, parsed right.

    Bolt takes any form body that contains the text "payload" for an interaction and parses only
    its `payload` field, so `/incident sev2 Payload API down` would reach no listener. A form
    without a `payload` field is a slash command: its fields are the body."""
    request = AsyncBoltRequest(body=body.decode("utf-8"), query=query, headers=headers)
    if not request.body and request.content_type != "application/json":
        fields = dict(parse_qsl(request.raw_body, keep_blank_values=True))
        if fields and "payload" not in fields:
            request.body = fields
            request.context = build_async_context(AsyncBoltContext({}), fields)
    return request
