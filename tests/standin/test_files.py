"""Uploading a file the external way, as slack_sdk's files_upload_v2 does it, against the stand-in.

The flow: files.getUploadURLExternal (a file id and an upload URL), a POST of the bytes to that
URL (served by the stand-in on loopback), files.completeUploadExternal (title, share, message).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import DEFAULT_BOT_SCOPES, SeedChannel, SlackStandIn, render_channel
from bot.demo.standin.workspace import DEFAULT_CHANNELS

from .builders import FakeClock, refused

POSTMORTEM = "# INC-1 postmortem\n\n## Timeline\n- 10:02 declared ✅\n"


async def incident_channel(client: AsyncWebClient, name: str = "inc-1") -> str:
    created = await client.conversations_create(name=name)
    return str(created["channel"]["id"])


async def start_upload(client: AsyncWebClient, filename: str, length: int) -> tuple[str, str]:
    """Step 1 alone: returns (file id, upload URL)."""
    answer = await client.files_getUploadURLExternal(filename=filename, length=length)
    return str(answer["file_id"]), str(answer["upload_url"])


async def post_bytes(url: str, data: bytes | aiohttp.FormData) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as response:
        return response.status, await response.text()


# -- the whole flow through slack_sdk ------------------------------------------------------------


async def test_files_upload_v2_shares_the_file_and_its_exact_content(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel = await incident_channel(client)

    answer = await client.files_upload_v2(
        channel=channel,
        content=POSTMORTEM,
        filename="INC-1-postmortem.md",
        title="INC-1 postmortem draft",
        initial_comment="The postmortem draft, to fill in together.",
    )

    (uploaded,) = slack.files(channel)
    assert uploaded.content == POSTMORTEM.encode()
    assert uploaded.text == POSTMORTEM
    assert (uploaded.name, uploaded.title) == ("INC-1-postmortem.md", "INC-1 postmortem draft")
    assert (uploaded.user, uploaded.channels, uploaded.completed) == (slack.bot.user_id, [channel], True)
    assert answer["file"]["id"] == uploaded.id
    assert answer["file"]["size"] == len(POSTMORTEM.encode())
    (message,) = slack.messages(channel)
    assert message.text == "The postmortem draft, to fill in together."
    assert [f["id"] for f in message.files] == [uploaded.id]
    assert message.user == slack.bot.user_id
    assert [c.method for c in slack.calls()][-2:] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert slack.rejected_calls() == []


async def test_the_upload_url_is_the_stand_ins_own_on_loopback(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    file_id, url = await start_upload(client, "INC-1-postmortem.md", 3)

    status, text = await post_bytes(url, b"# x")

    assert url.startswith(f"{slack.base_url}upload/")
    assert url.startswith("http://127.0.0.1:")
    assert (status, text) == (200, "OK - 3")
    assert slack.file(file_id).content == b"# x"
    assert not slack.file(file_id).completed


async def test_a_multipart_upload_keeps_the_file_part(slack: SlackStandIn, client: AsyncWebClient) -> None:
    channel = await incident_channel(client)
    file_id, url = await start_upload(client, "notes.txt", 5)
    form = aiohttp.FormData()
    form.add_field("filename", b"hello", filename="notes.txt", content_type="text/plain")

    status, _ = await post_bytes(url, form)
    await client.files_completeUploadExternal(files=[{"id": file_id}], channel_id=channel)

    assert status == 200
    (uploaded,) = slack.files(channel)
    assert (uploaded.content, uploaded.title) == (b"hello", "notes.txt")  # the title defaults to the name


async def test_history_shows_the_file_share(client: AsyncWebClient) -> None:
    channel = await incident_channel(client)
    await client.files_upload_v2(
        channel=channel, content="# x", filename="INC-1-postmortem.md", title="Draft"
    )

    (shown,) = (await client.conversations_history(channel=channel))["messages"]

    assert shown["upload"] is True
    assert [(f["name"], f["title"]) for f in shown["files"]] == [("INC-1-postmortem.md", "Draft")]


async def test_a_file_shared_in_a_thread_is_a_reply(slack: SlackStandIn, client: AsyncWebClient) -> None:
    channel = await incident_channel(client)
    parent = await client.chat_postMessage(channel=channel, text="INC-1 resolved")

    await client.files_upload_v2(
        channel=channel, content="# x", filename="INC-1-postmortem.md", thread_ts=parent["ts"]
    )

    reply = slack.messages(channel)[-1]
    assert reply.thread_ts == parent["ts"]
    assert reply.files[0]["name"] == "INC-1-postmortem.md"


async def test_a_file_completed_without_a_channel_stays_private(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    await client.files_upload_v2(content="# x", filename="INC-1-postmortem.md")

    (uploaded,) = slack.files()
    assert (uploaded.completed, uploaded.channels) == (True, [])
    assert all(slack.messages(c.id) == [] for c in slack.channels())


async def test_the_transcript_shows_the_shared_file(slack: SlackStandIn, client: AsyncWebClient) -> None:
    channel = await incident_channel(client)

    await client.files_upload_v2(
        channel=channel, content="# x", filename="INC-1-postmortem.md", title="INC-1 postmortem draft"
    )

    assert render_channel(slack, channel) == "incident-bot:\n    [file: INC-1 postmortem draft]"


# -- refusals ----------------------------------------------------------------------------------


async def test_uploading_needs_files_write(clock: FakeClock) -> None:
    async with SlackStandIn(responders=(), clock=clock, scopes=DEFAULT_BOT_SCOPES - {"files:write"}) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        body = await refused(client.files_upload_v2(channel="C0GENERAL", content="# x", filename="a.md"))
        completing = await refused(client.files_completeUploadExternal(files=[{"id": "F0001"}]))

    assert (body["error"], body["needed"]) == ("missing_scope", "files:write")
    assert (completing["error"], completing["needed"]) == ("missing_scope", "files:write")
    assert slack.files() == []


async def test_completing_a_file_never_uploaded_is_file_not_found(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel = await incident_channel(client)
    file_id, _ = await start_upload(client, "INC-1-postmortem.md", 3)  # the bytes never come

    unknown = await refused(
        client.files_completeUploadExternal(files=[{"id": "F9999", "title": "x"}], channel_id=channel)
    )
    no_bytes = await refused(client.files_completeUploadExternal(files=[{"id": file_id}], channel_id=channel))

    assert unknown["error"] == no_bytes["error"] == "file_not_found"
    assert slack.messages(channel) == []
    assert slack.files(channel) == []


async def test_bytes_of_another_size_than_length_are_refused(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel = await incident_channel(client)
    file_id, url = await start_upload(client, "INC-1-postmortem.md", 10)
    await post_bytes(url, b"# x")

    body = await refused(client.files_completeUploadExternal(files=[{"id": file_id}], channel_id=channel))

    assert body["error"] == "file_not_found"
    assert "got 3 bytes; length said 10" in slack.rejected_calls()[-1].reasons[0]
    assert slack.messages(channel) == []
    assert not slack.file(file_id).completed


async def test_a_file_completes_once(slack: SlackStandIn, client: AsyncWebClient) -> None:
    channel = await incident_channel(client)
    answer = await client.files_upload_v2(channel=channel, content="# x", filename="INC-1-postmortem.md")

    again = await refused(
        client.files_completeUploadExternal(files=[{"id": answer["file"]["id"]}], channel_id=channel)
    )

    assert again["error"] == "file_not_found"
    assert len(slack.messages(channel)) == 1


async def test_sharing_needs_a_channel_the_bot_is_in(clock: FakeClock) -> None:
    channels = [*DEFAULT_CHANNELS, SeedChannel(id="G0LEGAL", name="legal", is_private=True)]
    async with SlackStandIn(responders=(), clock=clock, channels=channels) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.url)

        async def share_into(channel: str) -> dict[str, Any]:
            return await refused(client.files_upload_v2(channel=channel, content="# x", filename="a.md"))

        unknown = await share_into("C0NOWHERE")
        # chat:write.public lets the bot post in #general, but sharing a file needs membership.
        public = await share_into("C0GENERAL")
        private = await share_into("G0LEGAL")

        assert (unknown["error"], public["error"], private["error"]) == (
            "channel_not_found",
            "not_in_channel",
            "not_in_channel",
        )
        assert [f.completed for f in slack.files()] == [False, False, False]
        assert all(slack.messages(c.id) == [] for c in slack.channels())
        # A refused share changes nothing: once invited, the same file goes through.
        slack.add_to_channel("G0LEGAL", slack.bot.user_id)
        first = slack.files()[0].id
        await client.files_completeUploadExternal(files=[{"id": first}], channel_id="G0LEGAL")
        assert [f.id for f in slack.files("G0LEGAL")] == [first]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"filename": "a.md", "length": 0}, "missing_argument"),
        ({"filename": "a.md"}, "missing_argument"),
        ({"filename": "a.md", "length": "three"}, "invalid_arguments"),
        ({"length": 3}, "invalid_arguments"),
        ({"filename": "a.png", "length": 3, "alt_txt": "a" * 1001}, "alt_txt_too_large"),
    ],
)
async def test_get_upload_url_refuses_bad_arguments(
    client: AsyncWebClient, params: dict[str, Any], error: str
) -> None:
    body = await refused(client.api_call("files.getUploadURLExternal", params=params))

    assert body["error"] == error


@pytest.mark.parametrize(
    "files",
    ["[]", "not json", '[{"title": "no id"}]', '{"id": "F0001"}'],
)
async def test_complete_refuses_a_malformed_files_list(client: AsyncWebClient, files: str) -> None:
    body = await refused(client.api_call("files.completeUploadExternal", params={"files": files}))

    assert body["error"] == "invalid_arguments"


async def test_an_upload_to_a_url_never_issued_is_a_404_and_a_rejected_call(slack: SlackStandIn) -> None:
    status, _ = await post_bytes(f"{slack.base_url}upload/v1/1-forged", b"# x")

    assert status == 404
    (rejected,) = slack.rejected_calls()
    assert (rejected.kind, rejected.method, rejected.http_status) == ("upload", "upload_url", 404)
    assert slack.calls() == []  # an upload is not a Web API call
