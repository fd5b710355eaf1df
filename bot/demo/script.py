"""`incident-bot demo`: the real bot, a stand-in Slack and a scripted incident, in one command.

No workspace, tokens or Redis server needed: the bot serves HTTP on loopback exactly as in
`incident-bot run`, requests reach it signed as Slack signs them, and every Web API call it
makes goes to the built-in stand-in, which rejects what Slack would reject. Each person's action
is narrated as it is done; then the channels are printed as Slack draws them (bot/demo/terminal.py),
or as the mrkdwn the bot sent with `--raw`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

from bot.blocks.format import spoken
from bot.blocks.timeline import BOT_NAME, trace_lines
from bot.demo import database
from bot.demo.harness import Running, eventually, running_bot, update_modal_values
from bot.demo.standin import BotReply, SlackStandIn
from bot.demo.standin.prometheus import PrometheusStandIn
from bot.demo.standin.transcript import render_channel
from bot.demo.standin.workspace import Message
from bot.demo.terminal import Terminal, use_ansi
from bot.ids import ActionId, CallbackId, hypothesis_action_id
from bot.intake import ALERTS_PATH, CHANGES_PATH
from bot.models import HypothesisState, utcnow
from bot.playbook import Playbook, load_playbook
from bot.store import connect, embedded

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL, MANAGERS = "C0GENERAL", "C0MANAGERS"

# Time compressed, so reminders come while one watches: see `speed_note`.
DEMO_PLAYBOOK = """\
digest_every: 4s
severities:
  sev1: {update_every: 5s}
  sev2: {update_every: 5s}
services:
  checkout:
    queries:
      Error rate: 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[1m]))
        / sum(rate(http_requests_total{service="checkout"}[1m]))'
      p99 latency (s): 'histogram_quantile(0.99, sum by (le)
        (rate(http_request_duration_seconds_bucket{service="checkout"}[5m])))'
"""
# The evidence endpoints' token in the demo, and what its CI and Alertmanager report.
ALERT_TOKEN = "demo-alert-token"
SUMMARY = "Checkout requests failing"
DEPLOYED_AGO = timedelta(minutes=12)


def speed_note(demo: Playbook, builtin: Playbook) -> str:
    """The demo's cadence next to the built-in playbook's, from the playbooks themselves."""

    def updates(playbook: Playbook) -> str:
        sev1, sev2 = (spoken(s.update_every) for s in (playbook.severities.sev1, playbook.severities.sev2))
        return f"every {sev1} at SEV1 and SEV2" if sev1 == sev2 else f"every {sev1} at SEV1, {sev2} at SEV2"

    def digest(playbook: Playbook) -> str:
        return f"every {spoken(playbook.digest_every)}" if playbook.digest_every else "never"

    return (
        f"Sped up so that reminders come while you watch: this demo's playbook wants an update "
        f"{updates(demo)} and sends the digest of open incidents {digest(demo)}; the built-in "
        f"playbook wants one {updates(builtin)}, and sends the digest {digest(builtin)}."
    )


@dataclass
class Stage:
    """The cast acting through the stand-in Slack; every action is narrated as it is done."""

    run: Running

    @property
    def voice(self) -> Terminal:
        """Plain text, for what the narration quotes from Slack."""
        return terminal_for(self.run.slack, ansi=False)

    def name(self, user: str) -> str:
        member = self.run.slack.workspace.users.get(user)
        return f"@{member.name if member else user}"

    def channel_name(self, channel: str) -> str:
        found = self.run.slack.workspace.channel(channel)
        return f"#{found.name if found else channel}"

    @staticmethod
    def step(title: str) -> None:
        print(f"▶ {title}", flush=True)

    @staticmethod
    def say(line: str) -> None:
        print(f"  {line}", flush=True)

    async def push(self, path: str, body: Mapping[str, object], said: str) -> None:
        """POST evidence to the bot as a CI pipeline or Alertmanager does, with the bearer token."""
        self.say(said)
        url = self.run.url.removesuffix("/slack/events") + path
        headers = {"Authorization": f"Bearer {ALERT_TOKEN}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body, headers=headers) as answer,
        ):
            if answer.status != 200:
                raise RuntimeError(f"{path} answered {answer.status}: {await answer.text()}")
        await self.run.settle()

    async def command(self, user: str, channel: str, text: str, *, where: bool = False) -> BotReply:
        place = f" in {self.channel_name(channel)}" if where else ""
        self.say(f"{self.name(user)}{place}: /incident {self.voice.mrkdwn(text)}")
        reply = await self.run.user.slash_command(user, channel, text)
        await self.run.settle()
        return reply

    def checkbox(self, channel: str, ts: str, index: int) -> tuple[str, str]:
        """The action id and item text of the `index`th checkbox of a checklist message."""
        message = self.run.slack.message(channel, ts)
        boxes = [
            element
            for block in message.blocks
            if block["type"] == "actions"
            for element in block["elements"]
            if element["type"] == "checkboxes"
        ]
        box = boxes[index]
        return box["action_id"], self.voice.mrkdwn(box["options"][0]["text"]["text"])

    async def tick(self, user: str, channel: str, ts: str, index: int) -> None:
        action_id, item = self.checkbox(channel, ts, index)
        self.say(f'{self.name(user)} ticks "{item}"')
        await self.run.user.click_checkbox(user, channel, ts, action_id, True)

    async def tick_at_once(self, channel: str, ts: str, ticks: list[tuple[str, int]]) -> None:
        """Several people tick items of one message at the same moment."""
        self.say(" and ".join(self.name(user) for user, _ in ticks) + " tick at the same moment:")
        await asyncio.gather(*(self.tick(user, channel, ts, index) for user, index in ticks))
        await self.run.settle()

    def write(self, user: str, channel: str, text: str) -> str:
        """A person's own message in the channel; returns its ts."""
        self.say(f"{self.name(user)} writes in {self.channel_name(channel)}: {text}")
        return self.run.slack.add_user_message(channel, user, text).ts

    async def add_to_timeline(self, user: str, channel: str, ts: str) -> None:
        author = self.name(self.run.slack.message(channel, ts).user)
        self.say(f"{self.name(user)} puts {author}'s message on the timeline (shortcut: Add to timeline)")
        await self.run.user.use_message_shortcut(user, channel, ts, CallbackId.ADD_TO_TIMELINE.value)
        await self.run.settle()

    async def set_hypothesis(self, user: str, channel: str, number: int, state: HypothesisState) -> None:
        self.say(f"{self.name(user)} sets H{number} to {state.value} (a button on the hypotheses message)")
        [message] = [m for m in self.run.slack.messages(channel) if m.text.startswith("Hypotheses of")]
        await self.run.user.click_button(user, channel, message.ts, hypothesis_action_id(number, state))
        await self.run.settle()

    async def post_update(self, user: str, channel: str, *fields: str) -> None:
        status, impact, state, next_update = fields
        self.say(
            f"{self.name(user)}: /incident update, and in the form: {status} · {impact} · {state} · "
            f"next update in {next_update}"
        )
        before = {v.id for v in self.run.slack.views()}
        await self.run.user.slash_command(user, channel, "update")
        await self.run.settle()
        [view] = [v for v in self.run.slack.views() if v.id not in before]
        reply = await self.run.user.submit_view(user, view.id, update_modal_values(*fields))
        if isinstance(reply.body, dict) and reply.body.get("response_action") == "errors":
            raise RuntimeError(f"the update modal refused the input: {reply.body['errors']}")
        await self.run.settle()


