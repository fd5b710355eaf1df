"""`incident-bot demo`: the real bot, a stand-in Slack and a scripted incident, in one command.

No workspace, tokens or Redis server needed: the bot serves HTTP on loopback exactly as in
`incident-bot run`, requests reach it signed as Slack signs them, and every Web API call it
makes goes to the built-in stand-in, which rejects what Slack would reject.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from bot.blocks.timeline import timeline_lines
from bot.demo.harness import Running, eventually, running_bot, update_modal_values
from bot.demo.standin import SlackStandIn
from bot.demo.standin.transcript import render_channel
from bot.ids import CallbackId, hypothesis_action_id
from bot.models import HypothesisState
from bot.playbook import load_playbook
from bot.redis_url import RedisUrlError
from bot.store import connect

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"

# Time compressed: an update is due every 5 seconds and managers get a digest every 4.
DEMO_PLAYBOOK = """\
digest_every: 4s
severities:
  sev1: {update_every: 5s}
  sev2: {update_every: 5s}
"""


def say(line: str) -> None:
    print(f"▶ {line}", flush=True)


async def post_update(run: Running, channel: str, user: str, *fields: str) -> None:
    before = {v.id for v in run.slack.views()}
    await run.user.slash_command(user, channel, "update")
    await run.settle()
    [view] = [v for v in run.slack.views() if v.id not in before]
    reply = await run.user.submit_view(user, view.id, update_modal_values(*fields))
    if isinstance(reply.body, dict) and reply.body.get("response_action") == "errors":
        raise RuntimeError(f"the update modal refused the input: {reply.body['errors']}")
    await run.settle()


def checkbox_action_ids(run: Running, channel: str, ts: str) -> list[str]:
    message = run.slack.message(channel, ts)
    return [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "checkboxes"
    ]


async def command(run: Running, user: str, channel: str, text: str) -> None:
    await run.user.slash_command(user, channel, text)
    await run.settle()


async def click_hypothesis(
    run: Running, user: str, channel: str, number: int, state: HypothesisState
) -> None:
    [message] = [m for m in run.slack.messages(channel) if m.text.startswith("Hypotheses of")]
    await run.user.click_button(user, channel, message.ts, hypothesis_action_id(number, state))
    await run.settle()


async def play(run: Running) -> str:
    say("1. Assess · Alice types `/incident sev2 Checkout requests failing` in #general")
    reply = await run.user.slash_command(ALICE, GENERAL, "sev2 Checkout requests failing")
    await run.settle()
    declared = re.search(r"INC-\d+", str(reply.body))
    if declared is None:
        raise RuntimeError(f"the bot did not declare the incident: {reply.body}")
    incident = await run.bot.service.get_incident(declared.group(0))
    if incident.channel_id is None:
        raise RuntimeError(f"{incident.id} has no channel")
    channel = incident.channel_id
    messages = run.slack.messages(channel)
    assess, mitigate = messages[1], messages[2]

    say("Alice and Bob tick different Assess items at the same moment")
    alice_item = checkbox_action_ids(run, channel, assess.ts)[0]
    bob_item = checkbox_action_ids(run, channel, assess.ts)[4]
    await asyncio.gather(
        run.user.click_checkbox(ALICE, channel, assess.ts, alice_item, True),
        run.user.click_checkbox(BOB, channel, assess.ts, bob_item, True),
    )

    say("2. Mitigate · Carol ticks a Quick Mitigation: traffic shifted to the healthy region")
    await run.user.click_checkbox(
        CAROL, channel, mitigate.ts, checkbox_action_ids(run, channel, mitigate.ts)[3], True
    )
    await run.settle()

    say("3. Investigate · Bob moves the incident on: the Evidence Gathering checklist appears")
    await command(run, BOB, channel, "phase investigate")
    await command(run, BOB, channel, "note Error rate went from 0.1% to 5% at 14:02, p99 latency 4s")
    found = run.slack.add_user_message(channel, CAROL, "DB connection pool at 100/100 on every checkout pod")
    say("Carol's message goes on the timeline as evidence (the Add to timeline shortcut)")
    await run.user.use_message_shortcut(ALICE, channel, found.ts, CallbackId.ADD_TO_TIMELINE.value)
    say("Bob posts the `connections` runbook: its symptoms, and its steps as a checklist")
    await command(run, BOB, channel, "runbook connections")

    say("4. Hypothesize · Bob and Carol propose causes")
    await command(run, BOB, channel, "phase hypothesize")
    await command(run, BOB, channel, "hypothesis A slow query holds connections since the 14:00 traffic peak")
    await command(
        run, CAROL, channel, "hypothesis Deploy v2.3.1 at 13:58 leaks a connection per failed request"
    )

    say("5. Validate · H1 is tested with read-only queries and ruled out")
    await click_hypothesis(run, BOB, channel, 1, HypothesisState.TESTING)
    await click_hypothesis(run, BOB, channel, 1, HypothesisState.RULED_OUT)

    say("6. Fix · Carol confirms H2: it is the cause, and the Fix checklist appears")
    await click_hypothesis(run, CAROL, channel, 2, HypothesisState.CONFIRMED)
    await post_update(
        run,
        channel,
        BOB,
        "Identified",
        "~5% of checkout requests failing",
        "Deploy v2.3.1 leaks DB connections; rolling back to v2.3.0",
        "5s",
    )

    say("Nobody posts the next update: the bot reminds the commander when it falls due")
    started = time.monotonic()
    await eventually(
        lambda: any(
            "next update for" in m.text or "next update for" in str(m.blocks)
            for m in run.slack.messages(channel)
        ),
        timeout=10,
    )
    say(f"…the reminder arrived after {time.monotonic() - started:.1f}s")

    say("Alice hands the commander role to Bob; Carol becomes communications lead")
    await command(run, ALICE, channel, "commander <@U0BOB|bob>")
    await command(run, BOB, channel, "role comms <@U0CAROL|carol>")
    say("Bob raises the incident to SEV1 from the incident channel")
    await command(run, BOB, channel, "sev1")

    say("7. Verify · Carol posts a Monitoring update: the Verification checklist appears")
    await post_update(
        run,
        channel,
        CAROL,
        "Monitoring",
        "Error rate back to baseline",
        "Rolled back to v2.3.0 in all regions, watching metrics",
        "15m",
    )
    verification = run.slack.messages(channel)[-1]
    for action_id in checkbox_action_ids(run, channel, verification.ts)[:3]:
        await run.user.click_checkbox(CAROL, channel, verification.ts, action_id, True)
    await run.settle()

    say("8. Postmortem · a follow-up, the timeline in the channel, then Bob resolves")
    await command(run, CAROL, channel, "followup Alert when the DB connection pool is above 80%")
    await command(run, BOB, channel, "timeline")
    await command(run, BOB, channel, "resolve")
    await run.settle(timeout=10)
    return incident.id


def print_channel(slack: SlackStandIn, channel_id: str) -> None:
    channel = slack.workspace.channel(channel_id)
    name = channel.name if channel else channel_id
    print(f"\n{'═' * 30} #{name} {'═' * max(0, 40 - len(name))}")
    print(render_channel(slack, channel_id))


async def _key_count(redis: aioredis.Redis) -> int:
    """Keys in the database; on a Cluster, on every master (one node sees only its own)."""
    if isinstance(redis, RedisCluster):
        counts = await redis.execute_command("DBSIZE", target_nodes=RedisCluster.PRIMARIES)
        return sum(counts.values()) if isinstance(counts, dict) else int(counts)
    return int(await redis.dbsize())


async def demo(redis_url: str | None, slack: SlackStandIn | None = None) -> int:
    """Plays the incident; 0 if every Web API call was accepted, 1 if the stand-in rejected any."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo-playbook.yml"
        path.write_text(DEMO_PLAYBOOK)
        playbook = load_playbook(path)
    try:
        redis = connect(redis_url) if redis_url else None
    except RedisUrlError as exc:
        print(f"incident-bot demo: {exc}", file=sys.stderr)
        return 2
    try:
        not_empty = redis is not None and await _key_count(redis)
    except (RedisError, OSError) as exc:
        print(f"incident-bot demo: can't reach Redis at --redis-url ({exc}).", file=sys.stderr)
        return 1
    if redis is not None and not_empty:
        await redis.aclose()
        print(
            f"incident-bot demo: {redis_url} is not empty. The demo writes incidents and a digest "
            "schedule of its own; point it at an empty database (e.g. redis://127.0.0.1:6379/9).",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    async with running_bot(slack=slack, redis=redis, playbook=playbook) as run:
        incident_id = await play(run)
        incident = await run.bot.service.get_incident(incident_id)
        assert incident.channel_id is not None
        for channel_id in (GENERAL, incident.channel_id, MANAGERS):
            print_channel(run.slack, channel_id)
        events = await run.bot.service.store.timeline(incident_id)
        items = await run.bot.service.investigation.checklist_item_texts(incident_id)
        print(f"\n{'═' * 30} timeline of {incident_id} {'═' * 24}")
        print("\n".join(timeline_lines(events, items)))
        uploads = run.slack.files(incident.channel_id)
        if uploads and uploads[-1].content is not None:
            print(f"\n{'═' * 30} {uploads[-1].name} (uploaded at resolve) {'═' * 8}")
            print(uploads[-1].content.decode())
        rejected = run.slack.rejected_calls()
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s.")
    if rejected:
        print(
            f"\nThe stand-in rejected {len(rejected)} Web API call(s), as Slack would have:", file=sys.stderr
        )
        for call in rejected:
            print(f"  {call.method}: {call.error} {'; '.join(call.reasons)}", file=sys.stderr)
        return 1
    return 0


def main(redis_url: str | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(demo(redis_url))
