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


async def play(run: Running) -> str:
    say("Alice types `/incident sev2 Checkout requests failing` in #general")
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

    say("Alice and Bob tick different checklist items at the same moment")
    alice_item = checkbox_action_ids(run, channel, assess.ts)[0]
    bob_item = checkbox_action_ids(run, channel, assess.ts)[4]
    await asyncio.gather(
        run.user.click_checkbox(ALICE, channel, assess.ts, alice_item, True),
        run.user.click_checkbox(BOB, channel, assess.ts, bob_item, True),
    )
    await run.user.click_checkbox(
        CAROL, channel, mitigate.ts, checkbox_action_ids(run, channel, mitigate.ts)[3], True
    )
    await run.settle()

    say("Bob posts an Identified update through the update modal (next update in 5 seconds)")
    await post_update(
        run,
        channel,
        BOB,
        "Identified",
        "~5% of checkout requests failing",
        "Identified database connection issue, deploying fix",
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

    say("Alice raises the incident to SEV1 from the incident channel")
    await run.user.slash_command(ALICE, channel, "sev1")
    await run.settle()

    say("Bob posts a Monitoring update: the Verification checklist appears")
    await post_update(
        run,
        channel,
        BOB,
        "Monitoring",
        "Error rate back to baseline",
        "Fix deployed to all regions, watching metrics",
        "15m",
    )
    verification = run.slack.messages(channel)[-1]
    for action_id in checkbox_action_ids(run, channel, verification.ts)[:3]:
        await run.user.click_checkbox(CAROL, channel, verification.ts, action_id, True)
    await run.settle()

    say("Alice resolves the incident")
    await run.user.slash_command(ALICE, channel, "resolve")
    await run.settle()
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
        events = await run.bot.service.timeline(incident_id)
        items = await run.bot.service.checklist_item_texts(incident_id)
        print(f"\n{'═' * 30} timeline of {incident_id} {'═' * 24}")
        print("\n".join(timeline_lines(events, items)))
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
