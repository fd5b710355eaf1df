"""The whole incident flow over signed HTTP against the stand-in: evidence, hypotheses, phases,
runbooks, roles, the list, the timeline, follow-ups and the postmortem draft uploaded at resolve;
who may act; a hand-off followed by a reminder; concurrent hypothesis clicks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from bot.demo.harness import Running, running_bot, update_modal_values
from bot.demo.standin import SlackStandIn
from bot.demo.standin.workspace import Message
from bot.ids import ActionId, CallbackId, hypothesis_action_id
from bot.models import EventKind, HypothesisState, Phase
from bot.postmortem import SECTIONS

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"


def texts(running: Running, channel: str) -> list[str]:
    return [m.text + json.dumps(m.blocks, ensure_ascii=False) for m in running.slack.messages(channel)]


def told(running: Running, user: str) -> list[str]:
    return [e.text for e in running.slack.ephemerals(user)]


async def command(running: Running, user: str, channel: str, text: str) -> str:
    """Run `/incident <text>`; the text of the bot's answer to the user alone ('' for none)."""
    reply = await running.user.slash_command(user, channel, text)
    assert reply.status == 200, reply
    await running.settle()
    body = reply.body if isinstance(reply.body, dict) else {}
    return str(body.get("text") or "")


async def declare(running: Running, title: str = "Checkout requests failing") -> str:
    await command(running, ALICE, GENERAL, f"sev2 {title}")
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.channel_id is not None
    return incident.channel_id


def hypotheses_message(running: Running, channel: str) -> Message:
    found = [m for m in running.slack.messages(channel) if m.text.startswith("Hypotheses of")]
    assert len(found) == 1, [m.text for m in found]  # one live message, updated in place
    return found[0]


def header(running: Running, channel: str) -> str:
    return texts(running, channel)[0]


async def click_hypothesis(
    running: Running, user: str, channel: str, number: int, state: HypothesisState
) -> None:
    message = hypotheses_message(running, channel)
    reply = await running.user.click_button(user, channel, message.ts, hypothesis_action_id(number, state))
    assert reply.status == 200


