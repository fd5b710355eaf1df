"""Socket Mode on the stand-in: the WebSocket behind `apps.connections.open`, envelopes and acks.

Shapes follow https://docs.slack.dev/apis/events-api/using-socket-mode: on connect Slack sends
`hello`; each slash command or interaction arrives as an envelope
`{envelope_id, type, payload, accepts_response_payload}` (`retry_attempt`/`retry_reason` ride
only on `events_api` envelopes, which the stand-in does not send); the app acks with
`{envelope_id, payload?}`, and the ack payload plays the part of the HTTP response body. A
`disconnect` message asks the app to reconnect through a fresh `apps.connections.open` URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel

from .workspace import JsonDict

# https://docs.slack.dev/interactivity/handling-user-interaction: an app acks within 3 seconds.
ACK_WINDOW_SECONDS = 3.0
# What `hello` announces as the connection's lifetime before Slack refreshes it, in seconds.
APPROXIMATE_CONNECTION_TIME = 3600
DEBUG_HOST = "applink-standin"
# How long a `disconnect` leaves the app to reconnect by itself before the socket is cut.
DISCONNECT_GRACE_SECONDS = 1.0
BUILD_NUMBER = 1

EnvelopeType = Literal["slash_commands", "interactive"]
DisconnectReason = Literal["refresh_requested", "warning", "link_disabled"]


class SocketConnection(BaseModel):
    """One WebSocket the app opened with a ticket from apps.connections.open."""

    id: str
    ticket: str
    opened_at: float
    closed_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class SocketEnvelope(BaseModel):
    """One envelope sent to the app, and its ack if one came within the window."""

    envelope_id: str
    type: EnvelopeType
    payload: JsonDict
    accepts_response_payload: bool
    connection_id: str
    sent_at: float
    acked: bool = False
    ack_payload: JsonDict | None = None
    # An ack after the window: recorded, but Slack has already given up on it.
    late_ack: bool = False

    def to_slack(self) -> JsonDict:
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
        }


@dataclass
class _Link:
    record: SocketConnection
    ws: web.WebSocketResponse
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class SocketModeServer:
    """Tickets, open sockets and envelopes of one stand-in app."""

    def __init__(self, *, app_id: str, clock: Callable[[], float]) -> None:
        self.app_id = app_id
        self._clock = clock
        self._tickets: dict[str, bool] = {}  # ticket -> already used
        self._links: dict[str, _Link] = {}
        self._turn = 0
        self.connections: list[SocketConnection] = []
        self.envelopes: dict[str, SocketEnvelope] = {}
        self._waiting: dict[str, asyncio.Future[None]] = {}

    # -- connecting -----------------------------------------------------------------------

    def issue_url(self, base_url: str) -> str:
        """A WebSocket URL with a fresh single-use ticket, as apps.connections.open returns."""
        ticket = secrets.token_urlsafe(16)
        self._tickets[ticket] = False
        ws_base = "ws://" + base_url.removeprefix("http://")
        return f"{ws_base}socket/{ticket}"

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        if self._tickets.get(ticket) is not False:
            # Undocumented what Slack answers to a reused ticket; refusing the upgrade is the
            # strict choice: the app must call apps.connections.open for every connection.
            return web.Response(status=401, text="invalid or already used ticket")
        self._tickets[ticket] = True
        ws = web.WebSocketResponse()  # autoping: answers the client's pings with pongs
        await ws.prepare(request)
        number = len(self.connections) + 1
        record = SocketConnection(id=f"S{number:04d}", ticket=ticket, opened_at=self._clock())
        self.connections.append(record)
        link = _Link(record, ws)
        self._links[record.id] = link
        try:
            await ws.send_json(self._hello())
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(message.data)
        finally:
            record.closed_at = self._clock()
            self._links.pop(record.id, None)
            link.gone.set()
        return ws

    def _hello(self) -> JsonDict:
        started = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return {
            "type": "hello",
            "num_connections": len(self._open_links()),
            "debug_info": {
                "host": DEBUG_HOST,
                "started": started,
                "build_number": BUILD_NUMBER,
                "approximate_connection_time": APPROXIMATE_CONNECTION_TIME,
            },
            "connection_info": {"app_id": self.app_id},
        }

    # -- envelopes and acks ---------------------------------------------------------------

    async def deliver(
        self,
        kind: EnvelopeType,
        payload: JsonDict,
        *,
        accepts_response_payload: bool = True,
        timeout: float = ACK_WINDOW_SECONDS,
    ) -> SocketEnvelope | None:
        """Sends one envelope to an open socket and waits up to `timeout` for the ack.

        Returns None when no socket is open (Slack then shows the user `dispatch_failed`);
        otherwise the envelope, with `acked` false if no ack came in time.
        """
        link = self._next_link()
        if link is None:
            return None
        envelope = SocketEnvelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=payload,
            accepts_response_payload=accepts_response_payload,
            connection_id=link.record.id,
            sent_at=self._clock(),
        )
        self.envelopes[envelope.envelope_id] = envelope
        acked = asyncio.get_running_loop().create_future()
        self._waiting[envelope.envelope_id] = acked
        try:
            await link.ws.send_json(envelope.to_slack())
            await asyncio.wait_for(acked, timeout)
        except (TimeoutError, ConnectionError):
            pass  # `acked` stays false: Slack gives up on the envelope
        finally:
            self._waiting.pop(envelope.envelope_id, None)
        return envelope

    def _receive(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        envelope = self.envelopes.get(str(message.get("envelope_id")))
        if envelope is None:
            return
        payload = message.get("payload")
        waiting = self._waiting.get(envelope.envelope_id)
        if waiting is None or waiting.done():
            envelope.late_ack = True
            return
        envelope.acked = True
        envelope.ack_payload = payload if isinstance(payload, dict) else None
        waiting.set_result(None)

    def _open_links(self) -> list[_Link]:
        return [link for link in self._links.values() if not link.ws.closed]

    def _next_link(self) -> _Link | None:
        # Slack may send each payload to any open connection; take turns.
        links = self._open_links()
        if not links:
            return None
        self._turn += 1
        return links[self._turn % len(links)]

    # -- disconnecting --------------------------------------------------------------------

    async def send_disconnect(self, reason: DisconnectReason) -> int:
        """Sends a `disconnect` message on every open socket, leaving them open."""
        links = self._open_links()
        for link in links:
            with contextlib.suppress(ConnectionError):
                await link.ws.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": DEBUG_HOST}}
                )
        return len(links)

    async def drop_connections(
        self, *, reason: DisconnectReason | None = None, grace: float = DISCONNECT_GRACE_SECONDS
    ) -> int:
        """Closes every open socket from the server side.

        With `reason`, a `disconnect` message goes first and the app gets `grace` seconds to
        leave by itself, as Slack allows before it cuts a connection.
        """
        links = self._open_links()
        if reason is not None:
            await self.send_disconnect(reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(link.gone.wait() for link in links)), grace)
        for link in links:
            if not link.ws.closed:
                await link.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by the stand-in")
        return len(links)

    async def close(self) -> None:
        await self.drop_connections()
        self._tickets.clear()