def alert_group(now: datetime, started: datetime) -> dict[str, object]:
    """What Alertmanager posts for a firing checkout alert (webhook version 4)."""
    labels = {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="CheckoutErrors"}',
        "status": "firing",
        "receiver": "incident-bot",
        "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": SUMMARY},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": SUMMARY},
                "startsAt": started.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=checkout_errors",
                "fingerprint": "c0ffee0000000001",
            }
        ],
    }


async def declare_from_the_alert(stage: Stage) -> str:
    """A deploy is reported, Alertmanager fires (twice), @alice declares from the triage message."""
    run = stage.run
    now = utcnow()
    deploy = {
        "service": "checkout",
        "kind": "deploy",
        "version": "v2.3.1",
        "description": "Connection pool settings moved to the new config loader",
        "by": "ci",
        "at": (now - DEPLOYED_AGO).isoformat(),
    }
    await stage.push(CHANGES_PATH, deploy, "CI reports a deploy of checkout v2.3.1 (POST /events/change)")
    group = alert_group(now, now - DEPLOYED_AGO + timedelta(minutes=2))
    said = "Alertmanager fires CheckoutErrors, severity critical (POST /alerts/alertmanager)"
    await stage.push(ALERTS_PATH, group, said)
    await stage.push(ALERTS_PATH, group, "…and sends the group again, as it does: the alert is posted once")
    await eventually(lambda: bool(_triage_message(run.slack)), timeout=10)
    message = _triage_message(run.slack)
    assert message is not None
    stage.say(f"{stage.name(ALICE)} clicks Declare SEV2 on the alert in {stage.channel_name(MANAGERS)}")
    await run.user.click_button(ALICE, MANAGERS, message.ts, ActionId.ALERT_DECLARE.value)
    await run.settle()
    await eventually(lambda: bool(run.slack.files()), timeout=10)
    stage.say("the incident's channel gets Recent changes and the checkout chart, unasked")
    return "INC-1"


