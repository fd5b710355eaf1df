"""Status updates, reminders, escalation, the digest, resolution and severity changes, end to end."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from bot.demo.harness import (
    SIGNING_SECRET,
    RedisServer,
    Running,
    eventually,
    free_port,
    http_healthy,
    running_bot,
    start_bot_process,
    update_modal_values,
)
from bot.demo.standin import SlackStandIn, SlackUser
from bot.ids import ActionId
from bot.store import connect

ALICE, BOB = "U0ALICE", "U0BOB"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"


def texts(running: Running, channel: str) -> list[str]:
    return [m.text + json.dumps(m.blocks) for m in running.slack.messages(channel)]


async def declare(running: Running, text: str = "sev2 Checkout requests failing") -> str:
    await running.user.slash_command(ALICE, GENERAL, text)
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    return incident.channel_id


async def open_modal(running: Running, channel: str) -> str:
    before = {v.id for v in running.slack.views()}
    reply = await running.user.slash_command(BOB, channel, "update")
    assert reply.status == 200
    await running.settle()
    [view] = [v for v in running.slack.views() if v.id not in before]
    return view.id


async def submit(running: Running, channel: str, *values: str) -> dict:  # type: ignore[type-arg]
    view_id = await open_modal(running, channel)
    reply = await running.user.submit_view(BOB, view_id, update_modal_values(*values))
    await running.settle()
    return reply.body if isinstance(reply.body, dict) else {}


@pytest.fixture
def fast_playbook(tmp_path: Path) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text("digest_every: null\nseverities:\n  sev2: {update_every: 4s}\n")
    return path


async def test_the_update_modal_defaults_to_the_severity_cadence(fast_playbook: Path) -> None:
    async with running_bot(playbook_path=fast_playbook) as running:
        channel = await declare(running)
        view = running.slack.view(await open_modal(running, channel)).view
        by_id = {b.get("block_id"): b for b in view["blocks"]}
        assert by_id["next_update"]["element"]["initial_option"]["value"] == "4s"
        assert by_id["status"]["element"]["initial_option"]["value"] == "Investigating"


async def test_an_update_is_posted_in_the_template_everywhere(running: Running) -> None:
    channel = await declare(running)
    body = await submit(
        running,
        channel,
        "Identified",
        "~5% of checkout requests failing",
        "Identified database connection issue, deploying fix",
        "15m",
    )
    assert body == {}
    update = next(t for t in texts(running, channel) if "*Status:* Identified" in t)
    for line in (
        "*Impact:* ~5% of checkout requests failing",
        "*Current state:* Identified database connection issue, deploying fix",
        "*Next update:* 15 minutes (at ",
    ):
        assert line in update
    assert any("*Status:* Identified" in t for t in texts(running, MANAGERS))
    header = running.slack.messages(channel)[0]
    assert "Identified" in json.dumps(header.blocks) and "Next update due" in json.dumps(header.blocks)
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.status.value == "Identified" and incident.last_update is not None
    assert [e.kind for e in await running.bot.service.store.timeline("INC-1")][-1] == "status_update"
    # The next modal is prefilled from this update.
    view = running.slack.view(await open_modal(running, channel)).view
    impact = next(b for b in view["blocks"] if b.get("block_id") == "impact")
    assert impact["element"]["initial_value"] == "~5% of checkout requests failing"


async def test_bad_fields_are_answered_in_the_modal(running: Running) -> None:
    channel = await declare(running)
    body = await submit(running, channel, "Identified", "   ", "x" * 1600, "15m")
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"impact", "current_state"}
    assert not any("*Status:* Identified" in t for t in texts(running, channel))
    assert (await running.bot.service.get_incident("INC-1")).last_update is None


async def test_user_text_in_an_update_pings_nobody(running: Running) -> None:
    channel = await declare(running)
    await submit(running, channel, "Identified", "<!channel> all down", "asking <@U0BOB> & <!here>", "15m")
    sent = json.dumps([c.params for c in running.slack.calls("chat.postMessage")])
    assert "<!channel>" not in sent and "<!here>" not in sent and "asking <@U0BOB>" not in sent
    assert "asking &lt;@U0BOB&gt; &amp; &lt;!here&gt;" in sent
    assert any("&lt;!channel&gt; all down" in t for t in texts(running, MANAGERS))


async def test_status_reports_the_latest_update_and_when_the_next_is_due(running: Running) -> None:
    channel = await declare(running)
    await submit(running, channel, "Identified", "5% failing", "deploying fix", "15m")
    reply = await running.user.slash_command(ALICE, channel, "status")
    text = reply.json_body()["text"]
    assert "*Status:* Identified" in text and "*Commander:* <@U0ALICE>" in text
    assert "Open for*" in text and "Next update due:*" in text and "(in 1" in text


async def test_the_post_update_button_opens_the_modal(running: Running) -> None:
    channel = await declare(running)
    header = running.slack.messages(channel)[0]
    reply = await running.user.click_button(BOB, channel, header.ts, ActionId.OPEN_UPDATE.value)
    assert reply.status == 200
    await running.settle()
    assert [v.callback_id for v in running.slack.views()] == ["status_update"]


async def test_monitoring_posts_the_verification_checklist_and_resolve_lists_open_items(
    running: Running,
) -> None:
    channel = await declare(running)
    await submit(running, channel, "Monitoring", "recovering", "fix deployed", "15m")
    verification = running.slack.messages(channel)[-1]
    body = json.dumps(verification.blocks)
    for item in (
        "Error rate decreased",
        "Latency normalized",
        "User reports stopped",
        "Metrics match baseline",
        "No new issues introduced",
    ):
        assert item in body
    first = next(e for b in verification.blocks if b["type"] == "actions" for e in b["elements"])
    await running.user.click_checkbox(ALICE, channel, verification.ts, first["action_id"], True)
    await running.settle()
    reply = await running.user.slash_command(ALICE, channel, "resolve")
    assert "Resolving" in reply.json_body()["text"]
    await running.settle()
    final = next(t for t in reversed(texts(running, channel)) if "is *resolved*" in t)
    assert "Time to identified: not reached" in final
    assert "Latency normalized" in final and "Error rate decreased" not in final.split("still open")[1]
    assert any("is *resolved*" in t for t in texts(running, MANAGERS))
    assert await running.bot.service.schedule.due_at("INC-1") is None


async def test_reminders_fire_reset_on_update_escalate_and_stop_on_resolve(fast_playbook: Path) -> None:
    async with running_bot(playbook_path=fast_playbook) as running:
        channel = await declare(running)

        def reminders() -> list[str]:
            return [t for t in texts(running, channel) if "next update for" in t]

        def overdue() -> list[str]:
            return [t for t in texts(running, MANAGERS) if "is overdue by" in t]

        await eventually(lambda: len(reminders()) == 1, timeout=6)
        assert "<@U0ALICE>" in reminders()[0] and ActionId.OPEN_UPDATE.value in reminders()[0]
        assert overdue() == []
        await eventually(lambda: len(reminders()) == 2, timeout=6)
        await eventually(lambda: len(overdue()) == 1, timeout=2)
        await submit(running, channel, "Identified", "5% failing", "deploying fix", "4s")
        count = len(reminders())
        await eventually(lambda: len(reminders()) == count + 1, timeout=6)
        await running.user.slash_command(ALICE, channel, "resolve")
        await running.settle()
        count = len(reminders())
        due = await running.bot.service.schedule.due_at("INC-1")
        assert due is None
        await asyncio.sleep(4.5)  # longer than the cadence: a reminder would have come
        assert len(reminders()) == count


async def test_raising_the_severity_posts_the_added_checklists_and_tells_stakeholders(
    running: Running,
) -> None:
    channel = await declare(running, "sev3 Search is slow")
    before = len(running.slack.messages(channel))
    reply = await running.user.slash_command(BOB, channel, "sev1")
    assert reply.status == 200
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.severity.value == "sev1"
    added = running.slack.messages(channel)[before:]
    body = json.dumps([m.blocks for m in added])
    assert "raised" in body and "Failover to backup system" in body and "Clear caches" in body
    # Items SEV3 already had are not posted twice.
    everything = json.dumps([m.blocks for m in running.slack.messages(channel)])
    assert everything.count("Is the problem getting worse?") == 1
    assert any("raised" in t and "SEV1" in t for t in texts(running, MANAGERS))
    assert "SEV1" in json.dumps(running.slack.messages(channel)[0].blocks)
    assert (await running.bot.service.store.timeline("INC-1"))[-1].kind in (
        "severity_changed",
        "checklist_posted",
    )


async def test_the_digest_reaches_managers(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yml"
    path.write_text("digest_every: 2s\n")
    async with running_bot(playbook_path=path) as running:
        await declare(running)
        await eventually(lambda: any("Open incidents" in t for t in texts(running, MANAGERS)), timeout=5)
        digest = next(t for t in texts(running, MANAGERS) if "Open incidents" in t)
        assert "INC-1" in digest and "Investigating" in digest and "next update" in digest


@pytest.fixture
def two_second_playbook(tmp_path: Path) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text("digest_every: null\nseverities:\n  sev2: {update_every: 2s}\n")
    return path


def reminder_numbers(running_slack: SlackStandIn, channel: str) -> list[str]:
    """The "Reminder N since the last update" of every reminder posted, in order."""
    found = []
    for message in running_slack.messages(channel):
        match = re.search(r"Reminder (\d+) since the last update[^\"]*", json.dumps(message.blocks))
        if match:
            found.append(match.group(0))
    return found


async def test_two_bot_processes_post_each_reminder_once(
    two_second_playbook: Path, redis_process: RedisServer
) -> None:
    async with (
        running_bot(redis=connect(redis_process.url), playbook_path=two_second_playbook) as first,
        running_bot(slack=first.slack, redis=connect(redis_process.url), playbook_path=two_second_playbook),
    ):
        channel = await declare(first)
        await eventually(lambda: len(reminder_numbers(first.slack, channel)) >= 3, timeout=8)
        await asyncio.sleep(0.5)  # a duplicate would have landed by now
        numbers = reminder_numbers(first.slack, channel)[:3]
        assert [n.split(" since")[0] for n in numbers] == ["Reminder 1", "Reminder 2", "Reminder 3"]
        assert len(reminder_numbers(first.slack, channel)) in (3, 4)  # the 4th may be due by now
        assert all("late" not in n for n in numbers)


async def _start_bot_process(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    return await start_bot_process(env, http_healthy(port), args=["--host", "127.0.0.1", "--port", str(port)])


async def test_kill_9_and_restart_fires_what_fell_due_once_marked_late(
    two_second_playbook: Path, redis_process: RedisServer
) -> None:
    async with SlackStandIn() as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "REDIS_URL": redis_process.url,
            "INCIDENT_PLAYBOOK": str(two_second_playbook),
            "INCIDENT_STAKEHOLDER_CHANNEL": MANAGERS,
        }
        env.pop("SLACK_APP_TOKEN", None)
        port = free_port()
        proc = await _start_bot_process(env, port)
        user = SlackUser(slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET)
        try:
            await user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
            # Declared and delivered (the stakeholders' announcement comes last), then killed.
            await eventually(lambda: any("INC-1" in m.text for m in slack.messages(MANAGERS)))
            proc.kill()  # SIGKILL: no shutdown hooks run
            await proc.wait()
            channel = slack.channel_by_name("inc-1-checkout-requests-failing")
            assert channel is not None
            await asyncio.sleep(4.5)  # the reminder falls due at 2s, while nothing runs
            assert reminder_numbers(slack, channel.id) == []
            proc = await _start_bot_process(env, port)
            await eventually(lambda: len(reminder_numbers(slack, channel.id)) >= 1, timeout=3)
            first = reminder_numbers(slack, channel.id)[0]
            assert first.startswith("Reminder 1") and " late " in first
            await eventually(lambda: len(reminder_numbers(slack, channel.id)) >= 2, timeout=4)
            later = reminder_numbers(slack, channel.id)
            assert later[1].startswith("Reminder 2") and " late " not in later[1]
            assert len([n for n in later if n.startswith("Reminder 1 ")]) == 1
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_resolved_incident_takes_no_more_changes(running: Running) -> None:
    channel = await declare(running)
    await running.user.slash_command(ALICE, channel, "resolve")
    await running.settle()
    posted = len(running.slack.calls("chat.postMessage"))
    for text in ("sev1", "resolve", "update"):
        reply = await running.user.slash_command(ALICE, channel, text)
        assert "resolved" in reply.json_body()["text"] and "nothing was changed" in reply.json_body()["text"]
    await running.settle()
    assert len(running.slack.calls("chat.postMessage")) == posted
    assert running.slack.calls("views.open") == []
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.severity.value == "sev2" and incident.status.value == "Resolved"
    status = (await running.user.slash_command(BOB, channel, "status")).json_body()["text"]
    assert "*Resolved* after" in status
