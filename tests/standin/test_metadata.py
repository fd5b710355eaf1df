"""Message metadata: accepted, refused and dropped like Slack does, and read back from history."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.standin import SlackStandIn

from .builders import refused

DECLARED = {"event_type": "incident_declared", "event_payload": {"incident_id": "INC-42", "severity": 2}}


async def history(client: AsyncWebClient, channel: str, **options: Any) -> list[dict[str, Any]]:
    answer = await client.conversations_history(channel=channel, **options)
    messages: list[dict[str, Any]] = answer["messages"]
    return messages


async def incident_channel(client: AsyncWebClient) -> str:
    """A channel the bot created, so it is a member and may read its history."""
    created = await client.conversations_create(name="inc-42")
    channel_id: str = created["channel"]["id"]
    return channel_id


async def test_metadata_in_a_json_post_is_stored_and_read_back_from_history(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    channel = await incident_channel(client)

    posted = await client.chat_postMessage(channel=channel, text="SEV2 declared", metadata=DECLARED)

    assert slack.message(channel, posted["ts"]).metadata == DECLARED
    # The answer to the post does not carry it (see chat_post_message).
    assert "metadata" not in posted["message"]
    (with_all,) = await history(client, channel, include_all_metadata=True)
    (without,) = await history(client, channel)
    assert with_all["metadata"] == DECLARED
    assert with_all["ts"] == posted["ts"]
    assert "metadata" not in without


async def test_metadata_in_a_form_post_is_a_json_string(client: AsyncWebClient) -> None:
    channel = await incident_channel(client)

    await client.api_call(
        "chat.postMessage",
        data={"channel": channel, "text": "declared", "metadata": json.dumps(DECLARED)},
    )

    (message,) = await history(client, channel, include_all_metadata="true")
    assert message["metadata"] == DECLARED


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("{not json", "invalid_metadata_format"),
        (json.dumps(["incident_declared"]), "invalid_metadata_format"),
        (json.dumps("incident_declared"), "invalid_metadata_format"),
        (json.dumps({}), "invalid_metadata_schema"),
        (json.dumps({"event_type": "incident_declared"}), "invalid_metadata_schema"),
        (json.dumps({"event_payload": {"id": 1}}), "invalid_metadata_schema"),
        (json.dumps({"event_type": "", "event_payload": {}}), "invalid_metadata_schema"),
        (json.dumps({"event_type": 7, "event_payload": {}}), "invalid_metadata_schema"),
        (
            json.dumps({"event_type": "incident_declared", "event_payload": "INC-42"}),
            "invalid_metadata_schema",
        ),
        (json.dumps({"event_type": "incident_declared", "event_payload": [1]}), "invalid_metadata_schema"),
    ],
)
async def test_malformed_metadata_refuses_the_whole_post(
    slack: SlackStandIn, client: AsyncWebClient, metadata: str, error: str
) -> None:
    body = await refused(
        client.api_call("chat.postMessage", data={"channel": "C0MANAGERS", "text": "x", "metadata": metadata})
    )

    assert body == {"ok": False, "error": error}
    assert slack.messages("C0MANAGERS") == []
    (call,) = slack.rejected_calls()
    assert call.reasons


async def test_metadata_as_a_json_object_that_is_not_an_object(client: AsyncWebClient) -> None:
    body = await refused(client.chat_postMessage(channel="C0MANAGERS", text="x", metadata=["no"]))  # type: ignore[arg-type]

    assert body["error"] == "invalid_metadata_format"


async def test_an_event_type_slack_does_not_keep_is_dropped_silently(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel="C0MANAGERS",
        text="declared",
        metadata={"event_type": "incident.declared", "event_payload": {"incident_id": "INC-42"}},
    )

    assert posted["ok"] is True
    assert slack.message("C0MANAGERS", posted["ts"]).metadata is None
    (call,) = slack.calls("chat.postMessage")
    assert "metadata dropped: event_type 'incident.declared'" in call.reasons[0]


async def test_hyphens_and_underscores_are_kept(slack: SlackStandIn, client: AsyncWebClient) -> None:
    metadata = {"event_type": "incident-declared_v2", "event_payload": {}}

    posted = await client.chat_postMessage(channel="C0MANAGERS", text="declared", metadata=metadata)

    assert slack.message("C0MANAGERS", posted["ts"]).metadata == metadata


async def test_chat_update_keeps_replaces_or_removes_metadata(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0MANAGERS", text="v1", metadata=DECLARED)
    ts = posted["ts"]
    resolved = {"event_type": "incident_resolved", "event_payload": {"incident_id": "INC-42"}}

    await client.chat_update(channel="C0MANAGERS", ts=ts, text="v2")
    kept = slack.message("C0MANAGERS", ts).metadata
    await client.chat_update(channel="C0MANAGERS", ts=ts, text="v3", metadata=resolved)
    replaced = slack.message("C0MANAGERS", ts).metadata
    await client.chat_update(channel="C0MANAGERS", ts=ts, text="v4", metadata={})
    removed = slack.message("C0MANAGERS", ts).metadata
    bad = await refused(
        client.chat_update(channel="C0MANAGERS", ts=ts, text="v5", metadata={"event_type": "x"})
    )

    assert (kept, replaced, removed) == (DECLARED, resolved, None)
    assert bad["error"] == "invalid_metadata_schema"
    assert slack.message("C0MANAGERS", ts).text == "v4"


async def test_interaction_payloads_show_the_message_with_its_metadata(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C0MANAGERS", text="declared", metadata=DECLARED)

    # What block_actions payloads carry as `message` (slackapi/bolt-python#863 reads it there).
    assert slack.message("C0MANAGERS", posted["ts"]).to_slack()["metadata"] == DECLARED
