"""The HTTP edge of `POST /slack/events`: real requests into the bot under uvicorn on loopback.

Size first, then the signature over the raw bytes, then the shape: whatever a request carries,
an unsigned one is a 401 and a signed but malformed one a 400 with one warning, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.demo.harness import Running, running_bot, update_modal_values
from bot.demo.standin import SlackUser
from bot.demo.standin.payloads import (
    Actor,
    block_actions_payload,
    slash_command_form,
    view_submission_payload,
)
from bot.http_edge import MAX_BODY_BYTES

ALICE, GENERAL = "U0ALICE", "C0GENERAL"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
THIRTY_MB = 30 * 1024 * 1024


@dataclass
class Edge:
    """The running bot, and every request that got past the edge into Bolt."""

    running: Running
    dispatched: list[AsyncBoltRequest]

    async def post(self, body: bytes, content_type: str, signer: SlackUser | None = None) -> int:
        headers = {"Content-Type": content_type}
        if signer is not None:
            headers |= signer.sign(body)
        reply = await self.running.user.post_raw(body, headers)
        return reply.status


@pytest.fixture
async def edge(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Edge]:
    async with running_bot() as running:
        dispatched: list[AsyncBoltRequest] = []
        bolt = running.bot.bolt
        dispatch = bolt.async_dispatch

        async def recording(req: AsyncBoltRequest) -> BoltResponse:
            dispatched.append(req)
            return await dispatch(req)

        monkeypatch.setattr(bolt, "async_dispatch", recording)
        yield Edge(running, dispatched)


def request_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the request logged: without the reminder clock's ticks, which run all the while."""
    return [r for r in caplog.records if not r.name.startswith("apscheduler")]


def actor(running: Running) -> Actor:
    user = running.slack.workspace.users[ALICE]
    return Actor(
        user=user,
        channel_id=GENERAL,
        channel_name="general",
        bot=running.slack.bot,
        verification_token=running.user.verification_token,
    )


def command_form(running: Running) -> dict[str, str]:
    return slash_command_form(
        actor(running), command="/incident", text="sev2 Checkout down", response_url="", trigger_id="1.2"
    )


def interaction(payload: object) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def button_click(running: Running) -> dict[str, object]:
    action = {"type": "button", "action_id": "open_update_modal", "block_id": "b", "value": "x"}
    message = {"ts": "1.000001", "text": "", "blocks": []}
    return block_actions_payload(
        actor(running), message=message, action=action, state_values={}, trigger_id="1.2", response_url=""
    )


def no_actions(running: Running) -> bytes:
    return interaction(button_click(running) | {"actions": []})


def no_type(running: Running) -> bytes:
    payload = button_click(running)
    del payload["type"]
    return interaction(payload)


def garbage_metadata(running: Running) -> bytes:
    """A well-formed submission of the update modal whose private_metadata is not ours."""
    view = {
        "id": "V0GARBAGE",
        "type": "modal",
        "callback_id": "status_update",
        "private_metadata": "{not-an-incident",
        "state": {"values": update_modal_values("Identified", "Checkout down", "Rolling back", "30m")},
    }
    return interaction(view_submission_payload(actor(running), view=view, trigger_id="1.2"))


def no_command(running: Running) -> bytes:
    form = command_form(running)
    del form["command"]
    return urlencode(form).encode()


