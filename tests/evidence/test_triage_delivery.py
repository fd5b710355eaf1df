"""The triage loop against the Slack stand-in: one message per episode, updated in place, found
again when a post's answer is lost, retried after rate limits, a refusal told once, and two bot
processes posting once between them."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.alert_groups import TriageState
from bot.demo.harness import eventually
from bot.ids import AlertRef
from bot.models import Incident
from tests.e2e.conftest import connect_like
from tests.evidence.alert_payloads import alert, encoded, resolved
from tests.evidence.alerting import (
    TRIAGE,
    alerting_bot,
    notify,
    settled,
    standin,
    triage_loop,
    triage_messages,
)


async def test_a_group_is_posted_once_and_updated_in_place() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        status, answer = await notify(running, encoded())
        assert status == 200 and (answer["episode"], answer["state"]) == (1, "triage")
        for _ in range(3):
            status, _ = await notify(running, encoded(alert(), alert(fingerprint="2")))
            assert status == 200
        (record,) = await settled(running)

        (posted,) = triage_messages(slack)
        message = slack.message(TRIAGE, posted.ts)  # as it stands now
        shown = json.dumps(message.blocks)
        assert "2 alerts firing" in shown and "Declare SEV2" in shown
        assert message.metadata == {
            "event_type": "incident_bot_effect",
            "event_payload": {"effect": f"alert/{record.uid}/1"},
        }
        assert len([c for c in slack.calls("chat.postMessage") if c.params.get("channel") == TRIAGE]) == 1
        # Updated in place, at most once a notification (the loop shows only the newest).
        assert 1 <= len(slack.calls("chat.update")) <= 3
        assert record.shown == record.revision and record.message is not None
        assert record.message.ts == message.ts


async def test_a_flapping_alert_nobody_acts_on_keeps_one_message_updated_in_place() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        await notify(running, encoded())
        await settled(running)
        for _ in range(2):  # resolves, fires again
            await notify(running, encoded(resolved()))
            await settled(running)
            await notify(running, encoded())
        (record,) = await settled(running)

        (posted,) = triage_messages(slack)
        shown = json.dumps(slack.message(TRIAGE, posted.ts).blocks)
        assert "firing again since" in shown and "It has fired 3 times since" in shown
        assert (record.episode, record.firings, record.state) == (1, 3, TriageState.TRIAGE)
        reply = await running.user.click_button("U0ALICE", TRIAGE, posted.ts, "alert_declare")
        assert reply.status == 200
        await settled(running)
        assert await running.bot.service.store.open_incident_ids() == ["INC-1"]
        assert len(triage_messages(slack)) == 1


async def test_a_post_whose_answer_was_lost_is_found_not_posted_twice() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        slack.faults.close_connection("chat.postMessage", applied=True)

        assert (await notify(running, encoded()))[0] == 200
        (record,) = await settled(running)

        assert len(triage_messages(slack)) == 1
        assert slack.calls("conversations.history")  # it read the channel back before posting again
        assert record.message is not None and record.message.ts == triage_messages(slack)[0].ts


async def test_a_rate_limited_post_waits_as_told_and_posts_once() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        slack.faults.error("chat.postMessage", "ratelimited", status=429, retry_after=1)

        await notify(running, encoded())
        await settled(running)

        posts = [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == TRIAGE]
        assert len(posts) == 2 and posts[1].at - posts[0].at >= 0.9
        assert len(triage_messages(slack)) == 1


async def test_a_refusal_for_good_is_logged_once_with_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    async with standin() as slack, alerting_bot(slack, INCIDENT_TRIAGE_CHANNEL="C0NOWHERE") as running:
        caplog.set_level(logging.WARNING, logger="bot.triage_delivery")
        await notify(running, encoded())
        await settled(running)
        await notify(running, encoded(alert(), alert(fingerprint="2")))
        (record,) = await settled(running)

        refusals = [r for r in caplog.records if "refused the triage message" in r.getMessage()]
        assert len(refusals) == 1
        assert "channel_not_found" in refusals[0].getMessage()
        assert "INCIDENT_TRIAGE_CHANNEL" in refusals[0].getMessage()
        assert record.refused == "channel_not_found" and record.message is None
        tried = [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == "C0NOWHERE"]
        assert len(tried) == 2  # once per revision, not in a loop


async def test_dismiss_then_a_new_episode_gets_a_message_of_its_own() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        await notify(running, encoded())
        await settled(running)
        (first,) = triage_messages(slack)
        stale = first.to_slack()  # as a client that never refreshed keeps showing it
        reply = await running.user.click_button("U0BOB", TRIAGE, first.ts, "alert_dismiss")
        assert reply.status == 200
        await settled(running)
        assert "Dismissed by <@U0BOB>" in json.dumps(slack.message(TRIAGE, first.ts).blocks)

        await notify(running, encoded())  # still firing: it stays quiet
        await notify(running, encoded(resolved()))
        (quiet,) = await settled(running)
        assert quiet.state is TriageState.DISMISSED and len(triage_messages(slack)) == 1

        await notify(running, encoded())  # fires anew
        (anew,) = await settled(running)

        assert anew.episode == 2 and anew.state is TriageState.TRIAGE
        older, newer = triage_messages(slack)
        assert older.ts == first.ts and newer.ts != first.ts
        late = await running.user.click_button("U0ALICE", TRIAGE, first.ts, "alert_declare", snapshot=stale)
        assert late.status == 200
        await eventually(lambda: bool(slack.ephemerals("U0ALICE")))
        assert "fired again since that message" in slack.ephemerals("U0ALICE")[-1].text
        assert await running.bot.service.store.open_incident_ids() == []


async def test_a_declare_racing_a_new_episode_tells_the_clicker_what_it_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        await notify(running, encoded())
        (record,) = await settled(running)
        (first,) = triage_messages(slack)
        triage = triage_loop(running).triage
        declare_incident = running.bot.service.declare_incident

        async def while_it_fires_anew(*args: Any, **kwargs: Any) -> Incident:
            incident = await declare_incident(*args, **kwargs)
            # Meanwhile someone dismissed the message, and the alert resolved and fired anew.
            ref = AlertRef(group_id=record.id, uid=record.uid, episode=1, severity=record.alert.severity)
            assert (await triage.dismiss(ref, "U0BOB")).applied
            await notify(running, encoded(resolved()))
            await notify(running, encoded())
            return incident

        monkeypatch.setattr(running.bot.service, "declare_incident", while_it_fires_anew)
        outbox = running.bot.delivery
        wakes: list[str] = []
        wake = outbox.wake

        def counted() -> None:
            wakes.append("woken")
            wake()

        monkeypatch.setattr(outbox, "wake", counted)

        reply = await running.user.click_button("U0ALICE", TRIAGE, first.ts, "alert_declare")
        assert reply.status == 200
        await eventually(lambda: bool(slack.ephemerals("U0ALICE")))
        (anew,) = await settled(running)

        told = slack.ephemerals("U0ALICE")[-1].text
        assert "*INC-1* declared" in told and "fired anew meanwhile" in told
        assert f"newest message in <#{TRIAGE}> stays in triage" in told and "nothing was declared" not in told
        assert wakes  # its channel and announcements are delivered now, not at the next poll
        incident = await running.bot.service.get_incident("INC-1")
        assert incident.channel_id is not None and not incident.is_resolved
        assert (anew.episode, anew.state, anew.incident_id) == (2, TriageState.TRIAGE, None)
        older, newer = triage_messages(slack)
        assert older.ts == first.ts and "alert_declare" in json.dumps(slack.message(TRIAGE, newer.ts).blocks)


@pytest.mark.redis
async def test_two_bot_processes_post_a_group_once(real_redis: aioredis.Redis) -> None:
    async with (
        standin() as slack,
        alerting_bot(slack, redis=connect_like(real_redis)) as one,
        alerting_bot(slack, redis=connect_like(real_redis)) as two,
    ):
        answers = await asyncio.gather(*[notify(r, encoded()) for r in (one, two) * 4])
        assert {status for status, _ in answers} == {200}
        await settled(one)
        await settled(two)

        assert len(triage_messages(slack)) == 1
        posts = [c for c in slack.calls("chat.postMessage") if c.params.get("channel") == TRIAGE]
        assert len(posts) == 1


async def test_a_double_click_declares_once_and_the_second_is_told() -> None:
    async with standin() as slack, alerting_bot(slack) as running:
        await notify(running, encoded())
        await settled(running)
        (message,) = triage_messages(slack)
        stale = message.to_slack()

        first, second = await asyncio.gather(
            running.user.click_button("U0ALICE", TRIAGE, message.ts, "alert_declare", snapshot=stale),
            running.user.click_button("U0BOB", TRIAGE, message.ts, "alert_declare", snapshot=stale),
        )
        assert (first.status, second.status) == (200, 200)
        (record,) = await settled(running)
        late = await running.user.click_button("U0CAROL", TRIAGE, message.ts, "alert_dismiss", snapshot=stale)
        assert late.status == 200

        assert await running.bot.service.store.open_incident_ids() == ["INC-1"]
        assert record.state is TriageState.DECLARED and record.declared_by in {"U0ALICE", "U0BOB"}
        await eventually(lambda: len(slack.ephemerals()) >= 3)
        told = {e.user: e.text for e in slack.ephemerals()}
        assert "INC-1" in told["U0ALICE"] and "INC-1" in told["U0BOB"]
        assert "already declared as *INC-1*" in told["U0CAROL"] and "nothing was dismissed" in told["U0CAROL"]
        assert len(triage_messages(slack)) == 1