def _triage_message(slack: SlackStandIn) -> Message | None:
    found = [m for m in slack.messages(MANAGERS) if "Declare SEV" in str(m.blocks)]
    return found[0] if found else None


async def play(stage: Stage) -> str:
    run = stage.run
    stage.step("1. Assess: an alert is declared a SEV2; its channel opens with the checklists and evidence")
    incident = await run.bot.service.get_incident(await declare_from_the_alert(stage))
    if incident.channel_id is None:
        raise RuntimeError(f"{incident.id} has no channel")
    channel = incident.channel_id
    checklists = [m for m in run.slack.messages(channel) if m.text.startswith(f"{incident.id} checklist:")]
    assess, mitigate = checklists[0], checklists[1]
    await stage.tick_at_once(channel, assess.ts, [(ALICE, 0), (BOB, 4)])

    stage.step("2. Mitigate: reduce the impact before the cause is known")
    await stage.tick(CAROL, channel, mitigate.ts, 3)
    await run.settle()

    stage.step("3. Investigate: the bot posts the evidence-gathering checklist")
    await stage.command(BOB, channel, "phase investigate")
    await stage.command(BOB, channel, "metrics checkout 30m")
    await stage.command(BOB, channel, "note Error rate went from 0.1% to 5% at 14:02, p99 latency 4s")
    found = stage.write(CAROL, channel, "DB connection pool at 100/100 on every checkout pod")
    await stage.add_to_timeline(ALICE, channel, found)
    await stage.command(BOB, channel, "runbook connections")

    stage.step("4. Hypothesize: possible causes, from the evidence")
    await stage.command(BOB, channel, "phase hypothesize")
    await stage.command(
        BOB, channel, "hypothesis A slow query holds connections since the 14:00 traffic peak"
    )
    await stage.command(
        CAROL, channel, "hypothesis Deploy v2.3.1 at 13:58 leaks a connection per failed request"
    )

    stage.step("5. Validate: H1 is tested with read-only queries and ruled out")
    await stage.set_hypothesis(BOB, channel, 1, HypothesisState.TESTING)
    await stage.set_hypothesis(BOB, channel, 1, HypothesisState.RULED_OUT)

    stage.step("6. Fix: H2 is confirmed as the cause, and the bot posts the Fix checklist")
    await stage.set_hypothesis(CAROL, channel, 2, HypothesisState.CONFIRMED)
    await stage.post_update(
        BOB,
        channel,
        "Identified",
        "~5% of checkout requests failing",
        "Deploy v2.3.1 leaks DB connections; rolling back to v2.3.0",
        "5s",
    )
    stage.say("nobody posts the next update: the bot reminds the commander when it falls due…")
    started = time.monotonic()
    await eventually(
        lambda: any(
            "next update for" in m.text or "next update for" in str(m.blocks)
            for m in run.slack.messages(channel)
        ),
        timeout=10,
    )
    stage.say(f"…the reminder arrived after {time.monotonic() - started:.1f}s")
    await stage.command(ALICE, channel, "commander <@U0BOB|bob>")
    await stage.command(BOB, channel, "role comms <@U0CAROL|carol>")
    await stage.command(BOB, channel, "sev1")

    stage.step("7. Verify: a Monitoring update, and the bot posts the Verification checklist")
    await stage.post_update(
        CAROL,
        channel,
        "Monitoring",
        "Error rate back to baseline",
        "Rolled back to v2.3.0 in all regions, watching metrics",
        "15m",
    )
    verification = run.slack.messages(channel)[-1]
    for index in range(3):
        await stage.tick(CAROL, channel, verification.ts, index)
    await run.settle()

    stage.step("8. Postmortem: a follow-up, the timeline in the channel, then the incident is resolved")
    await stage.command(CAROL, channel, "followup Alert when the DB connection pool is above 80%")
    await stage.command(BOB, channel, "timeline")
    await stage.command(BOB, channel, "resolve")
    await run.settle(timeout=10)
    return incident.id


def terminal_for(slack: SlackStandIn, *, ansi: bool) -> Terminal:
    """Draws Slack text with the workspace's names as they are now."""
    workspace = slack.workspace
    return Terminal(
        users={uid: user.name for uid, user in workspace.users.items()},
        channels={cid: channel.name for cid, channel in workspace.channels.items()},
        ansi=ansi,
    )


def heading(title: str) -> str:
    return f"\n{'═' * 30} {title} {'═' * max(0, 41 - len(title))}"


def print_channel(slack: SlackStandIn, channel_id: str, terminal: Terminal | None) -> None:
    """The channel as its members read it; `terminal` None prints the mrkdwn as sent."""
    channel = slack.workspace.channel(channel_id)
    print(heading(f"#{channel.name if channel else channel_id}"))
    print(render_channel(slack, channel_id, shown=terminal.show if terminal else None))