# (content type, body): none of these is something Slack sends; without the edge they got 500s and 404s.
MALFORMED: dict[str, tuple[str, Callable[[Running], bytes]]] = {
    "not UTF-8": (FORM, lambda _: b"command=%2Fincident&text=sev2 \xff\xfe down"),
    "payload not JSON": (FORM, lambda _: interaction("{not json")),
    "payload not an object": (FORM, lambda _: interaction("[1, 2]")),
    "JSON body not an object": (JSON, lambda _: b'["event_callback"]'),
    "actions: []": (FORM, no_actions),
    "payload without type": (FORM, no_type),
    "garbage private_metadata": (FORM, garbage_metadata),
    "slash command without command": (FORM, no_command),
}
# Only a listener can tell these apart from a good request: Bolt runs, its error handler answers.
FOUND_BY_A_LISTENER = {"garbage private_metadata"}


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_signed_malformed_request_is_a_400_with_one_warning(
    edge: Edge, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    content_type, build = MALFORMED[case]
    body = build(edge.running)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status = await edge.post(body, content_type, signer=edge.running.user)
        await edge.running.settle()
    assert status == 400
    assert [(r.name, r.levelno, r.exc_info) for r in request_logs(caplog)] == [
        ("bot.http_edge", logging.WARNING, None)
    ]
    assert len(edge.dispatched) == (1 if case in FOUND_BY_A_LISTENER else 0)
    assert edge.running.slack.calls("chat.postMessage") == []


@pytest.mark.parametrize("case", MALFORMED)
async def test_the_same_requests_unsigned_forged_or_stale_are_a_401(edge: Edge, case: str) -> None:
    content_type, build = MALFORMED[case]
    body = build(edge.running)
    forger = SlackUser(edge.running.slack, edge.running.url, "not-the-signing-secret")
    stale = edge.running.user.sign(body, timestamp=int(time.time()) - 6 * 60)
    assert await edge.post(body, content_type) == 401
    assert await edge.post(body, content_type, signer=forger) == 401
    reply = await edge.running.user.post_raw(body, {"Content-Type": content_type, **stale})
    assert reply.status == 401
    assert edge.dispatched == []


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00\xff" * 1000, b"{" * 100_000, b"x" * (MAX_BODY_BYTES - 1)],
    ids=["empty", "binary", "nested", "just under the limit"],
)
async def test_unsigned_bodies_of_any_kind_are_a_401(edge: Edge, body: bytes) -> None:
    assert await edge.post(body, JSON) == 401
    assert await edge.post(body, FORM) == 401
    assert edge.dispatched == []


async def test_a_timestamp_that_is_not_a_number_is_a_401(edge: Edge) -> None:
    body = urlencode(command_form(edge.running)).encode()
    headers = edge.running.user.sign(body) | {"X-Slack-Request-Timestamp": "soon"}
    reply = await edge.running.user.post_raw(body, {"Content-Type": FORM, **headers})
    assert reply.status == 401
    assert edge.dispatched == []


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(edge: Edge) -> None:
    """30 MB announced, a few KB sent: the answer can only come from the headers."""
    url = urlsplit(edge.running.url)
    assert url.hostname is not None and url.port is not None
    first = b"{" + b"x" * 4096
    signed = edge.running.user.sign(first)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {JSON}\r\n"
        f"Content-Length: {THIRTY_MB}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in signed.items())
        + "\r\n"
    )
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.encode() + first)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=2)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"
    assert edge.dispatched == []


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(edge: Edge) -> None:
    consumed = 0

    async def thirty_megabytes() -> AsyncIterator[bytes]:
        nonlocal consumed
        chunk = b"x" * 65536
        while consumed < THIRTY_MB:
            consumed += len(chunk)
            yield chunk
            await asyncio.sleep(0)  # let the response in while the body is still being sent

    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(edge.running.url, data=thirty_megabytes(), headers={"Content-Type": JSON}) as reply,
    ):
        assert reply.status == 413
    assert time.monotonic() - started < 5
    # Past the limit, the bot stopped reading: what was consumed is the limit plus what the
    # socket buffers held, far from the whole body.
    assert consumed < THIRTY_MB // 3
    assert edge.dispatched == []


async def test_a_signed_slash_command_still_declares_an_incident(edge: Edge) -> None:
    reply = await edge.running.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
    assert reply.status == 200
    assert "INC-1" in str(reply.body)
    await edge.running.settle()
    assert edge.running.slack.channel_by_name("inc-1-checkout-requests-failing") is not None
    assert len(edge.dispatched) == 1


async def test_other_routes_are_untouched(edge: Edge) -> None:
    base = edge.running.url.removesuffix("/slack/events")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as reply:
            assert reply.status == 200
        async with session.get(edge.running.url) as reply:
            assert reply.status == 405


async def test_a_listener_failure_is_logged_with_its_traceback_and_answered_without_details(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(ack: AsyncAck) -> None:
        raise RuntimeError("connection string with a password")

    edge.running.bot.bolt.command("/broken")(broken)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        reply = await edge.running.user.slash_command(ALICE, GENERAL, "", command="/broken")
        await edge.running.settle()
    assert reply.status == 500
    assert not reply.body
    [record] = request_logs(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None


async def test_a_listener_that_acked_before_failing_keeps_its_ack(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    async def acks_then_fails(ack: AsyncAck) -> None:
        await ack(text="on it")
        # Fail once the ack is on its way: Bolt drops an ack whose listener fails within
        # the 10 ms it polls for it, and answers the request as unhandled.
        await asyncio.sleep(0.2)
        raise ValueError("a value the listener could not use")

    edge.running.bot.bolt.command("/late")(acks_then_fails)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        reply = await edge.running.user.slash_command(ALICE, GENERAL, "", command="/late")
        await edge.running.settle()
    assert reply.status == 200
    assert reply.body == "on it"
    assert [(r.name, r.levelno) for r in request_logs(caplog)] == [("bot.http_edge", logging.WARNING)]
