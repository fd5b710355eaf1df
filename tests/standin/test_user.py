"""SlackUser against a real Bolt app: signatures, payload shapes, and the full round trip.

Bolt verifies every request with slack_sdk's SignatureVerifier and parses the payloads, so a
request it accepts is one Slack could have sent. The app calls back into the stand-in.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import SlackStandIn, SlackUser, render_channel

from .builders import actions, button, checkboxes, modal, option, plain, section, title_input

SIGNING_SECRET = "standin-signing-secret"
JsonDict = dict[str, Any]


@dataclass
class BotUnderTest:
    """A tiny Bolt app: enough listeners to exercise every kind of request."""

    request_url: str
    received: list[JsonDict] = field(default_factory=list)


def build_app(slack: SlackStandIn, received: list[JsonDict]) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=slack.bot_token, base_url=slack.url),
        signing_secret=SIGNING_SECRET,
        process_before_response=True,  # answer only after the listener ran: no races
    )

    @app.command("/incident")
    async def incident(ack: AsyncAck, body: JsonDict, client: AsyncWebClient, respond: AsyncRespond) -> None:
        received.append(body)
        if body["text"] == "form":
            await ack()
            await client.views_open(
                trigger_id=body["trigger_id"],
                view=modal([title_input()], private_metadata=json.dumps({"channel": "C0GENERAL"})),
            )
        elif body["text"] == "later":
            await ack()
            await respond(text="Declared *checkout errors*", response_type="in_channel")
        else:
            await ack(text=f"Usage: /incident {body['text']}?")

    @app.action({"type": "block_actions", "action_id": "step-0"})
    @app.action({"type": "block_actions", "action_id": "step-1"})
    async def tick(ack: AsyncAck, body: JsonDict, client: AsyncWebClient) -> None:
        await ack()
        received.append(body)
        clicked = body["actions"][0]
        blocks = copy.deepcopy(body["message"]["blocks"])
        for block in blocks:
            for element in block.get("elements", []):
                if element.get("action_id") == clicked["action_id"]:
                    element.pop("initial_options", None)
                    if clicked["selected_options"]:
                        element["initial_options"] = clicked["selected_options"]
        await client.chat_update(
            channel=body["container"]["channel_id"],
            ts=body["container"]["message_ts"],
            text=body["message"]["text"],
            blocks=blocks,
        )

    @app.action("resolve")
    async def resolve(ack: AsyncAck, body: JsonDict) -> None:
        await ack()
        received.append(body)

    @app.shortcut("add_to_timeline")
    async def add_to_timeline(ack: AsyncAck, body: JsonDict, respond: AsyncRespond) -> None:
        await ack()
        received.append(body)
        await respond(text=f"Added to the timeline: {body['message']['text']}")

    @app.shortcut("strike")
    async def strike(ack: AsyncAck, body: JsonDict, respond: AsyncRespond) -> None:
        await ack()
        received.append(body)
        await respond(text="~struck~", replace_original=True)

    @app.view("declare")
    async def declare(ack: AsyncAck, body: JsonDict, view: JsonDict) -> None:
        received.append(body)
        title = view["state"]["values"]["title"]["value"].get("value") or ""
        if not title.strip():
            await ack(response_action="errors", errors={"title": "Give the incident a title"})
        elif title == "next step":
            await ack(response_action="update", view=modal([section("Declared. Thanks!")]))
        elif title == "broken step":
            await ack(response_action="update", view=modal([section()], title=plain("t" * 30)))
        else:
            await ack()

    return app


@pytest_asyncio.fixture
async def bot(slack: SlackStandIn) -> AsyncIterator[BotUnderTest]:
    received: list[JsonDict] = []
    runner = web.AppRunner(build_app(slack, received).web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield BotUnderTest(request_url=f"http://{host}:{port}/slack/events", received=received)
    finally:
        await runner.cleanup()


@pytest.fixture
def user(slack: SlackStandIn, bot: BotUnderTest) -> SlackUser:
    return SlackUser(slack, bot.request_url, SIGNING_SECRET)


def checklist_blocks() -> list[JsonDict]:
    return [
        {"type": "header", "text": plain("SEV2: checkout errors")},
        section("*Status:* investigating"),
        actions(
            checkboxes([option("Page the on-call", "page", description="via PagerDuty")], "step-0"),
            checkboxes([option("Open a status page", "status")], "step-1"),
        ),
        actions(button("Resolve", "resolve", value="inc-42", style="primary")),
    ]


async def post_checklist(slack: SlackStandIn) -> str:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
    posted = await client.chat_postMessage(
        channel="C0GENERAL", text="SEV2 declared", blocks=checklist_blocks()
    )
    return str(posted["ts"])


# -- signatures ------------------------------------------------------------------------------


def test_signature_verifies_with_slack_sdk(slack: SlackStandIn) -> None:
    user = SlackUser(slack, "http://127.0.0.1:9/unused", SIGNING_SECRET)
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"

    headers = user.sign(body)

    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid(
        body=body,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )
    assert not SignatureVerifier("another-secret").is_valid(
        body=body,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )
    assert not verifier.is_valid(
        body=body + b"x",
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )


def test_signature_uses_the_given_timestamp(slack: SlackStandIn) -> None:
    user = SlackUser(slack, "http://127.0.0.1:9/unused", SIGNING_SECRET)

    headers = user.sign(b"body", timestamp=1_531_420_618)

    assert headers["X-Slack-Request-Timestamp"] == "1531420618"
    expected = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp="1531420618", body=b"body")
    assert headers["X-Slack-Signature"] == expected


@pytest.mark.asyncio
async def test_bot_refuses_forged_and_stale_requests(user: SlackUser, bot: BotUnderTest) -> None:
    body = b"command=%2Fincident&text=x"
    forged = {**user.sign(body), "X-Slack-Signature": "v0=" + "0" * 64}
    stale = user.sign(body, timestamp=int(time.time()) - 10 * 60)
    content_type = {"Content-Type": "application/x-www-form-urlencoded"}

    forged_reply = await user.post_raw(body, {**forged, **content_type})
    stale_reply = await user.post_raw(body, {**stale, **content_type})

    assert forged_reply.status == 401
    assert stale_reply.status == 401
    assert bot.received == []


# -- slash commands --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slash_command_sends_every_field_slack_sends(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    reply = await user.slash_command("U0ALICE", "C0GENERAL", "sev2")

    assert reply.status == 200
    (body,) = bot.received
    assert body["command"] == "/incident"
    assert body["text"] == "sev2"
    assert (body["user_id"], body["user_name"]) == ("U0ALICE", "alice")
    assert (body["channel_id"], body["channel_name"]) == ("C0GENERAL", "general")
    assert (body["team_id"], body["team_domain"]) == ("T0001", "standin")
    assert body["api_app_id"] == slack.bot.app_id
    assert body["is_enterprise_install"] == "false"
    assert body["token"] == "standin-verification-token"
    assert body["response_url"].startswith(f"{slack.base_url}response/")
    assert body["trigger_id"] in slack.workspace.triggers


@pytest.mark.asyncio
async def test_an_ack_with_text_shows_only_to_the_user(slack: SlackStandIn, user: SlackUser) -> None:
    reply = await user.slash_command("U0ALICE", "C0GENERAL", "sev9")

    assert reply.body == "Usage: /incident sev9?"  # Bolt acks bare text as text/plain
    (ephemeral,) = slack.ephemerals("U0ALICE")
    assert (ephemeral.text, ephemeral.source) == ("Usage: /incident sev9?", "ack")
    assert slack.messages("C0GENERAL") == []
    assert [c.method for c in slack.calls()] == ["auth.test"]  # the ack is not a call


@pytest.mark.asyncio
async def test_respond_through_the_response_url(slack: SlackStandIn, user: SlackUser) -> None:
    await user.slash_command("U0ALICE", "C0GENERAL", "later")

    (message,) = slack.messages("C0GENERAL")
    assert message.text == "Declared *checkout errors*"
    assert message.source == "response_url"
    assert slack.responses()[0].applied_as == "in_channel"


@pytest.mark.asyncio
async def test_slash_command_opens_a_modal_and_submission_is_validated(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    await user.slash_command("U0ALICE", "C0GENERAL", "form")
    (opened,) = slack.views()
    assert opened.user_id == "U0ALICE"
    assert opened.callback_id == "declare"

    empty = {"title": {"value": {"type": "plain_text_input", "value": "  "}}}
    refused = await user.submit_view("U0ALICE", opened.id, empty)

    assert refused.json_body() == {
        "response_action": "errors",
        "errors": {"title": "Give the incident a title"},
    }
    assert slack.view(opened.id).is_open
    submission = bot.received[-1]
    assert submission["type"] == "view_submission"
    assert submission["view"]["id"] == opened.id
    assert submission["view"]["private_metadata"] == '{"channel": "C0GENERAL"}'
    assert submission["view"]["state"]["values"] == empty

    filled = {"title": {"value": {"type": "plain_text_input", "value": "Checkout errors"}}}
    accepted = await user.submit_view("U0ALICE", opened.id, filled)

    assert (accepted.status, accepted.body) == (200, None)
    assert not slack.view(opened.id).is_open


def title_value(text: str) -> JsonDict:
    return {"title": {"value": {"type": "plain_text_input", "value": text}}}


@pytest.mark.asyncio
async def test_submission_can_update_the_modal(slack: SlackStandIn, user: SlackUser) -> None:
    await user.slash_command("U0ALICE", "C0GENERAL", "form")
    (opened,) = slack.views()

    await user.submit_view("U0ALICE", opened.id, title_value("next step"))

    view = slack.view(opened.id)
    assert view.is_open
    assert view.view["blocks"][0]["text"]["text"] == "Declared. Thanks!"
    assert slack.rejected_calls() == []


@pytest.mark.asyncio
async def test_an_invalid_view_in_a_submission_reply_is_a_rejected_call(
    slack: SlackStandIn, user: SlackUser
) -> None:
    await user.slash_command("U0ALICE", "C0GENERAL", "form")
    (opened,) = slack.views()

    await user.submit_view("U0ALICE", opened.id, title_value("broken step"))

    (rejected,) = slack.rejected_calls()
    assert rejected.method == "view_submission.response_action"
    assert "modal title is 30 characters; at most 24" in rejected.reasons[0]
    assert slack.view(opened.id).view["blocks"][0]["type"] == "input"  # unchanged


@pytest.mark.asyncio
async def test_submitting_values_for_blocks_the_view_lacks_is_a_test_error(
    slack: SlackStandIn, user: SlackUser
) -> None:
    await user.slash_command("U0ALICE", "C0GENERAL", "form")
    (opened,) = slack.views()

    with pytest.raises(LookupError, match="no blocks"):
        await user.submit_view("U0ALICE", opened.id, {"severity": {}})


# -- clicks ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_checkbox_click_payload_matches_slacks(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    ts = await post_checklist(slack)
    shown = slack.message("C0GENERAL", ts).to_slack()
    block_id = shown["blocks"][2]["block_id"]

    reply = await user.click_checkbox("U0BOB", "C0GENERAL", ts, "step-0", selected=True)

    assert reply.status == 200
    (payload,) = bot.received
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0001"}
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C0GENERAL",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C0GENERAL", "name": "general"}
    assert payload["message"] == shown
    page = option("Page the on-call", "page", description="via PagerDuty")
    (action,) = payload["actions"]
    assert {k: v for k, v in action.items() if k != "action_ts"} == {
        "type": "checkboxes",
        "action_id": "step-0",
        "block_id": block_id,
        "selected_options": [page],
    }
    assert payload["state"]["values"] == {
        block_id: {
            "step-0": {"type": "checkboxes", "selected_options": [page]},
            "step-1": {"type": "checkboxes", "selected_options": []},
        }
    }
    assert payload["response_url"].startswith(f"{slack.base_url}response/")
    assert payload["trigger_id"] in slack.workspace.triggers


@pytest.mark.asyncio
async def test_ticking_and_unticking_round_trip(slack: SlackStandIn, user: SlackUser) -> None:
    ts = await post_checklist(slack)

    await user.click_checkbox("U0BOB", "C0GENERAL", ts, "step-0", selected=True)
    ticked = render_channel(slack, "C0GENERAL")
    await user.click_checkbox("U0BOB", "C0GENERAL", ts, "step-0", selected=False)
    unticked = render_channel(slack, "C0GENERAL")

    assert "[x] Page the on-call — via PagerDuty" in ticked
    assert "[ ] Page the on-call — via PagerDuty" in unticked
    assert [c.method for c in slack.calls()].count("chat.update") == 2


@pytest.mark.asyncio
async def test_a_stale_client_sends_the_message_it_still_shows(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    ts = await post_checklist(slack)
    before_anything = slack.message("C0GENERAL", ts).to_slack()
    await user.click_checkbox("U0BOB", "C0GENERAL", ts, "step-0", selected=True)

    # Carol's client never refreshed: it still shows step-0 unticked.
    await user.click_checkbox("U0CAROL", "C0GENERAL", ts, "step-1", selected=True, snapshot=before_anything)

    payload = bot.received[-1]
    assert payload["message"] == before_anything
    state = next(iter(payload["state"]["values"].values()))
    assert state["step-0"]["selected_options"] == []
    assert state["step-1"]["selected_options"] == [option("Open a status page", "status")]


@pytest.mark.asyncio
async def test_button_click_carries_its_value(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    ts = await post_checklist(slack)

    await user.click_button("U0ALICE", "C0GENERAL", ts, "resolve")

    (action,) = bot.received[-1]["actions"]
    assert action["type"] == "button"
    assert action["value"] == "inc-42"
    assert action["style"] == "primary"
    assert action["text"] == plain("Resolve")


@pytest.mark.asyncio
async def test_clicking_what_is_not_there_fails_the_test(slack: SlackStandIn, user: SlackUser) -> None:
    ts = await post_checklist(slack)

    with pytest.raises(LookupError, match="no element with action_id 'step-9'"):
        await user.click_checkbox("U0BOB", "C0GENERAL", ts, "step-9", selected=True)
    with pytest.raises(TypeError, match="not checkboxes"):
        await user.click_checkbox("U0BOB", "C0GENERAL", ts, "resolve", selected=True)


# -- message shortcuts -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_message_shortcut_payload_matches_slacks(
    slack: SlackStandIn, user: SlackUser, bot: BotUnderTest
) -> None:
    said = slack.add_user_message("C0GENERAL", "U0ALICE", "checkout is failing since 10:02")

    reply = await user.use_message_shortcut("U0BOB", "C0GENERAL", said.ts, "add_to_timeline")

    assert reply.status == 200
    (payload,) = bot.received
    assert {k: v for k, v in payload.items() if k not in ("action_ts", "trigger_id", "response_url")} == {
        "type": "message_action",
        "token": "standin-verification-token",
        "team": {"id": "T0001", "domain": "standin"},
        "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0001"},
        "channel": {"id": "C0GENERAL", "name": "general"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": "add_to_timeline",
        "message_ts": said.ts,
        "message": {
            "type": "message",
            "text": "checkout is failing since 10:02",
            "user": "U0ALICE",
            "ts": said.ts,
            "team": "T0001",
        },
    }
    assert payload["trigger_id"] in slack.workspace.triggers
    assert payload["response_url"].startswith(f"{slack.base_url}response/")
    (ephemeral,) = slack.ephemerals("U0BOB")
    assert (ephemeral.text, ephemeral.source) == (
        "Added to the timeline: checkout is failing since 10:02",
        "response_url",
    )
    assert slack.rejected_calls() == []


@pytest.mark.asyncio
async def test_a_shortcut_reply_replaces_only_the_apps_own_message(
    slack: SlackStandIn, user: SlackUser
) -> None:
    own_ts = await post_checklist(slack)
    said = slack.add_user_message("C0GENERAL", "U0ALICE", "checkout is failing")

    await user.use_message_shortcut("U0BOB", "C0GENERAL", own_ts, "strike")
    await user.use_message_shortcut("U0BOB", "C0GENERAL", said.ts, "strike")

    assert slack.message("C0GENERAL", own_ts).text == "~struck~"
    assert slack.message("C0GENERAL", said.ts).text == "checkout is failing"


@pytest.mark.asyncio
async def test_a_shortcut_on_a_message_that_is_not_there_fails_the_test(
    slack: SlackStandIn, user: SlackUser
) -> None:
    with pytest.raises(KeyError, match="no message"):
        await user.use_message_shortcut("U0BOB", "C0GENERAL", "1.000001", "add_to_timeline")


# -- transcript ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transcript_reads_like_the_channel(slack: SlackStandIn) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
    parent = await client.chat_postMessage(
        channel="C0GENERAL",
        text="SEV2 declared",
        blocks=[
            *checklist_blocks(),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "Commander: <@U0ALICE>"}]},
        ],
    )
    await client.chat_postMessage(channel="C0GENERAL", text="Paged the on-call", thread_ts=parent["ts"])
    await client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="You are on the rota")

    assert render_channel(slack, "C0GENERAL") == "\n".join(
        [
            "incident-bot:",
            "    SEV2: checkout errors",
            "    *Status:* investigating",
            "    [ ] Page the on-call — via PagerDuty",
            "    [ ] Open a status page",
            "    [ Resolve ]",
            "    Commander: @alice",  # mentions read as Slack shows them
            "    incident-bot:",
            "        Paged the on-call",
        ]
    )
    assert render_channel(slack, "C0GENERAL", viewer="U0BOB").endswith(
        "only visible to you:\n    You are on the rota"
    )