async def print_timeline(run: Running, incident_id: str, names: Mapping[str, str]) -> None:
    """The incident's timeline, people named as in the channels."""
    events = await run.bot.service.store.timeline(incident_id)
    items = await run.bot.service.investigation.checklist_item_texts(incident_id)
    print(heading(f"timeline of {incident_id}"))

    def who(user: str | None) -> str:
        return f"@{names.get(user, user)}" if user else BOT_NAME

    print("\n".join(trace_lines(events, items, who, plain=True)))


async def _on_redis(redis_url: str) -> aioredis.Redis | int:
    """A client for `redis_url`, its database claimed for the demo; else the exit code."""
    try:
        redis = connect(redis_url)
    except (ValueError, TypeError) as exc:  # RedisUrlError, or redis-py's reading of its options
        print(f"incident-bot demo: {str(exc).replace('REDIS_URL', '--redis-url')}", file=sys.stderr)
        return 2
    try:
        await database.claim(redis)
    except database.DatabaseInUse as exc:
        await redis.aclose()
        print(
            f"incident-bot demo: not running on --redis-url: {exc}. Give it a database no bot "
            "uses (e.g. redis://127.0.0.1:6379/9); other apps' keys there are left alone.",
            file=sys.stderr,
        )
        return 2
    except TypeError as exc:  # an option in the URL's query that redis-py does not know
        await redis.aclose()
        print(f"incident-bot demo: --redis-url is not valid for redis-py: {exc}.", file=sys.stderr)
        return 2
    except (RedisError, RedisClusterException, OSError) as exc:
        await redis.aclose()
        print(f"incident-bot demo: can't reach Redis at --redis-url ({exc}).", file=sys.stderr)
        return 1
    return redis


async def demo(redis_url: str | None, slack: SlackStandIn | None = None, *, raw: bool = False) -> int:
    """Plays the incident; 0 if every Web API call was accepted, 1 if the stand-in rejected any.

    On `redis_url` it deletes the keys it wrote when it ends; else it runs on the embedded store."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo-playbook.yml"
        path.write_text(DEMO_PLAYBOOK)
        playbook = load_playbook(path)
    if redis_url:
        claimed = await _on_redis(redis_url)
        if isinstance(claimed, int):
            return claimed
        redis, store = claimed, "in Redis (--redis-url); the demo deletes the keys it wrote when it ends."
    else:
        redis, store = embedded(), "in memory, gone when the demo ends (--redis-url runs it on Redis)."
    print("incident-bot demo: the real bot on loopback, a stand-in Slack, and a scripted incident.")
    print(speed_note(playbook, load_playbook()))
    print(f"Incidents are stored {store}\n", flush=True)
    started = time.monotonic()
    try:
        async with (
            PrometheusStandIn(rise_at=utcnow() - DEPLOYED_AGO + timedelta(minutes=2)) as prometheus,
            running_bot(
                slack=slack,
                redis=redis,
                playbook=playbook,
                settings={"INCIDENT_ALERT_TOKEN": ALERT_TOKEN, "PROMETHEUS_URL": prometheus.url},
            ) as run,
        ):
            incident_id = await play(Stage(run))
            incident = await run.bot.service.get_incident(incident_id)
            assert incident.channel_id is not None
            terminal = None if raw else terminal_for(run.slack, ansi=use_ansi(sys.stdout))
            for channel_id in (GENERAL, incident.channel_id, MANAGERS):
                print_channel(run.slack, channel_id, terminal)
            await print_timeline(run, incident_id, terminal_for(run.slack, ansi=False).users)
            uploads = run.slack.files(incident.channel_id)
            if uploads and uploads[-1].content is not None:
                print(heading(f"{uploads[-1].name}, the Markdown file uploaded at resolve"))
                print(uploads[-1].content.decode())
            rejected = run.slack.rejected_calls()
    finally:
        if redis_url:
            try:
                await database.release(redis)
            except database.DatabaseInUse as exc:
                print(f"incident-bot demo: left the database as it is: {exc}.", file=sys.stderr)
            except (RedisError, OSError) as exc:
                print(
                    f"incident-bot demo: could not delete the demo's keys ({exc}); "
                    "the next demo on this database deletes them.",
                    file=sys.stderr,
                )
        await redis.aclose()
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s.")
    if rejected:
        print(
            f"\nThe stand-in rejected {len(rejected)} Web API call(s), as Slack would have:", file=sys.stderr
        )
        for call in rejected:
            print(f"  {call.method}: {call.error} {'; '.join(call.reasons)}", file=sys.stderr)
        return 1
    return 0


def main(redis_url: str | None, *, raw: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # a skipped poll is by design
    return asyncio.run(demo(redis_url, raw=raw))
