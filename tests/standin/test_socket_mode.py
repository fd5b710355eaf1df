"""Socket Mode on the stand-in: apps.connections.open, hello, envelopes and acks, reconnects.

The app side is the real thing: a Bolt AsyncApp behind slack_bolt's AsyncSocketModeHandler
(slack_sdk's aiohttp SocketModeClient), or a bare aiohttp WebSocket where a test needs to
misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.demo.harness import eventually
from bot.demo.standin import (
    NO_ACK_STATUS,
    NOT_CONNECTED_STATUS,
    SlackStandIn,
    SlackUser,
)

from .test_user import build_app, post_checklist, title_value

JsonDict = dict[str, Any]
ALICE, BOB, GENERAL = "U0ALICE", "U0BOB", "C0GENERAL"


async def call(
    slack: SlackStandIn,
    method: str,
    *,
    bearer: str | None = None,
    form: dict[str, str] | None = None,
    http_method: str = "POST",
) -> JsonDict:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(http_method, f"{slack.url}{method}", headers=headers, data=form) as response,
    ):
        body: JsonDict = await response.json()
        return body


async def open_url(slack: SlackStandIn) -> str:
    body = await call(slack, "apps.connections.open", bearer=slack.app_token)
    assert body["ok"], body
    return str(body["url"])


@dataclass
class SocketBot:
    handler: AsyncSocketModeHandler
    received: list[JsonDict] = field(default_factory=list)


@pytest_asyncio.fixture
async def socket_bot(slack: SlackStandIn) -> AsyncIterator[SocketBot]:
    """The test_user Bolt app, connected over Socket Mode instead of serving HTTP."""
    received: list[JsonDict] = []
    handler = AsyncSocketModeHandler(build_app(slack, received), slack.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await eventually(lambda: len(slack.socket_connections()) == 1)
        yield SocketBot(handler, received)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


@pytest.fixture
def user(slack: SlackStandIn, socket_bot: SocketBot) -> SlackUser:
    return SlackUser.over_socket_mode(slack)


# -- apps.connections.open -------------------------------------------------------------------


async def test_connections_open_hands_out_a_websocket_url_for_the_app_token(slack: SlackStandIn) -> None:
    first, second = await open_url(slack), await open_url(slack)

    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/socket/[\w-]+", first)
    assert first.removeprefix("ws://").startswith(slack.base_url.removeprefix("http://"))
    assert first != second
    assert [c.method for c in slack.calls()] == ["apps.connections.open"] * 2


@pytest.mark.parametrize(
    ("bearer", "form", "error"),
    [
        (None, None, "not_authed"),
        ("xapp-someone-else", None, "invalid_auth"),
        ("xoxb-standin", None, "not_allowed_token_type"),
        # Slack reads this method's token from the Authorization header only.
        (None, {"token": "xapp-standin"}, "not_authed"),
    ],
)
async def test_connections_open_refuses_anything_but_the_app_token_in_the_header(
    slack: SlackStandIn, bearer: str | None, form: dict[str, str] | None, error: str
) -> None:
    body = await call(slack, "apps.connections.open", bearer=bearer, form=form)

    assert body == {"ok": False, "error": error}
    (rejected,) = slack.rejected_calls()
    assert rejected.error == error and rejected.reasons


async def test_connections_open_must_be_posted(slack: SlackStandIn) -> None:
    body = await call(slack, "apps.connections.open", bearer=slack.app_token, http_method="GET")

    assert body == {"ok": False, "error": "insecure_request"}


async def test_the_app_token_cannot_call_other_methods(slack: SlackStandIn) -> None:
    body = await call(
        slack, "chat.postMessage", bearer=slack.app_token, form={"channel": GENERAL, "text": "x"}
    )

    assert body == {"ok": False, "error": "not_allowed_token_type"}
    assert slack.messages(GENERAL) == []


# -- the WebSocket ---------------------------------------------------------------------------


async def test_slack_says_hello_on_connect_and_tickets_work_once(slack: SlackStandIn) -> None:
    first_url, second_url = await open_url(slack), await open_url(slack)
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(first_url)
        hello = await first.receive_json(timeout=2)
        second = await session.ws_connect(second_url)
        second_hello = await second.receive_json(timeout=2)
        with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
            await session.ws_connect(first_url)
        await first.close()
        await second.close()

    assert hello == {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {
            "host": "applink-standin",
            "started": hello["debug_info"]["started"],
            "build_number": 1,
            "approximate_connection_time": 3600,
        },
        "connection_info": {"app_id": slack.bot.app_id},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", hello["debug_info"]["started"])
    assert second_hello["num_connections"] == 2
    assert reused.value.status == 401
    await eventually(lambda: slack.socket_connections() == [])
    assert len(slack.socket_connections(open_only=False)) == 2


async def test_stopping_the_standin_closes_open_sockets_at_once() -> None:
    slack = SlackStandIn(responders=())
    await slack.start()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(await open_url(slack))
        await ws.receive_json(timeout=2)
        await asyncio.wait_for(slack.stop(), timeout=2)
        closing = await ws.receive(timeout=2)

    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# -- envelopes and acks, through Bolt's Socket Mode handler -----------------------------------


async def test_a_slash_command_travels_as_an_envelope_and_its_ack_shows_to_the_user(
    slack: SlackStandIn, user: SlackUser, socket_bot: SocketBot
) -> None:
    reply = await user.slash_command(ALICE, GENERAL, "sev9")

    assert (reply.status, reply.body, reply.error) == (200, {"text": "Usage: /incident sev9?"}, None)
    (ephemeral,) = slack.ephemerals(ALICE)
    assert (ephemeral.text, ephemeral.source) == ("Usage: /incident sev9?", "ack")
    (envelope,) = slack.socket_envelopes()
    sent = envelope.to_slack()
    assert set(sent) == {"envelope_id", "type", "payload", "accepts_response_payload"}
    assert (sent["type"], sent["accepts_response_payload"]) == ("slash_commands", True)
    # The payload is the HTTP form as a JSON object, every value a string, as Bolt saw it.
    (body,) = socket_bot.received
    assert sent["payload"] == body
    assert (body["command"], body["text"], body["user_id"], body["channel_id"]) == (
        "/incident",
        "sev9",
        ALICE,
        GENERAL,
    )
    assert body["trigger_id"] in slack.workspace.triggers
    assert all(isinstance(v, str) for v in body.values())
    assert (envelope.acked, envelope.ack_payload) == (True, {"text": "Usage: /incident sev9?"})


async def test_a_bare_ack_shows_nothing_and_the_listener_still_responds(
    slack: SlackStandIn, user: SlackUser
) -> None:
    reply = await user.slash_command(ALICE, GENERAL, "later")

    assert (reply.status, reply.body) == (200, None)
    assert slack.ephemerals() == []
    (message,) = slack.messages(GENERAL)
    assert (message.text, message.source) == ("Declared *checkout errors*", "response_url")


async def test_a_checkbox_click_is_an_interactive_envelope(
    slack: SlackStandIn, user: SlackUser, socket_bot: SocketBot
) -> None:
    ts = await post_checklist(slack)

    reply = await user.click_checkbox(BOB, GENERAL, ts, "step-0", selected=True)

    assert (reply.status, reply.body) == (200, None)
    (envelope,) = slack.socket_envelopes()
    assert (envelope.type, envelope.payload["type"]) == ("interactive", "block_actions")
    assert socket_bot.received == [envelope.payload]
    shown = slack.message(GENERAL, ts).blocks[2]["elements"][0]
    assert [o["value"] for o in shown["initial_options"]] == ["page"]


async def test_a_message_shortcut_is_an_interactive_envelope(
    slack: SlackStandIn, user: SlackUser, socket_bot: SocketBot
) -> None:
    said = slack.add_user_message(GENERAL, ALICE, "checkout is failing")

    reply = await user.use_message_shortcut(BOB, GENERAL, said.ts, "add_to_timeline")

    assert (reply.status, reply.body) == (200, None)
    (envelope,) = slack.socket_envelopes()
    assert (envelope.type, envelope.payload["type"]) == ("interactive", "message_action")
    assert socket_bot.received == [envelope.payload]
    await eventually(lambda: len(slack.ephemerals(BOB)) == 1)


async def test_view_submission_acks_keep_update_or_close_the_modal(
    slack: SlackStandIn, user: SlackUser
) -> None:
    await user.slash_command(ALICE, GENERAL, "form")
    await user.slash_command(BOB, GENERAL, "form")
    first, second = slack.views()

    refused = await user.submit_view(ALICE, first.id, title_value("  "))
    assert refused.json_body() == {
        "response_action": "errors",
        "errors": {"title": "Give the incident a title"},
    }
    assert slack.view(first.id).is_open

    accepted = await user.submit_view(ALICE, first.id, title_value("Checkout errors"))
    assert (accepted.status, accepted.body) == (200, None)
    assert not slack.view(first.id).is_open

    await user.submit_view(BOB, second.id, title_value("next step"))
    assert slack.view(second.id).is_open
    assert slack.view(second.id).view["blocks"][0]["text"]["text"] == "Declared. Thanks!"
    assert [e.payload["type"] for e in slack.socket_envelopes()[2:]] == ["view_submission"] * 3
    assert slack.rejected_calls() == []


async def test_no_ack_within_the_window_is_a_failed_dispatch(
    slack: SlackStandIn, socket_bot: SocketBot
) -> None:
    user = SlackUser.over_socket_mode(slack, ack_timeout=0.3)

    # No listener for this command: Bolt answers 404 internally and sends no ack.
    reply = await user.slash_command(ALICE, GENERAL, "anything", command="/unknown")

    assert (reply.status, reply.body, reply.error) == (NO_ACK_STATUS, None, "dispatch_failed")
    (envelope,) = slack.socket_envelopes()
    assert not envelope.acked
    assert slack.ephemerals() == []


async def test_with_no_socket_open_a_command_fails_at_once(slack: SlackStandIn) -> None:
    user = SlackUser.over_socket_mode(slack)

    reply = await asyncio.wait_for(user.slash_command(ALICE, GENERAL, "sev2 down"), timeout=1)

    assert (reply.status, reply.error) == (NOT_CONNECTED_STATUS, "dispatch_failed")
    assert slack.socket_envelopes() == []


async def test_an_ack_after_the_window_is_recorded_but_changes_nothing(slack: SlackStandIn) -> None:
    user = SlackUser.over_socket_mode(slack, ack_timeout=0.2)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(await open_url(slack))
        await ws.receive_json(timeout=2)  # hello
        command = asyncio.create_task(user.slash_command(ALICE, GENERAL, "sev9"))
        envelope = await ws.receive_json(timeout=2)
        reply = await command
        await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "too late"}})
        await eventually(lambda: slack.socket_envelopes()[0].late_ack)
        await ws.close()

    assert reply.status == NO_ACK_STATUS
    assert not slack.socket_envelopes()[0].acked
    assert slack.ephemerals() == []


# -- dropped connections ---------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "refresh_requested"])
async def test_a_dropped_socket_makes_the_app_reconnect_by_itself(
    slack: SlackStandIn, user: SlackUser, reason: Any
) -> None:
    (before,) = slack.socket_connections()

    assert await slack.drop_socket_connections(reason=reason) == 1

    await eventually(lambda: [c.id for c in slack.socket_connections()] not in ([], [before.id]))
    assert len(slack.calls("apps.connections.open")) == 2
    assert not before.is_open
    reply = await user.slash_command(ALICE, GENERAL, "sev9")
    assert reply.body == {"text": "Usage: /incident sev9?"}
    assert slack.socket_envelopes()[-1].connection_id != before.id


async def test_a_disconnect_warning_alone_makes_the_app_move_to_a_new_socket(
    slack: SlackStandIn, user: SlackUser
) -> None:
    (before,) = slack.socket_connections()

    assert await slack.send_socket_disconnect("warning") == 1

    # The client opens a new connection and closes the old one itself.
    await eventually(lambda: [c.id for c in slack.socket_connections()] not in ([], [before.id]))
    await eventually(lambda: not before.is_open)
    assert len(slack.socket_connections()) == 1
    assert (await user.slash_command(ALICE, GENERAL, "sev9")).status == 200


async def test_raw_posts_are_for_the_http_transport_only(slack: SlackStandIn) -> None:
    with pytest.raises(RuntimeError, match="Socket Mode"):
        await SlackUser.over_socket_mode(slack).post_raw(b"", {})