def sections_of(markdown: str) -> dict[str, str]:
    """`## Heading` -> the text under it, in order."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


async def test_a_whole_incident_uses_every_command_and_ends_with_its_postmortem(running: Running) -> None:
    channel = await declare(running)
    assert "1. Assess" in header(running, channel)

    # Evidence: a note, and a message put on the timeline with the shortcut.
    assert await command(running, BOB, channel, "note Error rate jumped to 12% at 14:02") == ""
    assert any(
        ":memo: *Note* from <@U0BOB>: Error rate jumped to 12% at 14:02" in t for t in texts(running, channel)
    )
    written = running.slack.add_user_message(channel, CAROL, "p99 latency on checkout is 4s since 14:01")
    reply = await running.user.use_message_shortcut(
        BOB, channel, written.ts, CallbackId.ADD_TO_TIMELINE.value
    )
    assert reply.status == 200
    elsewhere = running.slack.add_user_message(GENERAL, CAROL, "lunch?")
    await running.user.use_message_shortcut(BOB, GENERAL, elsewhere.ts, CallbackId.ADD_TO_TIMELINE.value)
    await running.settle()
    assert "Added the message by <@U0CAROL> to the timeline of *INC-1*" in told(running, BOB)[0]
    assert "not in an incident channel" in told(running, BOB)[1]

    # Investigate: the phase, its checklist from the playbook.
    await command(running, ALICE, channel, "phase investigate")
    assert "3. Investigate: Gather evidence from logs, metrics, traces" in header(running, channel)
    assert any("Error rate (4xx, 5xx)" in t for t in texts(running, channel))

    # Hypotheses: one live message; Testing moves to validate, Confirmed to fix.
    assert "Added *H1*" in await command(running, BOB, channel, "hypothesis DB connection pool exhausted")
    assert "Added *H2*" in await command(
        running, CAROL, channel, "hypothesis Deploy v2.3.1 leaks connections"
    )
    shown = json.dumps(hypotheses_message(running, channel).blocks)
    assert "DB connection pool exhausted" in shown and "Deploy v2.3.1 leaks connections" in shown
    await click_hypothesis(running, BOB, channel, 1, HypothesisState.TESTING)
    await running.settle()
    assert (await running.bot.service.get_incident("INC-1")).phase is Phase.VALIDATE
    assert any("Read-only queries only" in t or "read-only" in t.lower() for t in texts(running, channel))
    await click_hypothesis(running, BOB, channel, 1, HypothesisState.RULED_OUT)
    await click_hypothesis(running, CAROL, channel, 2, HypothesisState.CONFIRMED)
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    assert incident.phase is Phase.FIX and incident.cause is not None and incident.cause.number == 2
    assert "Deploy v2.3.1 leaks connections" in header(running, channel) and "*Cause*" in header(
        running, channel
    )
    assert any("canary" in t.lower() for t in texts(running, channel))  # the fix checklist

    # Runbooks: listed to the user alone, posted as symptoms and a checklist.
    listed = await command(running, BOB, channel, "runbook")
    assert all(f"`{name}`" in listed for name in ("memory", "connections", "database", "external"))
    assert await command(running, BOB, channel, "runbook connections") == ""
    assert any("Runbook: Connection pool exhaustion" in t for t in texts(running, channel))
    assert "already in this channel" in await command(running, BOB, channel, "runbook connections")
    assert "no runbook `lunch`" in await command(running, BOB, channel, "runbook lunch")

    # Roles: the commander handed over (stakeholders told), a comms lead assigned.
    await command(running, ALICE, channel, "commander <@U0BOB|bob>")
    await command(running, BOB, channel, "role comms <@U0CAROL|carol>")
    assert "Incident commander: <@U0BOB>" in header(running, channel)
    assert "Communications lead: <@U0CAROL>" in header(running, channel)
    assert any("<@U0BOB> is now the incident commander" in t for t in texts(running, MANAGERS))
    assert "no role `chef`" in await command(running, BOB, channel, "role chef <@U0CAROL>")

    # A follow-up, the list (anywhere), the timeline in the channel.
    await command(running, CAROL, channel, "followup Alert on connection pool usage above 80%")
    listing = await command(running, CAROL, MANAGERS, "list")
    assert "INC-1" in listing and "Checkout requests failing" in listing and "6. Fix" in listing
    before = len(running.slack.messages(channel))
    await command(running, CAROL, channel, "timeline")
    posted = texts(running, channel)[before:]
    assert posted and "Timeline of INC-1" in posted[0]
    assert any("│ <@U0BOB> │" in t and "ticked" not in t for t in posted)

    # Monitoring, then resolved: the postmortem draft is uploaded in the channel.
    view_before = {v.id for v in running.slack.views()}
    await command(running, BOB, channel, "update")
    [view] = [v for v in running.slack.views() if v.id not in view_before]
    values = update_modal_values(
        "Monitoring", "5% of checkouts failed for 20 minutes", "Pool size raised", "15m"
    )
    assert (await running.user.submit_view(BOB, view.id, values)).status == 200
    await running.settle()
    assert (await running.bot.service.get_incident("INC-1")).phase is Phase.VERIFY
    assert "Resolving *INC-1*" in await command(running, BOB, channel, "resolve")
    await running.settle(timeout=10)
    resolution = next(t for t in texts(running, channel) if "is *resolved*" in t)
    assert "*Follow-ups*" in resolution and "Alert on connection pool usage above 80%" in resolution
    assert "*Cause* (H2)" in resolution
    [upload] = running.slack.files(channel)
    assert upload.name == "INC-1-postmortem.md" and upload.content is not None
    markdown = upload.content.decode()

    sections = sections_of(markdown)
    assert list(sections) == list(SECTIONS)
    assert markdown.startswith("# INC-1 postmortem: Checkout requests failing")
    assert "5% of checkouts failed for 20 minutes" in sections["Impact"]
    assert "Error rate jumped to 12% at 14:02" in sections["Evidence"]
    assert "p99 latency on checkout is 4s since 14:01" in sections["Evidence"]
    assert "/archives/" + channel in sections["Evidence"]  # the message's permalink
    assert "DB connection pool exhausted" in sections["Hypotheses"] and "Ruled out" in sections["Hypotheses"]
    assert "Deploy v2.3.1 leaks connections" in sections["Root cause"]
    assert "Alert on connection pool usage above 80%" in sections["Follow-ups"]
    assert "bob" in sections["Summary"].lower() and "Communications lead" in sections["Summary"]
    assert "note" in sections["Timeline"].lower() or "Error rate jumped" in sections["Timeline"]
    assert sections["What went well"].strip() == "" and sections["What went wrong"].strip() == ""

    # /incident postmortem uploads the draft again, and everything was on the timeline.
    await command(running, BOB, channel, "postmortem")
    await running.settle()
    assert len(running.slack.files(channel)) == 2
    kinds = {e.kind for e in await running.bot.service.store.timeline("INC-1")}
    assert {
        EventKind.NOTE,
        EventKind.EVIDENCE,
        EventKind.HYPOTHESIS,
        EventKind.HYPOTHESIS_STATE,
        EventKind.PHASE,
        EventKind.RUNBOOK,
        EventKind.ROLE,
        EventKind.FOLLOWUP,
        EventKind.TIMELINE_SHOWN,
        EventKind.POSTMORTEM,
    } <= kinds
    assert running.slack.rejected_calls() == []


async def test_someone_outside_the_channel_can_neither_tick_nor_post_an_update() -> None:
    async with SlackStandIn(responders={ALICE}) as slack, running_bot(slack=slack) as running:
        channel = await declare(running)
        checklist = running.slack.messages(channel)[1]
        action = next(
            e["action_id"] for b in checklist.blocks if b["type"] == "actions" for e in b["elements"]
        )
        await running.user.click_checkbox(BOB, channel, checklist.ts, action, True)
        head = running.slack.messages(channel)[0]
        await running.user.click_button(BOB, channel, head.ts, ActionId.OPEN_UPDATE.value)
        await running.settle()
        refusals = told(running, BOB)
        assert len(refusals) == 2 and all("Join the channel first" in t for t in refusals)
        assert await running.bot.store.ticks("INC-1") == {}
        assert running.slack.views() == []
        # Once in the channel, the same click counts.
        running.slack.add_to_channel(channel, BOB)
        await running.user.click_checkbox(BOB, channel, checklist.ts, action, True)
        await running.settle()
        assert len(await running.bot.store.ticks("INC-1")) == 1


async def test_the_playbook_can_keep_resolving_and_lowering_to_the_commander(tmp_path: Path) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text("permissions: {resolve: commander, lower_severity: commander}\n")
    async with running_bot(playbook_path=playbook) as running:
        channel = await declare(running)
        assert "Only the incident commander (<@U0ALICE>) may resolve it" in await command(
            running, BOB, channel, "resolve"
        )
        assert "may lower its severity" in await command(running, BOB, channel, "sev3")
        before = {v.id for v in running.slack.views()}
        await command(running, BOB, channel, "update")
        [view] = [v for v in running.slack.views() if v.id not in before]
        values = update_modal_values("Resolved", "None now", "Fixed", "15m")
        reply = await running.user.submit_view(BOB, view.id, values)
        assert (
            isinstance(reply.body, dict) and "Only the incident commander" in reply.body["errors"]["status"]
        )
        assert await command(running, BOB, channel, "sev1") == ""  # raising is anyone's
        incident = await running.bot.service.get_incident("INC-1")
        assert not incident.is_resolved and incident.severity.value == "sev1"
        assert "Resolving" in await command(running, ALICE, channel, "resolve")


async def test_a_reminder_after_a_hand_off_mentions_the_new_commander(tmp_path: Path) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text("digest_every: null\nseverities:\n  sev2: {update_every: 2s}\n")
    async with running_bot(playbook_path=playbook) as running:
        channel = await declare(running)
        await command(running, ALICE, channel, "commander <@U0BOB|bob>")
        await command(running, BOB, channel, "role comms <@U0CAROL>")
        for _ in range(100):
            reminders = [t for t in texts(running, channel) if ":alarm_clock:" in t]
            if reminders:
                break
            await asyncio.sleep(0.05)
        assert reminders, "no reminder within 5 s"
        assert "<@U0BOB> <@U0CAROL> the next update" in reminders[0]
        assert "<@U0ALICE>" not in reminders[0]


async def test_two_people_settling_one_hypothesis_at_once_make_one_change(running: Running) -> None:
    channel = await declare(running)
    await command(running, BOB, channel, "hypothesis Cache stampede after the 14:00 flush")
    message = hypotheses_message(running, channel)
    clicks = [
        running.user.click_button(
            BOB, channel, message.ts, hypothesis_action_id(1, HypothesisState.CONFIRMED)
        ),
        running.user.click_button(
            CAROL, channel, message.ts, hypothesis_action_id(1, HypothesisState.RULED_OUT)
        ),
    ]
    assert [r.status for r in await asyncio.gather(*clicks)] == [200, 200]
    await running.settle()
    incident = await running.bot.service.get_incident("INC-1")
    [hypothesis] = incident.hypotheses
    assert hypothesis.state in (HypothesisState.CONFIRMED, HypothesisState.RULED_OUT)
    changes = [
        e for e in await running.bot.service.store.timeline("INC-1") if e.kind is EventKind.HYPOTHESIS_STATE
    ]
    assert len(changes) == 1 and changes[0].by == hypothesis.changed_by
    loser = CAROL if hypothesis.changed_by == BOB else BOB
    assert any(f"already *{hypothesis.state.value}*" in t for t in told(running, loser))
    assert hypothesis.state.value in json.dumps(hypotheses_message(running, channel).blocks)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("note", "needs the note"),
        ("phase", "needs the step"),
        ("commander bob", "needs the new commander"),
        ("frobnicate", "I don't know `frobnicate`"),
    ],
)
async def test_a_subcommand_missing_its_argument_says_what_is_missing(
    running: Running, text: str, says: str
) -> None:
    channel = await declare(running)
    answer = await command(running, BOB, channel, text)
    assert says in answer and "Usage of /incident" in answer
    assert [e.kind for e in await running.bot.service.store.timeline("INC-1")].count(EventKind.NOTE) == 0


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "not-done"])
async def test_a_postmortem_upload_whose_answer_was_lost_is_shared_once(applied: bool) -> None:
    """The connection drops on files.completeUploadExternal: if Slack shared the file, the bot
    finds it in the channel and uploads nothing more; if not, it uploads again."""
    async with SlackStandIn() as slack:
        slack.faults.close_connection("files.completeUploadExternal", applied=applied, times=1)
        async with running_bot(slack=slack, slack_timeout=0.5) as running:
            channel = await declare(running)
            await command(running, ALICE, channel, "resolve")
            await running.settle(timeout=15)
            shared = running.slack.files(channel)
            assert [f.name for f in shared] == ["INC-1-postmortem.md"]
            assert shared[0].content is not None and b"## Root cause" in shared[0].content
            assert len(slack.calls("files.completeUploadExternal")) == (1 if applied else 2)


async def test_a_second_draft_is_uploaded_even_when_its_first_try_fails_soon_after_the_first() -> None:
    """Every draft has the same name: the look-up after a failed try must not take the earlier
    draft for this one."""
    async with SlackStandIn() as slack, running_bot(slack=slack, slack_timeout=0.5) as running:
        channel = await declare(running)
        await command(running, BOB, channel, "postmortem")
        await running.settle(timeout=10)
        slack.faults.fail("files.getUploadURLExternal", status=500, times=1)
        await command(running, BOB, channel, "resolve")
        await running.settle(timeout=15)
        drafts = running.slack.files(channel)
        assert [f.name for f in drafts] == ["INC-1-postmortem.md"] * 2
        assert drafts[1].content is not None and b"**Resolved:** 20" in drafts[1].content


async def test_where_the_playbook_keeps_resolving_to_the_commander_nobody_else_takes_the_role(
    tmp_path: Path,
) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text("permissions: {resolve: commander}\n")
    async with running_bot(playbook_path=playbook) as running:
        channel = await declare(running)
        assert "may hand the role over" in await command(running, BOB, channel, "commander <@U0BOB|bob>")
        assert "may hand the role over" in await command(running, BOB, channel, "role commander <@U0BOB>")
        assert (await running.bot.service.get_incident("INC-1")).commander == ALICE
        assert await command(running, ALICE, channel, "commander <@U0BOB|bob>") == ""
        assert (await running.bot.service.get_incident("INC-1")).commander == BOB


async def test_a_deleted_hypotheses_message_is_posted_again(running: Running) -> None:
    channel = await declare(running)
    await command(running, BOB, channel, "hypothesis One")
    first = hypotheses_message(running, channel)
    running.slack.workspace.messages[channel].remove(first)  # deleted, as a person could
    await command(running, BOB, channel, "hypothesis Two")
    again = hypotheses_message(running, channel)
    assert again.ts != first.ts and "Two" in json.dumps(again.blocks)
    assert (await running.bot.service.get_incident("INC-1")).hypotheses_ts == again.ts
    assert not [t for t in told(running, ALICE) if "refused" in t]  # the commander hears of none


async def test_a_slow_member_list_refuses_in_time_and_changes_nothing() -> None:
    async with SlackStandIn() as slack, running_bot(slack=slack) as running:
        channel = await declare(running)
        slack.faults.hang("conversations.members", 4.0, applied=False, times=1)
        reply = await running.user.slash_command(BOB, channel, "note Should not be posted")
        await running.settle()
        assert reply.status == 200 and "couldn't check that you are in" in reply.json_body()["text"]
        assert not any("Should not be posted" in t for t in texts(running, channel))


async def test_a_message_is_evidence_once_however_many_changes_later(running: Running) -> None:
    channel = await declare(running)
    written = running.slack.add_user_message(channel, CAROL, "DB pool at 100/100")
    await running.user.use_message_shortcut(BOB, channel, written.ts, CallbackId.ADD_TO_TIMELINE.value)
    for n in range(22):  # more changes than the incident remembers requests
        await running.user.slash_command(BOB, channel, f"note n{n}")
    await running.user.use_message_shortcut(CAROL, channel, written.ts, CallbackId.ADD_TO_TIMELINE.value)
    await running.settle()
    assert "already on the timeline" in told(running, CAROL)[-1]
    evidence = [e for e in await running.bot.service.store.timeline("INC-1") if e.kind is EventKind.EVIDENCE]
    assert len(evidence) == 1


async def test_the_cli_prints_the_postmortem_as_it_was_uploaded(
    running: Running, redis_test_url: str
) -> None:
    """`incident-bot postmortem INC-1` reads Redis; with the bot token it shows people by the
    same names, so it prints exactly the uploaded draft."""
    channel = await declare(running)
    await command(running, BOB, channel, "hypothesis Deploy v2.3.1 leaks connections")
    await command(running, BOB, channel, "followup Alert on pool usage")
    await command(running, ALICE, channel, "resolve")
    await running.settle(timeout=10)
    [upload] = running.slack.files(channel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_", "REDIS_"))}
    env.update(
        REDIS_URL=redis_test_url, SLACK_BOT_TOKEN=running.slack.bot_token, SLACK_API_URL=running.slack.url
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "postmortem", "inc-1", env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err
    assert upload.content is not None and out == upload.content
    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "postmortem", "INC-9", env=env, stdout=PIPE, stderr=PIPE
    )
    _, err = await asyncio.wait_for(missing.communicate(), timeout=30)
    assert (
        missing.returncode == 2
        and err.decode().strip() == "incident-bot: there is no incident INC-9 in the store."
    )
