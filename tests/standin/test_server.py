"""The stand-in through real HTTP, driven by slack_sdk's AsyncWebClient like the bot drives it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.demo.standin import (
    DEFAULT_BOT_SCOPES,
    BotIdentity,
    Bucket,
    RateLimitConfig,
    SeedChannel,
    SlackStandIn,
)
from bot.demo.standin.workspace import Message

from .builders import (
    FakeClock,
    actions,
    button,
    checkboxes,
    modal,
    option,
    plain,
    refused,
    section,
    title_input,
)


def checklist(steps: int = 2) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": plain("SEV2: checkout errors")},
        section("*Status:* investigating"),
        actions(*[checkboxes([option(f"Step {i}", f"step-{i}")], f"step-{i}") for i in range(steps)]),
    ]


# -- chat.postMessage ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_post_message_answers_like_slack_and_stores_the_message(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.chat_postMessage(channel="C0GENERAL", text="SEV2 declared", blocks=checklist())

    assert response["ok"] is True
    assert response["channel"] == "C0GENERAL"
    message = response["message"]
    assert message["ts"] == response["ts"]
    assert message["text"] == "SEV2 declared"
    assert message["bot_id"] == slack.bot.bot_id
    assert message["user"] == slack.bot.user_id
    # Slack names every block and element the app left unnamed.
    assert all(block.get("block_id") for block in message["blocks"])
    stored = slack.message("C0GENERAL", response["ts"])
    assert stored.blocks == message["blocks"]


@pytest.mark.asyncio
async def test_generated_block_ids_never_collide_with_the_apps_own(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    first_generated = slack.workspace.generated_id("probe")  # what the stand-in would pick

    posted = await client.chat_postMessage(
        channel="C0GENERAL", text="x", blocks=[section(block_id=first_generated), section()]
    )

    ids = [b["block_id"] for b in posted["message"]["blocks"]]
    assert ids[0] == first_generated
    assert ids[1] and ids[1] != first_generated


@pytest.mark.asyncio
async def test_message_ts_values_strictly_increase(slack: SlackStandIn, client: AsyncWebClient) -> None:
    # The fake clock is frozen, so only the stand-in's own ordering can separate them.
    for n in range(3):
        await client.chat_postMessage(channel="C0GENERAL", text=f"update {n}")

    stamps = [m.ts for m in slack.messages("C0GENERAL")]

    assert stamps == sorted(stamps, key=lambda ts: tuple(int(p) for p in ts.split(".")))
    assert len(set(stamps)) == 3
    assert stamps[0] == "1700000000.000000"


@pytest.mark.asyncio
async def test_form_encoded_call_with_blocks_as_json_string(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.api_call(
        "chat.postMessage",
        data={"channel": "general", "text": "hi", "blocks": json.dumps([section("hello")])},
    )

    assert response["channel"] == "C0GENERAL"  # resolved from the channel name
    assert slack.messages("C0GENERAL")[0].blocks[0]["text"]["text"] == "hello"


@pytest.mark.asyncio
async def test_token_may_be_a_form_parameter(slack: SlackStandIn) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.url}auth.test", data={"token": slack.bot_token}) as response,
    ):
        body = await response.json()

    assert body["ok"] is True
    assert body["user_id"] == slack.bot.user_id


@pytest.mark.asyncio
async def test_token_inside_a_json_body_is_ignored(slack: SlackStandIn) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.url}auth.test", json={"token": slack.bot_token}) as response,
    ):
        body = await response.json()

    assert body == {"ok": False, "error": "not_authed"}


@pytest.mark.asyncio
async def test_link_names_and_parse_are_recorded(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C0GENERAL", text="hi", link_names=True, parse="full")
    await client.chat_postMessage(channel="C0GENERAL", text="plain")

    first, second = slack.calls("chat.postMessage")

    assert first.params["link_names"] is True
    assert first.params["parse"] == "full"
    assert "link_names" not in second.params and "parse" not in second.params


# -- rejections ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_invalid_blocks_are_refused_with_reasons(slack: SlackStandIn, client: AsyncWebClient) -> None:
    body = await refused(
        client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[{"type": "checklist"}])
    )

    assert body["error"] == "invalid_blocks"
    assert body["errors"] == ["unknown block type 'checklist' [json-pointer:/blocks/0/type]"]
    assert slack.messages("C0GENERAL") == []
    (rejected,) = slack.rejected_calls()
    assert rejected.method == "chat.postMessage"
    assert rejected.reasons == body["errors"]


@pytest.mark.asyncio
async def test_eleven_checkbox_options_are_refused(client: AsyncWebClient) -> None:
    eleven = [option(f"Step {i}", f"s{i}") for i in range(11)]

    body = await refused(
        client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[actions(checkboxes(eleven))])
    )

    assert body["error"] == "invalid_blocks"
    assert "checkboxes element has 11 options; at most 10 allowed" in body["errors"][0]


@pytest.mark.asyncio
async def test_fifty_one_blocks_are_refused(client: AsyncWebClient) -> None:
    ok = await client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[section()] * 50)
    assert ok["ok"] is True

    body = await refused(client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[section()] * 51))

    assert body["error"] == "invalid_blocks"
    assert "51 blocks in one message; at most 50" in body["errors"][0]


@pytest.mark.asyncio
async def test_section_text_over_3000_is_refused(client: AsyncWebClient) -> None:
    body = await refused(client.chat_postMessage(channel="C0GENERAL", text="x", blocks=[section("s" * 3001)]))

    assert body["error"] == "invalid_blocks"
    assert "section text is 3001 characters; at most 3000" in body["errors"][0]


@pytest.mark.asyncio
async def test_unparseable_blocks_are_invalid_blocks_format(client: AsyncWebClient) -> None:
    body = await refused(client.api_call("chat.postMessage", data={"channel": "C0GENERAL", "blocks": "[{"}))

    assert body["error"] == "invalid_blocks_format"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.asyncio
async def test_empty_and_oversized_messages(client: AsyncWebClient) -> None:
    assert (await refused(client.chat_postMessage(channel="C0GENERAL", text="")))["error"] == ("no_text")
    too_long = await refused(client.chat_postMessage(channel="C0GENERAL", text="t" * 40_001))
    assert too_long["error"] == "msg_too_long"


@pytest.mark.asyncio
async def test_unknown_channel_is_channel_not_found(client: AsyncWebClient) -> None:
    body = await refused(client.chat_postMessage(channel="C9NOPE", text="hi"))

    assert body["error"] == "channel_not_found"


@pytest.mark.asyncio
async def test_private_channel_without_the_bot_does_not_exist_for_it(clock: FakeClock) -> None:
    secret = SeedChannel(id="C0SECRET", name="secret", is_private=True)
    async with SlackStandIn(responders=(), clock=clock, channels=[secret]) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.chat_postMessage(channel="C0SECRET", text="hi"))

    # Slack hides private channels from non-members: the answer is not not_in_channel.
    assert body["error"] == "channel_not_found"


@pytest.mark.asyncio
async def test_public_channel_without_membership_needs_chat_write_public(
    clock: FakeClock,
) -> None:
    scopes = DEFAULT_BOT_SCOPES - {"chat:write.public"}
    async with SlackStandIn(responders=(), clock=clock, scopes=scopes) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.chat_postMessage(channel="C0MANAGERS", text="hi"))
        await client.conversations_create(name="inc-42")  # the creator is a member
        posted = await client.chat_postMessage(channel="inc-42", text="hi")

    assert body["error"] == "not_in_channel"
    assert posted["ok"] is True


@pytest.mark.asyncio
async def test_missing_scope_names_what_is_needed(clock: FakeClock) -> None:
    async with SlackStandIn(responders=(), clock=clock, scopes={"commands", "users:read"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.chat_postMessage(channel="C0GENERAL", text="hi"))

    assert body["error"] == "missing_scope"
    assert body["needed"] == "chat:write"
    assert body["provided"] == "commands,users:read"


@pytest.mark.asyncio
async def test_conversations_join_needs_its_scope() -> None:
    async with SlackStandIn(responders=(), scopes=DEFAULT_BOT_SCOPES - {"channels:join"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        body = await refused(client.conversations_join(channel="C0MANAGERS"))

    assert body["error"] == "missing_scope"
    assert body["needed"] == "channels:join"


@pytest.mark.asyncio
async def test_bad_and_missing_tokens(slack: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-someone-else", base_url=slack.url)
    none = AsyncWebClient(base_url=slack.url)

    assert (await refused(wrong.auth_test()))["error"] == "invalid_auth"
    assert (await refused(none.auth_test()))["error"] == "not_authed"
    assert [c.error for c in slack.rejected_calls()] == ["invalid_auth", "not_authed"]


@pytest.mark.asyncio
async def test_unknown_method_is_http_200(slack: SlackStandIn) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.url}chat.teleport") as response,
    ):
        body = await response.json()

    assert response.status == 200
    assert body == {"ok": False, "error": "unknown_method", "req_method": "chat.teleport"}


# -- conversations.* -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "invalid_name_required"),
        ("i" * 81, "invalid_name_maxlength"),
        ("Inc-42", "invalid_name_specials"),
        ("inc 42", "invalid_name_specials"),
        ("inc.42", "invalid_name_specials"),
        ("-_-", "invalid_name_punctuation"),
        ("general", "name_taken"),
    ],
)
@pytest.mark.asyncio
async def test_channel_names_slack_refuses(
    slack: SlackStandIn, client: AsyncWebClient, name: str, error: str
) -> None:
    body = await refused(client.conversations_create(name=name))

    assert body["error"] == error
    assert len(slack.channels()) == 2


@pytest.mark.asyncio
async def test_create_channel_makes_the_bot_creator_and_member(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    response = await client.conversations_create(name="inc-2024_07-" + "x" * 68, is_private=True)

    channel = response["channel"]
    assert channel["id"] == "C0001"
    assert channel["is_private"] is True
    assert channel["is_member"] is True
    assert channel["creator"] == slack.bot.user_id
    assert slack.channel_by_name(channel["name"]) is not None
    assert (await refused(client.conversations_create(name=channel["name"])))["error"] == ("name_taken")


@pytest.mark.asyncio
async def test_channel_creation_can_be_forbidden(clock: FakeClock) -> None:
    async with SlackStandIn(responders=(), clock=clock, allow_channel_creation=False) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.conversations_create(name="inc-1"))

    assert body["error"] == "restricted_action"


@pytest.mark.asyncio
async def test_invite_users(slack: SlackStandIn, client: AsyncWebClient) -> None:
    channel_id = (await client.conversations_create(name="inc-7"))["channel"]["id"]

    invited = await client.conversations_invite(channel=channel_id, users="U0ALICE,U0BOB")
    again = await refused(client.conversations_invite(channel=channel_id, users="U0ALICE"))
    unknown = await refused(client.conversations_invite(channel=channel_id, users="U0NOBODY"))
    self_invite = await refused(client.conversations_invite(channel=channel_id, users=slack.bot.user_id))
    outside = await refused(client.conversations_invite(channel="C0MANAGERS", users="U0BOB"))

    assert invited["channel"]["id"] == channel_id
    channel = slack.channel_by_name("inc-7")
    assert channel is not None
    assert channel.members == {slack.bot.user_id, "U0ALICE", "U0BOB"}
    assert again["error"] == "already_in_channel"
    assert again["errors"] == [{"user": "U0ALICE", "ok": False, "error": "already_in_channel"}]
    assert unknown["error"] == "user_not_found"
    assert self_invite["error"] == "cant_invite_self"
    assert outside["error"] == "not_in_channel"


@pytest.mark.asyncio
async def test_join_and_info_with_the_right_scopes(clock: FakeClock) -> None:
    async with SlackStandIn(
        responders=(), clock=clock, scopes=DEFAULT_BOT_SCOPES | {"channels:join", "channels:read"}
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        before = await client.conversations_info(channel="C0MANAGERS", include_num_members=True)
        joined = await client.conversations_join(channel="C0MANAGERS")
        rejoined = await client.conversations_join(channel="C0MANAGERS")

    assert before["channel"]["is_member"] is False
    assert before["channel"]["num_members"] == 3
    assert joined["channel"]["is_member"] is True
    assert rejoined["warning"] == "already_in_channel"


@pytest.mark.asyncio
async def test_users_info(client: AsyncWebClient) -> None:
    alice = await client.users_info(user="U0ALICE")

    assert alice["user"]["name"] == "alice"
    assert alice["user"]["is_bot"] is False
    assert (await refused(client.users_info(user="U0NOBODY")))["error"] == "user_not_found"


# -- chat.update / postEphemeral / getPermalink ----------------------------------------------


@pytest.mark.asyncio
async def test_chat_update_replaces_blocks(slack: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="v1", blocks=checklist())

    updated = await client.chat_update(
        channel="C0GENERAL", ts=posted["ts"], text="v2", blocks=[section("resolved")]
    )

    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "v2"
    stored = slack.message("C0GENERAL", posted["ts"])
    assert [b["text"]["text"] for b in stored.blocks] == ["resolved"]


@pytest.mark.asyncio
async def test_chat_update_with_text_only_drops_the_blocks(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="v1", blocks=checklist())

    await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="plain now")

    stored = slack.message("C0GENERAL", posted["ts"])
    assert stored.blocks == []
    assert stored.text == "plain now"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.asyncio
async def test_chat_update_refusals(slack: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="v1")
    slack.workspace.messages["C0GENERAL"].append(
        Message(channel="C0GENERAL", ts="1700000001.000000", text="human", user="U0ALICE", team="T0001")
    )

    missing = await refused(client.chat_update(channel="C0GENERAL", ts="1.000000", text="x"))
    foreign = await refused(client.chat_update(channel="C0GENERAL", ts="1700000001.000000", text="x"))
    by_name = await refused(client.chat_update(channel="general", ts=posted["ts"], text="x"))
    empty = await refused(client.chat_update(channel="C0GENERAL", ts=posted["ts"]))
    invalid = await refused(
        client.chat_update(channel="C0GENERAL", ts=posted["ts"], blocks=[section("s" * 3001)])
    )

    assert missing["error"] == "message_not_found"
    assert foreign["error"] == "cant_update_message"
    assert by_name["error"] == "channel_not_found"
    assert empty["error"] == "no_text"
    assert invalid["error"] == "invalid_blocks"
    assert slack.message("C0GENERAL", posted["ts"]).text == "v1"


@pytest.mark.asyncio
async def test_post_ephemeral(slack: SlackStandIn, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="psst")
    channel_id = (await client.conversations_create(name="inc-9"))["channel"]["id"]
    outsider = await refused(client.chat_postEphemeral(channel=channel_id, user="U0BOB", text="psst"))

    (ephemeral,) = slack.ephemerals("U0BOB")
    assert ephemeral.ts == response["message_ts"]
    assert ephemeral.text == "psst"
    assert slack.messages("C0GENERAL") == []
    assert outsider["error"] == "user_not_in_channel"


@pytest.mark.asyncio
async def test_permalink(client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="hi")

    link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=posted["ts"])

    assert link["permalink"] == (
        f"https://standin.slack.test/archives/C0GENERAL/p{posted['ts'].replace('.', '')}"
    )


@pytest.mark.asyncio
async def test_permalinks_and_auth_test_use_the_workspace_domain(clock: FakeClock) -> None:
    async with SlackStandIn(responders=(), clock=clock, bot=BotIdentity(team_domain="acme")) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        posted = await client.chat_postMessage(channel="C0GENERAL", text="hi")

        link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=posted["ts"])
        auth = await client.auth_test()

    assert link["permalink"] == f"https://acme.slack.test/archives/C0GENERAL/p{posted['ts'].replace('.', '')}"
    assert link["channel"] == "C0GENERAL"
    assert auth["url"] == "https://acme.slack.test/"


@pytest.mark.asyncio
async def test_permalink_of_a_thread_reply_names_its_thread(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0GENERAL", text="SEV2 declared")
    reply = await client.chat_postMessage(channel="C0GENERAL", text="paged", thread_ts=parent["ts"])

    link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"])

    assert link["permalink"] == (
        f"https://standin.slack.test/archives/C0GENERAL/p{reply['ts'].replace('.', '')}"
        f"?thread_ts={parent['ts']}&cid=C0GENERAL"
    )


@pytest.mark.asyncio
async def test_permalink_needs_no_scope_and_refuses_what_is_not_there(clock: FakeClock) -> None:
    async with SlackStandIn(responders=(), clock=clock, scopes=()) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        said = slack.add_user_message("C0GENERAL", "U0ALICE", "checkout is failing")

        link = await client.chat_getPermalink(channel="C0GENERAL", message_ts=said.ts)
        no_message = await refused(client.chat_getPermalink(channel="C0GENERAL", message_ts="1.000001"))
        no_channel = await refused(client.chat_getPermalink(channel="C0NOWHERE", message_ts=said.ts))

    assert link["permalink"].endswith(f"/archives/C0GENERAL/p{said.ts.replace('.', '')}")
    assert no_message["error"] == "message_not_found"
    assert no_channel["error"] == "channel_not_found"


# -- views.* ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_views_open_with_a_fresh_trigger(slack: SlackStandIn, client: AsyncWebClient) -> None:
    trigger = slack.new_trigger_id("U0ALICE")

    response = await client.views_open(
        trigger_id=trigger, view=modal([title_input()], private_metadata='{"sev": 2}')
    )

    view = response["view"]
    assert view["id"] == "V0001"
    assert view["hash"]
    assert view["callback_id"] == "declare"
    assert view["private_metadata"] == '{"sev": 2}'
    (opened,) = slack.views()
    assert opened.trigger_id == trigger and opened.user_id == "U0ALICE" and opened.is_open


@pytest.mark.asyncio
async def test_expired_trigger_id(slack: SlackStandIn, client: AsyncWebClient, clock: FakeClock) -> None:
    trigger = slack.new_trigger_id("U0ALICE")
    clock.advance(3.1)

    body = await refused(client.views_open(trigger_id=trigger, view=modal([section()])))

    assert body["error"] == "expired_trigger_id"
    assert slack.views() == []


@pytest.mark.asyncio
async def test_trigger_id_works_only_once(slack: SlackStandIn, client: AsyncWebClient) -> None:
    trigger = slack.new_trigger_id("U0ALICE")
    await client.views_open(trigger_id=trigger, view=modal([section()]))

    body = await refused(client.views_open(trigger_id=trigger, view=modal([section()])))

    assert body["error"] == "exchanged_trigger_id"


@pytest.mark.asyncio
async def test_made_up_trigger_id(client: AsyncWebClient) -> None:
    body = await refused(client.views_open(trigger_id="123.456.abc", view=modal([section()])))

    assert body["error"] == "invalid_trigger_id"


@pytest.mark.asyncio
async def test_invalid_view_does_not_burn_the_trigger(slack: SlackStandIn, client: AsyncWebClient) -> None:
    trigger = slack.new_trigger_id("U0ALICE")

    body = await refused(
        client.views_open(trigger_id=trigger, view=modal([section()], title=plain("t" * 25)))
    )
    retry = await client.views_open(trigger_id=trigger, view=modal([section()]))

    assert body["error"] == "invalid_arguments"
    assert body["response_metadata"]["messages"] == [
        "[ERROR] modal title is 25 characters; at most 24 [json-pointer:/view/title/text]"
    ]
    assert retry["ok"] is True


@pytest.mark.asyncio
async def test_views_update_and_hash_conflict(slack: SlackStandIn, client: AsyncWebClient) -> None:
    opened = (await client.views_open(trigger_id=slack.new_trigger_id("U0ALICE"), view=modal([section()])))[
        "view"
    ]

    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal([section("step 2")])
    )
    stale = await refused(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal([section()]))
    )
    missing = await refused(client.views_update(view_id="V9999", view=modal([section()])))

    assert updated["view"]["blocks"][0]["text"]["text"] == "step 2"
    assert updated["view"]["hash"] != opened["hash"]
    assert stale["error"] == "hash_conflict"
    assert missing["error"] == "not_found"


@pytest.mark.asyncio
async def test_views_push_stacks_up_to_three(slack: SlackStandIn, client: AsyncWebClient) -> None:
    root = (await client.views_open(trigger_id=slack.new_trigger_id("U0ALICE"), view=modal([section()])))[
        "view"
    ]
    pushes = []
    for _ in range(2):
        trigger = slack.new_trigger_id("U0ALICE", view_id=root["id"])
        pushes.append((await client.views_push(trigger_id=trigger, view=modal([section()])))["view"])
    trigger = slack.new_trigger_id("U0ALICE", view_id=root["id"])

    full = await refused(client.views_push(trigger_id=trigger, view=modal([section()])))

    assert [p["root_view_id"] for p in pushes] == [root["id"], root["id"]]
    assert pushes[1]["previous_view_id"] == pushes[0]["id"]
    assert full["error"] == "push_limit_reached"


# -- response_url ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_response_url_posts_ephemeral_by_default(slack: SlackStandIn) -> None:
    url = slack.new_response_url("C0GENERAL", "U0ALICE")

    response = await AsyncWebhookClient(url).send(text="Only you can see this")

    assert (response.status_code, response.body) == (200, "ok")
    (ephemeral,) = slack.ephemerals("U0ALICE")
    assert ephemeral.text == "Only you can see this"
    assert slack.responses()[0].applied_as == "ephemeral"


@pytest.mark.asyncio
async def test_response_url_in_channel_and_replace_original(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="v1", blocks=checklist())
    url = slack.new_response_url("C0GENERAL", "U0ALICE", message_ts=posted["ts"])
    webhook = AsyncWebhookClient(url)

    await webhook.send(text="Declared", response_type="in_channel")
    await webhook.send(text="v2", blocks=[section("replaced")], replace_original=True)

    first, second = slack.messages("C0GENERAL")
    assert first.ts == posted["ts"]
    assert [b["text"]["text"] for b in first.blocks] == ["replaced"]
    assert second.text == "Declared"
    assert second.source == "response_url"


@pytest.mark.asyncio
async def test_response_url_validates_blocks(slack: SlackStandIn) -> None:
    url = slack.new_response_url("C0GENERAL", "U0ALICE")

    response = await AsyncWebhookClient(url).send(text="x", blocks=[{"type": "checklist"}])

    assert (response.status_code, response.body) == (400, "invalid_blocks")
    assert slack.ephemerals() == []
    assert "unknown block type 'checklist'" in slack.responses()[0].reasons[0]
    (rejected,) = slack.rejected_calls()
    assert (rejected.method, rejected.error, rejected.http_status) == (
        "response_url",
        "invalid_blocks",
        400,
    )


@pytest.mark.asyncio
async def test_response_url_works_five_times(slack: SlackStandIn) -> None:
    webhook = AsyncWebhookClient(slack.new_response_url("C0GENERAL", "U0ALICE"))

    statuses = [(await webhook.send(text=f"update {n}")).status_code for n in range(6)]

    assert statuses == [200, 200, 200, 200, 200, 404]
    assert len(slack.ephemerals("U0ALICE")) == 5
    assert slack.responses()[-1].reasons == ["response_url was already used 5 times"]
    assert [c.error for c in slack.rejected_calls()] == ["expired_url"]


@pytest.mark.asyncio
async def test_response_url_expires_after_30_minutes(slack: SlackStandIn, clock: FakeClock) -> None:
    webhook = AsyncWebhookClient(slack.new_response_url("C0GENERAL", "U0ALICE"))
    clock.advance(29 * 60)
    assert (await webhook.send(text="still fine")).status_code == 200

    clock.advance(2 * 60)
    late = await webhook.send(text="too late")

    assert (late.status_code, late.body) == (404, "expired_url")


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_post_message_rate_limit_per_channel(clock: FakeClock) -> None:
    config = RateLimitConfig(chat_post_message_per_channel=Bucket(burst=2, per_second=0.5))
    async with SlackStandIn(responders=(), clock=clock, rate_limits=True, rate_limit_config=config) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        for n in range(2):
            await client.chat_postMessage(channel="C0GENERAL", text=f"burst {n}")

        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C0GENERAL", text="one too many")
        other_channel = await client.chat_postMessage(channel="C0MANAGERS", text="separate bucket")
        clock.advance(2)
        after_wait = await client.chat_postMessage(channel="C0GENERAL", text="after waiting")

    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.data == {"ok": False, "error": "ratelimited"}
    assert other_channel["ok"] is True and after_wait["ok"] is True
    (limited,) = slack.rejected_calls()
    assert (limited.http_status, limited.error) == (429, "ratelimited")
    assert "retry after 2s" in limited.reasons[0]
    assert len(slack.messages("C0GENERAL")) == 3


@pytest.mark.asyncio
async def test_update_and_create_buckets_are_workspace_wide(clock: FakeClock) -> None:
    config = RateLimitConfig(
        chat_update=Bucket.per_minute(50, burst=1),
        conversations_create=Bucket.per_minute(20, burst=1),
    )
    async with SlackStandIn(responders=(), clock=clock, rate_limits=True, rate_limit_config=config) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        posted = await client.chat_postMessage(channel="C0GENERAL", text="v1")
        await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="v2")
        update_limited = await refused(client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="v3"))
        await client.conversations_create(name="inc-1")
        create_limited = await refused(client.conversations_create(name="inc-2"))

    assert update_limited["error"] == "ratelimited"
    assert create_limited["error"] == "ratelimited"
    assert [c.http_status for c in slack.rejected_calls()] == [429, 429]
    assert slack.channel_by_name("inc-2") is None


@pytest.mark.asyncio
async def test_rate_limits_are_off_by_default(slack: SlackStandIn, client: AsyncWebClient) -> None:
    for n in range(10):
        await client.chat_postMessage(channel="C0GENERAL", text=f"burst {n}")

    assert slack.rejected_calls() == []


# -- queries ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_calls_are_recorded_in_order_with_outcome(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.auth_test()
    await client.chat_postMessage(channel="C0GENERAL", text="hi", blocks=[actions(button())])
    await refused(client.chat_postMessage(channel="C9NOPE", text="hi"))

    assert [(c.method, c.ok, c.error) for c in slack.calls()] == [
        ("auth.test", True, None),
        ("chat.postMessage", True, None),
        ("chat.postMessage", False, "channel_not_found"),
    ]
    assert "token" not in slack.calls()[1].params
    assert len(slack.calls("chat.postMessage")) == 2
