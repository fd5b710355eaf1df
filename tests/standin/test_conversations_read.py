"""conversations.history, .list and .members: scopes, membership, filters and cursor pages."""

from __future__ import annotations

import base64

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import DEFAULT_BOT_SCOPES, SeedChannel, SlackStandIn
from bot.demo.standin.workspace import DEFAULT_CHANNELS

from .builders import FakeClock, refused


async def channel_with_messages(
    client: AsyncWebClient, count: int, name: str = "inc-1"
) -> tuple[str, list[str]]:
    """A channel the bot created and `count` messages in it; returns (id, their ts, oldest first)."""
    created = await client.conversations_create(name=name)
    channel: str = created["channel"]["id"]
    stamps = [
        (await client.chat_postMessage(channel=channel, text=f"update {n}"))["ts"] for n in range(count)
    ]
    return channel, stamps


# -- conversations.history -------------------------------------------------------------------


async def test_history_is_newest_first_with_slacks_message_shape(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel, stamps = await channel_with_messages(client, 3)

    answer = await client.conversations_history(channel=channel)

    assert [m["ts"] for m in answer["messages"]] == stamps[::-1]
    assert answer["messages"][0]["text"] == "update 2"
    assert answer["messages"][0]["bot_id"] == slack.bot.bot_id
    assert answer["has_more"] is False
    assert "response_metadata" not in answer


async def test_history_pages_follow_next_cursor(client: AsyncWebClient) -> None:
    channel, stamps = await channel_with_messages(client, 5)

    first = await client.conversations_history(channel=channel, limit=2)
    second = await client.conversations_history(
        channel=channel, limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    third = await client.conversations_history(
        channel=channel, limit=2, cursor=second["response_metadata"]["next_cursor"]
    )

    assert [[m["ts"] for m in page["messages"]] for page in (first, second, third)] == [
        stamps[4:2:-1],
        stamps[2:0:-1],
        stamps[0:1],
    ]
    assert [page["has_more"] for page in (first, second, third)] == [True, True, False]
    # Shaped like Slack's own history cursors: base64 of next_ts:<ts>.
    assert base64.b64decode(first["response_metadata"]["next_cursor"]).decode() == f"next_ts:{stamps[2]}"


async def test_slack_sdk_iterates_history_pages(client: AsyncWebClient) -> None:
    channel, stamps = await channel_with_messages(client, 5)

    seen = [
        m["ts"]
        async for page in await client.conversations_history(channel=channel, limit=2)
        for m in page["messages"]
    ]

    assert seen == stamps[::-1]


async def test_history_oldest_latest_and_inclusive(client: AsyncWebClient) -> None:
    channel, stamps = await channel_with_messages(client, 5)

    between = await client.conversations_history(channel=channel, oldest=stamps[1], latest=stamps[3])
    inclusive = await client.conversations_history(
        channel=channel, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    since = await client.conversations_history(channel=channel, oldest=stamps[3])
    from_zero = await client.conversations_history(channel=channel, oldest="0")

    assert [m["ts"] for m in between["messages"]] == [stamps[2]]
    assert [m["ts"] for m in inclusive["messages"]] == [stamps[3], stamps[2], stamps[1]]
    assert [m["ts"] for m in since["messages"]] == [stamps[4]]
    assert len(from_zero["messages"]) == 5
    assert between["latest"] == stamps[3]  # Slack echoes `latest` when it was given


async def test_history_leaves_thread_replies_out(client: AsyncWebClient) -> None:
    channel, (parent,) = await channel_with_messages(client, 1)
    await client.chat_postMessage(channel=channel, text="a reply", thread_ts=parent)

    answer = await client.conversations_history(channel=channel)

    assert [m["ts"] for m in answer["messages"]] == [parent]


async def test_history_limit_above_999_is_capped_not_refused(client: AsyncWebClient) -> None:
    channel, stamps = await channel_with_messages(client, 2)

    answer = await client.conversations_history(channel=channel, limit=5000)

    assert [m["ts"] for m in answer["messages"]] == stamps[::-1]


async def test_history_needs_channels_history(clock: FakeClock) -> None:
    async with SlackStandIn(
        responders=(), clock=clock, scopes=DEFAULT_BOT_SCOPES - {"channels:history"}
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        channel, _ = await channel_with_messages(client, 1)

        body = await refused(client.conversations_history(channel=channel))

    assert (body["error"], body["needed"]) == ("missing_scope", "channels:history")


async def test_private_history_needs_groups_history(clock: FakeClock) -> None:
    scopes = (DEFAULT_BOT_SCOPES | {"groups:write"}) - {"groups:history"}
    async with SlackStandIn(responders=(), clock=clock, scopes=scopes) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        created = await client.conversations_create(name="inc-secret", is_private=True)

        body = await refused(client.conversations_history(channel=created["channel"]["id"]))

    assert (body["error"], body["needed"]) == ("missing_scope", "groups:history")


async def test_a_bot_reads_no_public_channel_it_is_not_in(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    # chat:write.public lets it post there, but reading needs membership.
    await client.chat_postMessage(channel="C0MANAGERS", text="SEV1 declared")

    body = await refused(client.conversations_history(channel="C0MANAGERS"))

    assert body["error"] == "not_in_channel"


async def test_a_private_channel_the_bot_is_not_in_does_not_exist_for_it(clock: FakeClock) -> None:
    channels = [*DEFAULT_CHANNELS, SeedChannel(id="G0LEGAL", name="legal", is_private=True)]
    async with SlackStandIn(
        responders=(), clock=clock, channels=channels, scopes=DEFAULT_BOT_SCOPES | {"groups:history"}
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.conversations_history(channel="G0LEGAL"))

    assert body["error"] == "channel_not_found"


async def test_history_takes_channel_ids_only(client: AsyncWebClient) -> None:
    await channel_with_messages(client, 1, name="inc-by-name")

    body = await refused(client.conversations_history(channel="inc-by-name"))

    assert body["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"cursor": "bm9wZQ=="}, "invalid_cursor"),  # base64 of "nope"
        ({"cursor": "%%%"}, "invalid_cursor"),
        ({"oldest": "yesterday"}, "invalid_ts_oldest"),
        ({"latest": "-1"}, "invalid_ts_latest"),
        ({"limit": "many"}, "invalid_limit"),
    ],
)
async def test_history_refuses_bad_arguments(
    client: AsyncWebClient, options: dict[str, str], error: str
) -> None:
    channel, _ = await channel_with_messages(client, 1)

    body = await refused(client.conversations_history(channel=channel, **options))

    assert body["error"] == error


# -- conversations.list ----------------------------------------------------------------------


async def test_list_shows_public_channels_with_membership_and_creator(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    created = await client.conversations_create(name="inc-7")

    answer = await client.conversations_list()

    by_name = {c["name"]: c for c in answer["channels"]}
    assert list(by_name) == ["general", "incident-managers", "inc-7"]
    mine = by_name["inc-7"]
    assert (mine["id"], mine["creator"], mine["is_member"]) == (
        created["channel"]["id"],
        slack.bot.user_id,
        True,
    )
    assert (mine["is_private"], mine["is_archived"], mine["created"]) == (False, False, 1_700_000_000)
    assert by_name["general"]["is_member"] is False
    assert by_name["general"]["creator"] == "U0ALICE"  # seeded channels: the first human
    assert answer["response_metadata"] == {"next_cursor": ""}


async def test_list_pages_follow_next_cursor(client: AsyncWebClient) -> None:
    for n in range(3):
        await client.conversations_create(name=f"inc-{n}")

    names: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await client.conversations_list(limit=2, cursor=cursor)
        names += [c["name"] for c in page["channels"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break

    assert names == ["general", "incident-managers", "inc-0", "inc-1", "inc-2"]
    assert pages == 3


async def test_slack_sdk_iterates_list_pages(client: AsyncWebClient) -> None:
    for n in range(3):
        await client.conversations_create(name=f"inc-{n}")

    # slack_sdk reuses one response object for every page: read each page as it comes.
    sizes = [len(page["channels"]) async for page in await client.conversations_list(limit=2)]

    assert sizes == [2, 2, 1]


async def test_list_private_channels_needs_groups_read_and_membership(clock: FakeClock) -> None:
    channels = [*DEFAULT_CHANNELS, SeedChannel(id="G0LEGAL", name="legal", is_private=True)]
    scopes = (DEFAULT_BOT_SCOPES | {"groups:write"}) - {"groups:read"}
    async with SlackStandIn(responders=(), clock=clock, channels=channels, scopes=scopes) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)
        await client.conversations_create(name="inc-secret", is_private=True)

        without = await refused(client.conversations_list(types="public_channel,private_channel"))
        slack.scopes = slack.scopes | {"groups:read"}
        private = await client.conversations_list(types="private_channel")
        both = await client.conversations_list(types="public_channel,private_channel")

    assert (without["error"], without["needed"]) == ("missing_scope", "groups:read")
    assert [c["name"] for c in private["channels"]] == ["inc-secret"]  # not #legal: not a member
    assert private["channels"][0]["is_private"] is True
    assert [c["name"] for c in both["channels"]] == ["general", "incident-managers", "inc-secret"]


async def test_list_serves_a_page_for_a_limit_above_the_maximum(client: AsyncWebClient) -> None:
    answer = await client.conversations_list(limit=1000, exclude_archived=True)

    assert [c["name"] for c in answer["channels"]] == ["general", "incident-managers"]


async def test_list_needs_channels_read(clock: FakeClock) -> None:
    async with SlackStandIn(
        responders=(), clock=clock, scopes=DEFAULT_BOT_SCOPES - {"channels:read"}
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.conversations_list())

    assert (body["error"], body["needed"]) == ("missing_scope", "channels:read")


async def test_list_exclude_archived(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.conversations_create(name="inc-old")
    old = slack.channel_by_name("inc-old")
    assert old is not None
    old.is_archived = True

    everything = await client.conversations_list()
    current = await client.conversations_list(exclude_archived=True)

    assert [c["is_archived"] for c in everything["channels"] if c["name"] == "inc-old"] == [True]
    assert "inc-old" not in [c["name"] for c in current["channels"]]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"types": "public_channel,shared_channel"}, "invalid_types"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "lots"}, "invalid_limit"),
        ({"cursor": "bmV4dF90czox"}, "invalid_cursor"),  # a history cursor (next_ts:1)
    ],
)
async def test_list_refuses_bad_arguments(
    client: AsyncWebClient, options: dict[str, str], error: str
) -> None:
    body = await refused(client.conversations_list(**options))

    assert body["error"] == error


# -- conversations.members -------------------------------------------------------------------


async def test_members_of_a_public_channel_the_bot_is_not_in(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    answer = await client.conversations_members(channel="C0GENERAL")

    assert answer["members"] == ["U0ALICE", "U0BOB", "U0CAROL"]
    assert answer["response_metadata"] == {"next_cursor": ""}
    assert slack.members("C0GENERAL") == ["U0ALICE", "U0BOB", "U0CAROL"]


async def test_members_follow_invites_joins_and_the_test_helpers(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel = (await client.conversations_create(name="inc-3"))["channel"]["id"]
    await client.conversations_invite(channel=channel, users="U0ALICE")
    await client.conversations_join(channel="C0MANAGERS")
    slack.add_to_channel(channel, "U0BOB", "U0CAROL")
    slack.remove_from_channel(channel, "U0ALICE")

    in_incident = await client.conversations_members(channel=channel)
    in_managers = await client.conversations_members(channel="C0MANAGERS")

    assert in_incident["members"] == ["U0BOB", "U0BOT", "U0CAROL"]
    assert "U0BOT" in in_managers["members"]
    with pytest.raises(LookupError, match="no users"):
        slack.add_to_channel(channel, "U0NOBODY")
    with pytest.raises(LookupError, match="no channel"):
        slack.remove_from_channel("C0NOWHERE", "U0BOB")


async def test_members_pages_follow_next_cursor(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.add_to_channel("C0GENERAL", slack.bot.user_id)

    first = await client.conversations_members(channel="C0GENERAL", limit=2)
    second = await client.conversations_members(
        channel="C0GENERAL", limit=2, cursor=first["response_metadata"]["next_cursor"]
    )

    assert first["members"] == ["U0ALICE", "U0BOB"]
    assert second["members"] == ["U0BOT", "U0CAROL"]
    assert second["response_metadata"]["next_cursor"] == ""
    # Shaped like Slack's own member cursors: base64 of user:<id>.
    assert base64.b64decode(first["response_metadata"]["next_cursor"]).decode() == "user:U0BOT"


async def test_slack_sdk_iterates_member_pages(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.add_to_channel("C0GENERAL", slack.bot.user_id)

    pages = [
        list(page["members"])
        async for page in await client.conversations_members(channel="C0GENERAL", limit=3)
    ]

    assert pages == [["U0ALICE", "U0BOB", "U0BOT"], ["U0CAROL"]]


async def test_a_member_cursor_survives_its_user_leaving(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.add_to_channel("C0GENERAL", slack.bot.user_id)
    first = await client.conversations_members(channel="C0GENERAL", limit=2)
    slack.remove_from_channel("C0GENERAL", slack.bot.user_id)

    rest = await client.conversations_members(
        channel="C0GENERAL", cursor=first["response_metadata"]["next_cursor"]
    )

    assert rest["members"] == ["U0CAROL"]


async def test_private_members_need_membership_and_groups_read(clock: FakeClock) -> None:
    channels = [
        *DEFAULT_CHANNELS,
        SeedChannel(id="G0LEGAL", name="legal", is_private=True),
        SeedChannel(id="G0WAR", name="war-room", is_private=True, members=frozenset({"U0BOT", "U0BOB"})),
    ]
    scopes = DEFAULT_BOT_SCOPES - {"groups:read"}
    async with SlackStandIn(responders=(), clock=clock, channels=channels, scopes=scopes) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        without_scope = await refused(client.conversations_members(channel="G0WAR"))
        slack.scopes = slack.scopes | {"groups:read"}
        not_in = await refused(client.conversations_members(channel="G0LEGAL"))
        war_room = await client.conversations_members(channel="G0WAR")

    assert (without_scope["error"], without_scope["needed"]) == ("missing_scope", "groups:read")
    assert not_in["error"] == "channel_not_found"
    assert war_room["members"] == ["U0BOB", "U0BOT"]


async def test_members_need_channels_read(clock: FakeClock) -> None:
    async with SlackStandIn(
        responders=(), clock=clock, scopes=DEFAULT_BOT_SCOPES - {"channels:read"}
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.conversations_members(channel="C0GENERAL"))

    assert (body["error"], body["needed"]) == ("missing_scope", "channels:read")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"channel": "C0NOWHERE"}, "channel_not_found"),
        ({"channel": "general"}, "channel_not_found"),  # ids only
        ({"channel": "C0GENERAL", "cursor": "dGVhbTpDMEdFTkVSQUw="}, "invalid_cursor"),  # team:C0GENERAL
        ({"channel": "C0GENERAL", "limit": "0"}, "invalid_limit"),
    ],
)
async def test_members_refuses_bad_arguments(
    client: AsyncWebClient, options: dict[str, str], error: str
) -> None:
    body = await refused(client.conversations_members(**options))

    assert body["error"] == error
