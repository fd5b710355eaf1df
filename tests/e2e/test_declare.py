"""Declaring incidents end to end: signed HTTP into the running bot, Slack stand-in, real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.demo.harness import Running, eventually, running_bot
from bot.demo.standin import SlackStandIn
from bot.models import Severity
from tests.e2e.conftest import connect_like

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL = "C0GENERAL"


def blocks_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks)


def checkbox_elements(blocks: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "checkboxes"]


async def declare(running: Running, text: str, channel: str = GENERAL, user: str = ALICE) -> str:
    reply = await running.user.slash_command(user, channel, text)
    assert reply.status == 200, reply
    await running.settle()
    return str(reply.body)


@pytest.mark.parametrize(
    ("severity", "items", "description"),
    [
        ("sev1", 18, "Complete outage, all users affected"),
        ("SEV2", 18, "Major feature broken, many users"),
        ("Sev3", 8, "Partial impact, workaround exists"),
        ("sev4", 4, "Minor issue, few users affected"),
    ],
)
async def test_declaring_each_severity_opens_a_channel_with_its_checklists(
    running: Running, severity: str, items: int, description: str
) -> None:
    ack = await declare(running, f"{severity} Checkout requests failing")
    assert "INC-1" in ack
    channel = running.slack.channel_by_name("inc-1-checkout-requests-failing")
    assert channel is not None and ALICE in channel.members
    messages = running.slack.messages(channel.id)
    header = blocks_text(messages[0].blocks)
    assert description in header and "Checkout requests failing" in header
    assert "Investigating" in header and f"<@{ALICE}>" in header
    elements = [e for m in messages[1:] for e in checkbox_elements(m.blocks)]
    assert len(elements) == items
    assert all(len(e["options"]) == 1 for e in elements)
    assert all(len(m.blocks) <= 50 for m in messages)
    # Announced where it was declared and to the stakeholders, with a link to the channel.
    assert any(f"<#{channel.id}>" in m.text for m in running.slack.messages(GENERAL))
    assert any("INC-1" in m.text for m in running.slack.messages("C0MANAGERS"))
    assert running.slack.rejected_calls() == []
    incident = await running.bot.service.store.incident_for_channel(channel.id)
    assert incident is not None and incident.severity.value == severity.lower()
    timeline = await running.bot.service.store.timeline("INC-1")
    assert timeline[0].kind == "declared"


async def test_sev1_checklists_follow_the_playbook_headings(running: Running) -> None:
    await declare(running, "sev1 Everything is down")
    channel = running.slack.channel_by_name("inc-1-everything-is-down")
    assert channel is not None
    body = "".join(blocks_text(m.blocks) for m in running.slack.messages(channel.id))
    for heading in ("Impact Assessment", "Traffic Management", "Rollback", "Circuit Breaking", "Scaling"):
        assert f"*{heading}*" in body
    for item in ("How many users are affected?", "Failover to backup system", "Clear caches"):
        assert item in body


@pytest.mark.parametrize("text", ["", "help", "sev9 broken", "sevx", "declare sev2 x", "SEV0"])
async def test_bad_input_gets_usage_and_creates_nothing(running: Running, text: str) -> None:
    reply = await running.user.slash_command(ALICE, GENERAL, text)
    assert reply.status == 200
    body = reply.json_body()
    assert "/incident sev1|sev2|sev3|sev4 [title]" in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    await running.settle()
    assert running.slack.calls("conversations.create") == []
    assert await running.bot.store.open_incident_ids() == []


@pytest.mark.parametrize("sub", ["update", "status", "resolve"])
async def test_incident_subcommands_outside_an_incident_channel_change_nothing(
    running: Running, sub: str
) -> None:
    reply = await running.user.slash_command(ALICE, GENERAL, sub)
    assert "no incident in this channel" in reply.json_body()["text"]
    await running.settle()
    assert running.slack.calls("views.open") == []
    assert running.slack.calls("chat.postMessage") == []


async def test_a_user_title_pings_nobody(running: Running) -> None:
    await declare(running, "sev2 <!channel> ask <@U0BOB> & <!here>")
    for call in running.slack.calls("chat.postMessage"):
        sent = json.dumps(call.params)
        for raw in ("<!channel>", "<@U0BOB>", "<!here>"):
            assert raw not in sent
        assert call.params.get("link_names") in (None, False, "0", "false")
        assert call.params.get("parse") != "full"
    header = running.slack.calls("chat.postMessage")[0]
    assert "&lt;!channel&gt;" in json.dumps(header.params)


async def test_name_taken_picks_another_name() -> None:
    async with SlackStandIn() as slack:
        await slack_create(slack, "inc-1-db-down")
        async with running_bot(slack=slack) as running:
            await declare(running, "sev3 DB down")
            assert running.slack.channel_by_name("inc-1-db-down-2") is not None


async def slack_create(slack: SlackStandIn, name: str) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    await AsyncWebClient(token=slack.bot_token, base_url=slack.url).conversations_create(name=name)


async def test_with_channel_creation_switched_off_the_incident_runs_where_declared() -> None:
    async with running_bot(create_channels=False) as running:
        await declare(running, "sev2 Payments slow")
        assert running.slack.calls("conversations.create") == []
        general = running.slack.messages(GENERAL)
        assert any("INC-1" in m.text for m in general)
        assert "channel creation is switched off" in json.dumps([m.blocks for m in general])
        assert len(checkbox_elements([b for m in general for b in m.blocks])) == 18
        assert await running.bot.service.store.incident_for_channel(GENERAL) is not None


async def test_slack_refusing_to_create_a_channel_falls_back_and_says_why() -> None:
    async with SlackStandIn(allow_channel_creation=False) as slack, running_bot(slack=slack) as running:
        await declare(running, "sev2 Payments slow")
        text = json.dumps([m.blocks for m in running.slack.messages(GENERAL)])
        assert "restricts who can create channels" in text
        assert await running.bot.service.store.incident_for_channel(GENERAL) is not None


async def test_forged_and_stale_requests_get_401_and_change_nothing(running: Running) -> None:
    body = urlencode(
        {
            "command": "/incident",
            "text": "sev1 forged",
            "user_id": ALICE,
            "channel_id": GENERAL,
            "team_id": "T0001",
        }
    ).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = await running.user.post_raw(body, form)
    forged = await running.user.post_raw(
        body,
        {**form, "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
    )
    stale = await running.user.post_raw(body, {**form, **running.user.sign(body, int(time.time()) - 301)})
    assert [unsigned.status, forged.status, stale.status] == [401, 401, 401]
    await running.settle()
    assert running.slack.calls() == []
    assert await running.bot.store.open_incident_ids() == []


async def test_healthz(running: Running) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(running.url.replace("/slack/events", "/healthz")) as r,
    ):
        assert r.status == 200
        assert await r.json() == {"ok": True, "redis": "up"}


async def test_keys_of_an_incident_share_one_cluster_slot(
    running: Running, real_redis: aioredis.Redis
) -> None:
    await declare(running, "sev2 Checkout requests failing")
    found = [k async for k in real_redis.scan_iter("incident:*")]
    assert found and all("{INC-1}" in k for k in found)
    assert keys.incident("INC-1") in found


async def test_a_declaration_interrupted_before_its_channel_opened_is_finished(
    real_redis: aioredis.Redis,
) -> None:
    """The process that acked died before opening the channel: another one finishes the job."""
    async with running_bot(redis=connect_like(real_redis)) as running:
        # Stored exactly as the slash command stores it, but no process was told to deliver it.
        incident = await running.bot.service.declare_incident(
            Severity.SEV2, "Checkout requests failing", ALICE, GENERAL, request_id="cmd:t1"
        )
        await eventually(lambda: running.slack.channel_by_name("inc-1-checkout-requests-failing") is not None)
        await eventually(lambda: any("INC-1" in m.text for m in running.slack.messages("C0MANAGERS")))
        channel = running.slack.channel_by_name("inc-1-checkout-requests-failing")
        assert channel is not None and ALICE in channel.members
        assert len(running.slack.messages(channel.id)) == 3  # header and two checklists, once
        assert any(f"<#{channel.id}>" in m.text for m in running.slack.messages(GENERAL))
        await asyncio.sleep(1.2)  # past several polls: nothing is posted again
        assert len(running.slack.messages(channel.id)) == 3
        assert len(running.slack.calls("conversations.create")) == 1
        assert (await running.bot.service.get_incident(incident.id)).header_ts is not None


async def test_a_title_that_says_payload_is_declared(running: Running) -> None:
    """Bolt takes any form body containing the text "payload" for an interaction; a slash
    command whose title says it must still reach the command listener."""
    reply = await running.user.slash_command(ALICE, GENERAL, "sev2 Payload service returns 500s")
    assert reply.status == 200 and "INC-1" in reply.json_body()["text"]
    await running.settle()
    assert running.slack.channel_by_name("inc-1-payload-service-returns-500s") is not None
