"""incident-bot against its floor: ack latency, Redis and Slack traffic, behaviour at 10,000 incidents.

    .venv/bin/python -m bench.bench [--requests 300] [--incidents 10000] [--json out.json]
        [--delivery {inline,process}] [--bot-workers N]

Everything runs on loopback and stops by itself. Processes: a private redis-server (so INFO
commandstats and MEMORY figures are ours alone), the bot (`python -m bot run`; with `--delivery
process`, `python -m bot run --delivery none` beside `python -m bot deliver`), the floor
(`python -m bench.floor`: a bare Bolt app on the same server stack whose listeners only ack) and
the load client (`python -m bench.loadgen`), each alone in its process; the Slack stand-in,
the Redis round-trip counter and the orchestration live in this one.

1. Ack latency and throughput of slash commands and checkbox ticks at several concurrencies,
   bot beside floor, measured by the load client from sending the signed request to reading
   the response; each ack p99 against its target (1.5x the floor's). For declares, also the time
   from reading the ack to the stand-in holding the incident's last checklist message, and the
   Web API calls per declare.
2. Redis round trips and commands per declare and per tick (a counting proxy in front of Redis,
   and INFO commandstats deltas after CONFIG RESETSTAT), Web API calls per tick outside bursts,
   `chat.update` calls for a burst of 50 ticks on one message, and whether the message then
   shows exactly what Redis holds.
3. With 10,000 open incidents in Redis: start to serving, reminder lateness, memory per incident.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import itertools
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench.procs import BotProcesses, LoadClient, ServerProcess
from bench.redis_proxy import RedisCountingProxy, RoundTrip
from bench.report import render_report
from bench.seed import SeededIncident, every_nth, seed_open_incidents
from bench.signed import RequestFactory, SignedRequest, checkbox_action_ids
from bench.stats import summarize
from bot import keys, schedule_store, store
from bot.app import create_app
from bot.checklists import RECHECK_AFTER_TICK, checklist_works
from bot.demo.harness import RedisServer
from bot.demo.standin import SlackStandIn, SlackUser
from bot.ids import ItemRef
from bot.models import Incident
from bot.playbook import load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService
from bot.store import IncidentStore, connect

JsonDict = dict[str, Any]

SIGNING_SECRET = "bench-signing-secret"
STAKEHOLDERS = "C0MANAGERS"
GENERAL = "C0GENERAL"
USERS = ("U0ALICE", "U0BOB", "U0CAROL")
# What `incident-bot run` uses: create_app's defaults, read rather than repeated.
_DEFAULTS = inspect.signature(create_app).parameters
REFRESH_INTERVAL: float = _DEFAULTS["refresh_interval"].default
REMINDER_POLL: float = _DEFAULTS["reminder_poll"].default
# The delivery loop looks at a ticked message this long after the tick, in case its re-render failed.
RECHECK_S = RECHECK_AFTER_TICK.total_seconds()


def _scripts() -> dict[str, str]:
    """EVALSHA digest -> name, for every Lua script of the store modules (`_TICK_SCRIPT` is
    "tick"), so round-trip listings name them."""
    names: dict[str, str] = {}
    for module in (store, schedule_store):
        for attribute, value in vars(module).items():
            if not (attribute.startswith("_") and attribute.isupper() and isinstance(value, str)):
                continue
            if "redis.call" in value:
                digest = hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()
                names[digest] = attribute.strip("_").lower().removesuffix("_script")
    return names


SCRIPTS = _scripts()
HEARTBEAT = "SET:heartbeat"
_HEARTBEAT_KEY = re.compile(re.escape(keys.process_alive("OWNER")).replace("OWNER", ".+"))
_DELIVERY_LOCK_KEY = re.compile(re.escape(keys.delivery_lock("INCIDENT")).replace("INCIDENT", ".+"))
# What the bot sends on its own, whatever the requests: the reminder poll, the delivery poll (an
# outbox claim that finds nothing due), the delivery loop's heartbeat and health checks.
BACKGROUND = {"EVALSHA:claim", "EVALSHA:claim_outbox", HEARTBEAT, "PING"}
CONNECTION_SETUP = {"CLIENT", "HELLO", "SELECT", "AUTH"}
APSCHEDULER_SKIPPED = "maximum number of running instances reached"


# inline: the bot delivers its Slack work on the event loop that acks (`incident-bot run`);
# process: `incident-bot run --delivery none` acks, a separate `incident-bot deliver` delivers.
DELIVERY_MODES = ("inline", "process")


@dataclass
class Options:
    requests: int = 300
    levels: tuple[int, ...] = (1, 8, 32)
    incidents: int = 10_000
    reminders: int = 200
    spaced_ticks: int = 10
    burst_ticks: int = 50
    counted_declares: int = 5
    json_path: Path | None = None
    bot_workers: int = 1
    delivery: str = "inline"  # one of DELIVERY_MODES


# -- small helpers ---------------------------------------------------------------------------


def command_label(command: tuple[str, ...]) -> str:
    name = command[0]
    if name in ("EVALSHA", "EVALSHA_RO") and len(command) > 1:
        return f"EVALSHA:{SCRIPTS.get(command[1], command[1][:8])}"
    if name == "SET" and len(command) > 1 and _HEARTBEAT_KEY.fullmatch(command[1]):
        return HEARTBEAT
    return name


def round_trip_label(rt: RoundTrip) -> str:
    return " ".join(command_label(c) for c in rt.commands)


def _locks_an_outbox(command: tuple[str, ...]) -> bool:
    return command[0] == "SET" and len(command) > 1 and bool(_DELIVERY_LOCK_KEY.fullmatch(command[1]))


def is_background(rt: RoundTrip) -> bool:
    return bool(rt.commands) and all(command_label(c) in BACKGROUND for c in rt.commands)


def is_setup(rt: RoundTrip) -> bool:
    return bool(rt.commands) and all(c[0] in CONNECTION_SETUP for c in rt.commands)


def request_round_trips(rts: Iterable[RoundTrip]) -> list[RoundTrip]:
    """Round trips caused by requests: without the reminder poll, health checks and connection setup."""
    return [rt for rt in rts if not is_background(rt) and not is_setup(rt)]


async def commandstats(admin: aioredis.Redis) -> dict[str, int]:
    raw: dict[str, Any] = await admin.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in raw.items()}
    return {name: n for name, n in calls.items() if name not in ("info", "config|resetstat", "config")}


def commandstats_name(command: tuple[str, ...]) -> str:
    """The name INFO commandstats files a command under (`client|setinfo`, `evalsha`)."""
    name = command[0].lower()
    if name in ("client", "script", "config", "memory") and len(command) > 1:
        return f"{name}|{command[1].lower()}"
    return name


def without_background(stats: dict[str, int], rts: list[RoundTrip]) -> dict[str, int]:
    """Commandstats less what the proxy saw of the reminder and delivery polls, the heartbeat,
    health checks and connection setup in the same window. A poll that finds nothing due is one
    EVALSHA running one ZRANGEBYSCORE (the idle calibration checks this); nothing is due while
    these windows run but the work the requests themselves imply."""
    seen: Counter[str] = Counter()
    for rt in rts:
        if not (is_background(rt) or is_setup(rt)):
            continue
        for command in rt.commands:
            seen[commandstats_name(command)] += 1
            if command_label(command) in ("EVALSHA:claim", "EVALSHA:claim_outbox"):
                seen["zrangebyscore"] += 1
    out = {name: n - seen[name] for name, n in stats.items()}
    return {k: v for k, v in out.items() if v > 0}


def per(stats: dict[str, int], n: int) -> dict[str, float]:
    return {k: round(v / n, 2) for k, v in sorted(stats.items())}


def checkbox_state_shown(message: JsonDict) -> dict[str, str | None]:
    """item id -> the tick description shown (None when unticked), for each checkbox item."""
    shown: dict[str, str | None] = {}
    for block in message.get("blocks", []):
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("type") != "checkboxes":
                continue
            item = ItemRef.decode(block["block_id"]).k
            initial = element.get("initial_options") or []
            shown[item] = initial[0]["description"]["text"] if initial else None
    return shown


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


@dataclass
class Context:
    options: Options
    slack: SlackStandIn
    factory: RequestFactory
    redis_server: RedisServer
    admin: aioredis.Redis
    load: LoadClient
    log_dir: Path
    session: aiohttp.ClientSession
    results: JsonDict = field(default_factory=dict)

    def bot_env(self, redis_url: str) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.url,
            "REDIS_URL": redis_url,
            "INCIDENT_STAKEHOLDER_CHANNEL": STAKEHOLDERS,
            "LOG_LEVEL": "INFO",
        }

    def bot_process(self, name: str, redis_url: str) -> BotProcesses:
        env = self.bot_env(redis_url)
        args = ["bot", "run"]
        if self.options.bot_workers > 1:
            args += ["--workers", str(self.options.bot_workers)]
        deliver = None
        if self.options.delivery == "process":
            args += ["--delivery", "none"]
            deliver = ServerProcess(f"{name}-deliver", ["bot", "deliver"], env, self.log_dir)
        return BotProcesses(ServerProcess(name, args, env, self.log_dir), deliver)

    def floor_process(self) -> ServerProcess:
        env = self.bot_env("")
        env.pop("REDIS_URL")
        return ServerProcess("floor", ["bench.floor"], env, self.log_dir)

    def activity(self, proxy: RedisCountingProxy | None = None) -> int:
        """A counter that moves whenever the bot talks to Slack (or, through the proxy, to Redis)."""
        count = len(self.slack.workspace.calls) + len(self.slack.workspace.responses)
        if proxy is not None:
            count += len(request_round_trips(proxy.round_trips))
        return count

    async def quiesce(
        self,
        *,
        idle: float,
        timeout: float,
        until: Callable[[], bool] | None = None,
        proxy: RedisCountingProxy | None = None,
        patience: float | None = None,
    ) -> bool:
        """Wait until `until()` holds and the bot has been quiet for `idle` seconds. Gives up
        (False) after `timeout`, or once the bot has been quiet for `patience` seconds while
        `until()` still does not hold (work that failed never finishes)."""
        deadline = time.monotonic() + timeout
        last = self.activity(proxy)
        changed = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now_count = self.activity(proxy)
            quiet = time.monotonic() - changed
            if now_count != last:
                last, changed = now_count, time.monotonic()
            elif (until is None or until()) and quiet >= idle:
                return True
            elif patience is not None and quiet >= patience:
                return False
        return False

    async def send(self, url: str, request: SignedRequest) -> tuple[int, float, float, bytes]:
        """One request from this process: (status, sent at, ack read at, body)."""
        start = time.perf_counter()
        async with self.session.post(url, data=request.body, headers=request.headers) as response:
            body = await response.read()
            return response.status, start, time.perf_counter(), body


def incident_channels(slack: SlackStandIn) -> list[str]:
    """Channels the bot opened for incidents, oldest first."""
    return [c.id for c in slack.channels() if c.name.startswith("inc-")]


def checklist_messages(slack: SlackStandIn, channel: str) -> list[JsonDict]:
    return [m.to_slack() for m in slack.messages(channel) if checkbox_action_ids(m.to_slack())]


def stakeholder_posts(slack: SlackStandIn) -> int:
    return len(slack.messages(STAKEHOLDERS))


# -- 1. ack latency -------------------------------------------------------------------------


# The incident id in a declare's ack ("*INC-42* declared ...").
INCIDENT_IN_ACK = r"INC-\d+"


async def run_load(
    ctx: Context,
    server: ServerProcess | BotProcesses,
    requests: list[SignedRequest],
    concurrency: int,
    capture: str | None = None,
) -> JsonDict:
    job = {
        "url": server.events_url,
        "warm_url": server.healthz_url,
        "concurrency": concurrency,
        "requests": [r.to_json() for r in requests],
        "capture": capture,
    }
    result: JsonDict = json.loads(await ctx.load.run(json.dumps(job)))
    return result


def latency_figures(result: JsonDict, cpu: float) -> JsonDict:
    latencies = result["latencies"]
    summary = summarize([ms(x) for x in latencies])
    return {
        **summary.as_dict(),
        "throughput": round(len(latencies) / result["wall"], 1) if result["wall"] else 0.0,
        "statuses": result["statuses"],
        "errors": result["errors"],
        "sample": result["samples"][:1],
        "bodies": result["bodies"],
        "cpu_ms_per_request": round(cpu * 1000 / len(latencies), 3),
    }


async def measure_pair(
    ctx: Context,
    floor: ServerProcess,
    bot: BotProcesses,
    requests: list[SignedRequest],
    concurrency: int,
    settle: Callable[[], Any],
    capture: str | None = None,
) -> tuple[JsonDict, JsonDict]:
    """The same pre-signed requests, to the floor and then to the bot; the bot's CPU (all its
    processes) and its Web API calls are counted until its work after the acks has finished too.
    Returns the figures and the load client's raw result for the bot."""
    cpu = floor.cpu_seconds()
    floor_result = await run_load(ctx, floor, requests, concurrency)
    floor_cpu = floor.cpu_seconds() - cpu
    cpu = bot.cpu_seconds()
    cpu_by_process = bot.cpu_by_process()
    calls_before = len(ctx.slack.calls())
    bot_result = await run_load(ctx, bot, requests, concurrency, capture)
    ack_cpu = bot.cpu_seconds() - cpu
    settled = await settle()
    total_cpu = bot.cpu_seconds() - cpu
    calls = Counter(c.method for c in ctx.slack.calls()[calls_before:])
    bot_figures = latency_figures(bot_result, total_cpu)
    bot_figures["cpu_ms_per_request_until_ack_run_ended"] = round(ack_cpu * 1000 / len(requests), 3)
    bot_figures["cpu_ms_per_request_by_process"] = {
        name: round((seconds - cpu_by_process[name]) * 1000 / len(requests), 3)
        for name, seconds in bot.cpu_by_process().items()
    }
    bot_figures["settled"] = bool(settled)
    bot_figures["web_api_calls_per_request"] = round(sum(calls.values()) / len(requests), 3)
    bot_figures["web_api_calls_per_request_by_method"] = per(dict(calls), len(requests))
    figures = {
        "concurrency": concurrency,
        "requests": len(requests),
        "floor": latency_figures(floor_result, floor_cpu),
        "bot": bot_figures,
    }
    return figures, bot_result


async def declare_to_checklists(ctx: Context, result: JsonDict) -> JsonDict:
    """For each declare the bot acked: from the load client reading the ack to the stand-in
    holding the last of the incident's checklist messages (its ts, the stand-in's wall clock at
    the post). A declare whose checklists are not all there is counted as incomplete."""
    playbook = load_playbook(None)
    delays: list[float] = []
    incomplete = 0
    for incident_id, acked_at in zip(result["captured"], result["acked_at"], strict=True):
        raw = await ctx.admin.get(keys.incident(incident_id)) if incident_id else None
        incident = Incident.model_validate_json(raw) if raw else None
        if incident is None or incident.channel_id is None:
            incomplete += 1
            continue
        expected = len(checklist_works(playbook.severity(incident.severity).sections_by_phase()))
        posted = [float(m["ts"]) for m in checklist_messages(ctx.slack, incident.channel_id)]
        if len(posted) < expected:
            incomplete += 1
            continue
        delays.append(ms(max(posted) - acked_at))
    return {
        "ms": summarize(delays).as_dict() if delays else None,
        "declares": len(result["acked_at"]),
        "incomplete": incomplete,
    }


def declare_requests(ctx: Context, count: int, tag: str) -> list[SignedRequest]:
    return [
        ctx.factory.slash_command(USERS[n % len(USERS)], GENERAL, f"sev3 Bench {tag} incident {n}")
        for n in range(count)
    ]


def tick_requests(ctx: Context, channels: list[str], count: int) -> list[SignedRequest]:
    """`count` clicks spread over the checklist messages of `channels`: every item of every
    message is ticked once before any is unticked, and consecutive clicks hit different messages."""
    targets: list[tuple[str, JsonDict, str]] = []
    for channel in channels:
        for message in checklist_messages(ctx.slack, channel):
            targets.extend((channel, message, action) for action in checkbox_action_ids(message))
    # Interleave: the n-th item of every message before the (n+1)-th of any.
    per_message: dict[str, list[tuple[str, JsonDict, str]]] = {}
    for target in targets:
        per_message.setdefault(target[1]["ts"], []).append(target)
    ordered = [t for rank in range(max(map(len, per_message.values()))) for ts in per_message
               if rank < len(per_message[ts]) for t in [per_message[ts][rank]]]  # fmt: skip
    requests = []
    for n in range(count):
        channel, message, action = ordered[n % len(ordered)]
        checked = (n // len(ordered)) % 2 == 0
        requests.append(ctx.factory.checkbox_click(USERS[n % len(USERS)], channel, message, action, checked))
    return requests


async def phase_latency(ctx: Context) -> JsonDict:
    options = ctx.options
    floor = ctx.floor_process()
    bot = ctx.bot_process("bot", ctx.redis_server.url)
    out: JsonDict = {"commands": [], "ticks": []}
    try:
        floor_start, _ = await floor.start()
        bot_start, bot_health = await bot.start()
        out["start_to_serving_empty"] = {
            "floor": round(floor_start, 3),
            "bot": round(bot_start, 3),
            "bot_healthz": bot_health,
        }
        declared = 0

        def declares_done() -> bool:
            return stakeholder_posts(ctx.slack) >= declared

        async def settle_declares() -> bool:
            return await ctx.quiesce(idle=0.5, timeout=180, until=declares_done, patience=3.0)

        async def settle_ticks() -> bool:
            # Past the delivery loop's look at each ticked message too, so it does not run during
            # the next measurement.
            return await ctx.quiesce(idle=RECHECK_S + 0.5, timeout=120)

        # Warm-up: first requests pay for Bolt's auth.test, script loading and connection pools.
        warm = declare_requests(ctx, 10, "warm-up")
        await run_load(ctx, floor, warm, 2)
        await run_load(ctx, bot, warm, 2)
        declared += len(warm)
        await settle_declares()
        warm_channels = incident_channels(ctx.slack)
        warm_ticks = tick_requests(ctx, warm_channels, 20)
        await run_load(ctx, floor, warm_ticks, 2)
        await run_load(ctx, bot, warm_ticks, 2)
        await settle_ticks()

        for concurrency in options.levels:
            requests = declare_requests(ctx, options.requests, f"c{concurrency}")
            declared += len(requests)
            figures, raw = await measure_pair(
                ctx, floor, bot, requests, concurrency, settle_declares, capture=INCIDENT_IN_ACK
            )
            figures["bot"]["ack_to_last_checklist"] = await declare_to_checklists(ctx, raw)
            out["commands"].append(figures)
            print(f"  commands at concurrency {concurrency}: done", flush=True)

        channels = [c for c in incident_channels(ctx.slack) if c not in warm_channels]
        for index, concurrency in enumerate(options.levels):
            # Fresh messages for each level, 32 incidents' checklists (two messages each for sev3).
            chosen = channels[index * 32 : (index + 1) * 32] or channels[:32]
            requests = tick_requests(ctx, chosen, options.requests)
            result, _ = await measure_pair(ctx, floor, bot, requests, concurrency, settle_ticks)
            result["messages"] = sum(len(checklist_messages(ctx.slack, c)) for c in chosen)
            out["ticks"].append(result)
            print(f"  ticks at concurrency {concurrency}: done", flush=True)
        out["bot_log_warnings"] = log_warnings(bot.log_paths)
    finally:
        await bot.stop()
        await floor.stop()
    return out


def log_warnings(paths: list[Path]) -> JsonDict:
    """WARNING/ERROR lines of process logs, counted by logger and message start."""
    counts: Counter[str] = Counter()
    lines = [line for path in paths for line in path.read_text(errors="replace").splitlines()]
    for line in lines:
        match = re.search(r" (WARNING|ERROR) (\S+): (.{0,70})", line)
        if match:
            counts[f"{match[1]} {match[2]}: {match[3]}"] += 1
    return dict(counts.most_common(8))


# -- 2. Redis round trips, Web API calls, bursts ----------------------------------------------


# ApiCall.at is wall-clock time; round trips and acks are timed with perf_counter.
_WALL_MINUS_PERF = time.time() - time.perf_counter()


@dataclass
class Window:
    """One request and everything the bot did for it until it fell quiet.

    Bolt notices an ack by polling every 10 ms, so the bot's work after `ack()` can start before
    the client reads the ack. The split is therefore at the ack read, the first Web API call or
    the delivery loop locking an outbox, whichever came first: nothing the bot does before acking
    calls Slack, and the outbox it delivers is written before the ack."""

    sent: float
    acked: float
    ended: float
    status: int
    round_trips: list[RoundTrip]
    api_calls: list[str]
    first_api_call: float | None = None

    @property
    def ack_point(self) -> float:
        points = [self.acked]
        if self.first_api_call is not None:
            points.append(self.first_api_call)
        points += [rt.at for rt in self.round_trips if any(map(_locks_an_outbox, rt.commands))]
        return min(points)

    @property
    def before_ack(self) -> list[RoundTrip]:
        return [rt for rt in self.round_trips if rt.at < self.ack_point]

    @property
    def after_ack(self) -> list[RoundTrip]:
        return [rt for rt in self.round_trips if rt.at >= self.ack_point]

    def as_dict(self) -> JsonDict:
        return {
            "ack_ms": ms(self.acked - self.sent),
            "status": self.status,
            "round_trips_before_ack": [round_trip_label(rt) for rt in request_round_trips(self.before_ack)],
            "round_trips_after_ack": [round_trip_label(rt) for rt in request_round_trips(self.after_ack)],
            "web_api_calls": self.api_calls,
        }


async def counted_request(
    ctx: Context,
    bot: BotProcesses,
    proxy: RedisCountingProxy,
    request: SignedRequest,
    *,
    idle: float,
    until: Callable[[], bool] | None = None,
) -> Window:
    calls_before = len(ctx.slack.workspace.calls)
    status, sent, acked, _ = await ctx.send(bot.events_url, request)
    await ctx.quiesce(idle=idle, timeout=30, until=until, proxy=proxy)
    ended = time.perf_counter()
    calls = ctx.slack.workspace.calls[calls_before:]
    rts = [rt for rt in proxy.round_trips if sent <= rt.at <= ended]
    first = calls[0].at - _WALL_MINUS_PERF if calls else None
    return Window(sent, acked, ended, status, rts, [c.method for c in calls], first)


def summarize_windows(windows: list[Window]) -> JsonDict:
    n = len(windows)
    before = sum(len(request_round_trips(w.before_ack)) for w in windows)
    after = sum(len(request_round_trips(w.after_ack)) for w in windows)
    commands = sum(sum(len(rt.commands) for rt in request_round_trips(w.round_trips)) for w in windows)
    api = Counter(call for w in windows for call in w.api_calls)
    return {
        "count": n,
        "round_trips_each": [
            [len(request_round_trips(w.before_ack)), len(request_round_trips(w.after_ack))] for w in windows
        ],
        "round_trips_before_ack": round(before / n, 2),
        "round_trips_after_ack": round(after / n, 2),
        "round_trips": round((before + after) / n, 2),
        "commands_sent": round(commands / n, 2),
        "web_api_calls": round(sum(api.values()) / n, 2),
        "web_api_calls_by_method": per(dict(api), n),
        "ack_ms_p50": summarize([ms(w.acked - w.sent) for w in windows]).p50,
        "example": windows[-1].as_dict(),
    }


async def declare_counted(
    ctx: Context, bot: BotProcesses, proxy: RedisCountingProxy, text: str
) -> tuple[Window, str, list[JsonDict]]:
    """Declare from #general; returns the window, the incident's channel and its checklists."""
    before_channels = set(incident_channels(ctx.slack))
    posts = stakeholder_posts(ctx.slack)
    window = await counted_request(
        ctx,
        bot,
        proxy,
        ctx.factory.slash_command(USERS[0], GENERAL, text),
        idle=0.4,
        until=lambda: stakeholder_posts(ctx.slack) > posts,
    )
    [channel] = [c for c in incident_channels(ctx.slack) if c not in before_channels]
    return window, channel, checklist_messages(ctx.slack, channel)


async def incident_of(ctx: Context, channel: str) -> str:
    incident = await ctx.admin.hget(keys.BY_CHANNEL, channel)
    assert incident is not None, f"no incident for {channel}"
    return str(incident)


async def incident_memory(admin: aioredis.Redis, incident_id: str) -> JsonDict:
    """Every key of one incident: type, length and MEMORY USAGE (SAMPLES 0: exact)."""
    out: JsonDict = {}
    for name, key in (
        ("record", keys.incident(incident_id)),
        ("timeline", keys.timeline(incident_id)),
        ("messages", keys.messages(incident_id)),
        ("items", keys.items(incident_id)),
        ("ticks", keys.ticks(incident_id)),
        ("revs", keys.revisions(incident_id)),
    ):
        kind = str(await admin.type(key))
        if kind == "none":
            continue
        length = {
            "string": admin.strlen,
            "list": admin.llen,
            "hash": admin.hlen,
        }[kind](key)
        out[name] = {"type": kind, "len": await length, "bytes": await admin.memory_usage(key, samples=0)}
    return out


async def phase_accounting(ctx: Context) -> JsonDict:
    options = ctx.options
    proxy = RedisCountingProxy("127.0.0.1", ctx.redis_server.port)
    await proxy.start()
    bot = ctx.bot_process("bot-counted", proxy.url)
    out: JsonDict = {}
    try:
        await bot.start()
        # Warm-up: connections, script cache, Bolt's auth.test.
        _, channel, messages = await declare_counted(ctx, bot, proxy, "sev3 Counting warm-up")
        action = checkbox_action_ids(messages[0])[0]
        await counted_request(
            ctx, bot, proxy, ctx.factory.checkbox_click(USERS[1], channel, messages[0], action, True),
            idle=REFRESH_INTERVAL + 0.5,
        )  # fmt: skip

        # Calibration: what the bot does on its own while idle.
        await ctx.admin.config_resetstat()
        start = time.perf_counter()
        await asyncio.sleep(1.0)
        idle_stats = await commandstats(ctx.admin)
        idle_rts = proxy.since(start)
        out["idle_second"] = {
            "commandstats": idle_stats,
            "round_trips": Counter(round_trip_label(rt) for rt in idle_rts),
            "left_after_subtracting_background": without_background(idle_stats, idle_rts),
        }

        # Declares, one at a time, each left to finish its work after the ack.
        await ctx.admin.config_resetstat()
        start = time.perf_counter()
        declares = []
        for n in range(options.counted_declares):
            window, channel, messages = await declare_counted(ctx, bot, proxy, f"sev3 Counted incident {n}")
            declares.append(window)
            if n == 0:
                first_declared = (channel, messages)
        stats = without_background(await commandstats(ctx.admin), proxy.since(start))
        out["declare"] = summarize_windows(declares) | {"commandstats_per_declare": per(stats, len(declares))}
        out["declare"]["commands_per_declare"] = round(sum(stats.values()) / len(declares), 2)

        # Ticks spaced further apart than the refresh interval, on a fresh client each time.
        channel, messages = first_declared
        incident_id = await incident_of(ctx, channel)
        out["bot_made_incident_memory"] = {
            "severity": "sev3",
            "keys": await incident_memory(ctx.admin, incident_id),
        }
        ts = messages[0]["ts"]
        actions = checkbox_action_ids(messages[0])
        await ctx.admin.config_resetstat()
        start = time.perf_counter()
        ticks = []
        for n in range(options.spaced_ticks):
            shown = ctx.slack.message(channel, ts).to_slack()
            checked = (n // len(actions)) % 2 == 0
            request = ctx.factory.checkbox_click(
                USERS[n % 3], channel, shown, actions[n % len(actions)], checked
            )
            ticks.append(await counted_request(ctx, bot, proxy, request, idle=REFRESH_INTERVAL + 0.5))
        # Each tick moves the delivery loop's look at the message to RECHECK_S later, so it comes
        # once, after the last tick: counted apart, it is not any one tick's.
        recheck_start = time.perf_counter()
        await asyncio.sleep(RECHECK_S + 1.0)
        recheck = request_round_trips(proxy.since(recheck_start))
        stats = without_background(await commandstats(ctx.admin), proxy.since(start))
        spaced = summarize_windows(ticks) | {"commandstats_per_tick": per(stats, len(ticks))}
        spaced["recheck_after_last_tick"] = [round_trip_label(rt) for rt in recheck]
        spaced["commands_per_tick"] = round(sum(stats.values()) / len(ticks), 2)
        spaced["spacing_s"] = summarize([b.sent - a.sent for a, b in itertools.pairwise(ticks)]).p50
        out["spaced_ticks"] = spaced

        out["burst"] = await burst(ctx, bot, proxy)
        out["bot_log_warnings"] = log_warnings(bot.log_paths)
    finally:
        await bot.stop()
        await proxy.stop()
    return out


async def burst(ctx: Context, bot: BotProcesses, proxy: RedisCountingProxy) -> JsonDict:
    """`burst_ticks` clicks within one second on one sev2 checklist message (12 items), by three
    people whose clients all show the message as it was when the burst began."""
    count = ctx.options.burst_ticks
    _, channel, messages = await declare_counted(ctx, bot, proxy, "sev2 Burst drill")
    shown = max(messages, key=lambda m: len(checkbox_action_ids(m)))
    ts = shown["ts"]
    actions = checkbox_action_ids(shown)
    incident_id = await incident_of(ctx, channel)
    clicks = []
    expected: dict[str, bool] = {}
    for n in range(count):
        action = actions[n % len(actions)]
        checked = (n // len(actions)) % 2 == 0
        clicks.append(ctx.factory.checkbox_click(USERS[n % 3], channel, shown, action, checked))
        expected[action] = checked
    spacing = 1.0 / count * 0.98

    await ctx.admin.config_resetstat()
    calls_before = len(ctx.slack.workspace.calls)
    start, start_wall = time.perf_counter(), time.time()

    async def click_at(n: int, request: SignedRequest) -> tuple[int, float]:
        await asyncio.sleep(max(0.0, start + n * spacing - time.perf_counter()))
        status, sent, acked, _ = await ctx.send(bot.events_url, request)
        return status, acked - sent

    replies = await asyncio.gather(*(click_at(n, r) for n, r in enumerate(clicks)))
    sent_within = time.perf_counter() - start
    # Past the delivery loop's look at the message too (RECHECK_S after the last click).
    await ctx.quiesce(idle=RECHECK_S + 0.5, timeout=60, proxy=proxy)
    stats = without_background(await commandstats(ctx.admin), proxy.since(start))
    calls = ctx.slack.workspace.calls[calls_before:]
    updates = [c for c in calls if c.method == "chat.update" and c.params.get("ts") == ts]
    rts = request_round_trips(proxy.since(start))

    final = checkbox_state_shown(ctx.slack.message(channel, ts).to_slack())
    stored_raw = await ctx.admin.hgetall(keys.ticks(incident_id))
    stored = {str(item): json.loads(raw) for item, raw in stored_raw.items() if item in final}
    shown_ticked = {item for item, description in final.items() if description is not None}
    who_matches = all(
        (final[item] or "").startswith(f"<@{tick['by']}>") for item, tick in stored.items() if item in final
    )
    expected_ticked = {a.split(".", 1)[1] for a, on in expected.items() if on}
    return {
        "clicks": count,
        "sent_within_s": round(sent_within, 3),
        "acks": dict(Counter(str(status) for status, _ in replies)),
        "ack_ms": summarize([ms(latency) for _, latency in replies]).as_dict(),
        "items_on_message": len(actions),
        "chat_update_calls": len(updates),
        "chat_update_rejected": sum(1 for c in updates if not c.ok),
        "web_api_calls": dict(Counter(c.method for c in calls if c.kind == "web_api")),
        "round_trips_per_tick": round(len(rts) / count, 2),
        "round_trips": dict(Counter(round_trip_label(rt) for rt in rts)),
        "commandstats_per_tick": per(stats, count),
        "final_shown_ticked": sorted(shown_ticked),
        "final_stored_ticked": sorted(stored),
        "shown_equals_stored": shown_ticked == set(stored) and who_matches,
        "stored_equals_click_order": set(stored) == expected_ticked,
        "last_update_after_burst_start_s": round(updates[-1].at - start_wall, 3) if updates else None,
    }


# -- 3. 10,000 open incidents -----------------------------------------------------------------


async def used_memory(admin: aioredis.Redis) -> int:
    info: dict[str, Any] = await admin.info("memory")
    return int(info["used_memory"])


async def phase_scale(ctx: Context) -> JsonDict:
    options = ctx.options
    admin = ctx.admin
    out: JsonDict = {"incidents": options.incidents}
    await admin.flushall()
    await asyncio.sleep(0.2)
    memory_before = await used_memory(admin)

    client = connect(ctx.redis_server.url)
    service = IncidentService(IncidentStore(client), ScheduleStore(client), load_playbook(None))
    try:
        start = time.perf_counter()
        seeded = await seed_open_incidents(service, ctx.slack, options.incidents)
        out["seed_seconds"] = round(time.perf_counter() - start, 2)
        memory_after = await used_memory(admin)
        out["used_memory_delta_per_incident"] = round((memory_after - memory_before) / len(seeded))
        out["open_index_size"] = await admin.zcard(keys.OPEN)
        out["schedule_size"] = await admin.zcard(keys.SCHEDULE_DUE)
        out["memory"] = await memory_per_incident(ctx, service, seeded)
        print("  seeded and measured memory", flush=True)

        starts = []
        for n in range(3):
            bot = ctx.bot_process(f"bot-10k-{n}", ctx.redis_server.url)
            seconds, _ = await bot.start()
            starts.append(round(seconds, 3))
            if n < 2:
                await bot.stop()
        out["start_to_serving"] = starts
        try:
            schedule = ScheduleStore(client)
            out["reminders_spread"] = await reminders(
                ctx, schedule, every_nth(seeded, options.reminders), spread=2.0
            )
            step = max(1, len(seeded) // options.reminders)
            others = every_nth(seeded, options.reminders, offset=step // 2)
            out["reminders_at_once"] = await reminders(ctx, schedule, others, spread=0.0)
            out["bot_log_warnings"] = log_warnings(bot.log_paths)
            out["apscheduler_skipped_polls"] = sum(
                path.read_text(errors="replace").count(APSCHEDULER_SKIPPED) for path in bot.log_paths
            )
        finally:
            await bot.stop()
    finally:
        await client.aclose()
    return out


async def memory_per_incident(
    ctx: Context, service: IncidentService, seeded: list[SeededIncident]
) -> JsonDict:
    """MEMORY USAGE of every key of a sample, as opened (checklists posted, nothing ticked) and
    again after ticking every item; plus each incident's share of the global indexes."""
    admin = ctx.admin
    sample = every_nth(seeded, 40)
    opened: dict[str, list[int]] = {}
    ticked: dict[str, list[int]] = {}
    shapes: dict[str, JsonDict] = {}
    for incident in sample:
        memory = await incident_memory(admin, incident.id)
        opened.setdefault(incident.severity.value, []).append(sum(k["bytes"] for k in memory.values()))
        shapes.setdefault(incident.severity.value, memory)
    for incident in sample:
        for message in await service.store.checklist_messages(incident.id):
            for item in message.item_ids():
                await service.checklists.tick_item(
                    incident.id, incident.uid, message.ts, item, USERS[1], True
                )
        memory = await incident_memory(admin, incident.id)
        ticked.setdefault(incident.severity.value, []).append(sum(k["bytes"] for k in memory.values()))
    shared = {}
    for name, key in (
        ("open index", keys.OPEN),
        ("by-channel index", keys.BY_CHANNEL),
        ("schedule due", keys.SCHEDULE_DUE),
        ("schedule every", keys.SCHEDULE_EVERY),
    ):
        usage = await admin.memory_usage(key, samples=0)
        shared[name] = round((usage or 0) / len(seeded), 1)
    return {
        "sample": len(sample),
        "opened_bytes_by_severity": {k: round(sum(v) / len(v)) for k, v in sorted(opened.items())},
        "ticked_bytes_by_severity": {k: round(sum(v) / len(v)) for k, v in sorted(ticked.items())},
        "opened_bytes_mean": round(sum(sum(v) for v in opened.values()) / len(sample)),
        "ticked_bytes_mean": round(sum(sum(v) for v in ticked.values()) / len(sample)),
        "shared_bytes_per_incident": shared,
        "shared_bytes_per_incident_total": round(sum(shared.values()), 1),
        "seeded_sev3_keys": shapes.get("sev3", {}),
    }


async def reminders(
    ctx: Context, schedule: ScheduleStore, chosen: list[SeededIncident], *, spread: float
) -> JsonDict:
    """Make `chosen` due a few seconds from now (spread over `spread` seconds), the way a status
    update reschedules them, and time each reminder's chat.postMessage against its due time."""
    playbook = load_playbook(None)
    lead = 3.0
    now = time.time()
    due: dict[str, float] = {}
    for n, incident in enumerate(chosen):
        at = now + lead + spread * n / max(1, len(chosen))
        every = playbook.severity(incident.severity).update_every
        await schedule.schedule(incident.id, datetime.fromtimestamp(at, UTC), every)
        due[incident.channel_id] = at
    calls_before = len(ctx.slack.workspace.calls)
    posted: dict[str, float] = {}
    deadline = time.monotonic() + lead + spread + 20.0
    while len(posted) < len(due) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        for call in ctx.slack.workspace.calls[calls_before:]:
            channel = call.params.get("channel")
            if call.method == "chat.postMessage" and channel in due and channel not in posted:
                posted[str(channel)] = call.at
    lateness = [ms(posted[c] - due[c]) for c in posted]
    result: JsonDict = {"scheduled": len(due), "posted": len(posted), "spread_s": spread}
    if lateness:
        result["lateness_ms"] = summarize(lateness).as_dict()
        first, last = min(posted.values()), max(posted.values())
        result["delivery_rate_per_s"] = round((len(posted) - 1) / (last - first), 1) if last > first else None
    return result


# -- the run ----------------------------------------------------------------------------------


async def run(options: Options) -> JsonDict:
    began = time.perf_counter()
    log_dir = Path(tempfile.mkdtemp(prefix="incident-bench-"))
    redis_server = RedisServer(log_dir / "redis.log")
    await redis_server.start()
    admin = aioredis.Redis(port=redis_server.port, decode_responses=True)
    load = LoadClient()
    results: JsonDict = {}
    try:
        redis_info: dict[str, Any] = await admin.info("server")
        results["environment"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": redis_info.get("redis_version"),
            "refresh_interval_s": REFRESH_INTERVAL,
            "reminder_poll_s": REMINDER_POLL,
            "recheck_after_tick_s": RECHECK_S,
            "delivery": options.delivery,
            "bot_workers": options.bot_workers,
            "logs": str(log_dir),
        }
        await load.start()
        async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
            user = SlackUser(slack, "", SIGNING_SECRET)
            ctx = Context(
                options, slack, RequestFactory(slack, user), redis_server, admin, load, log_dir, session
            )
            phases = results.setdefault("phase_seconds", {})
            print("1/3 ack latency: bot and floor", flush=True)
            mark = time.perf_counter()
            results["latency"] = await phase_latency(ctx)
            phases["latency"] = round(time.perf_counter() - mark, 1)
            print("2/3 Redis round trips, Web API calls, burst", flush=True)
            mark = time.perf_counter()
            results["accounting"] = await phase_accounting(ctx)
            phases["accounting"] = round(time.perf_counter() - mark, 1)
            print(f"3/3 {options.incidents} open incidents", flush=True)
            mark = time.perf_counter()
            results["scale"] = await phase_scale(ctx)
            phases["scale"] = round(time.perf_counter() - mark, 1)
            results["rejected_web_api_calls"] = len(
                [c for c in slack.rejected_calls() if c.kind == "web_api"]
            )
    finally:
        await load.stop()
        await admin.aclose()
        redis_server.stop()
    results["elapsed_s"] = round(time.perf_counter() - began, 1)
    return results


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="bench.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level (300)")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (1,8,32)")
    parser.add_argument("--incidents", type=int, default=10_000, help="open incidents for part 3 (10000)")
    parser.add_argument("--reminders", type=int, default=200, help="reminders per lateness run (200)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument(
        "--bot-workers", type=int, default=1, help="run the bot with `--workers N` (default 1)"
    )
    parser.add_argument(
        "--delivery",
        choices=DELIVERY_MODES,
        default="inline",
        help="inline: the acking process delivers (default); process: `run --delivery none` and a "
        "separate `incident-bot deliver`",
    )
    args = parser.parse_args(argv)
    return Options(
        requests=args.requests,
        levels=tuple(int(x) for x in args.levels.split(",")),
        incidents=args.incidents,
        reminders=min(args.reminders, args.incidents),
        json_path=args.json,
        bot_workers=args.bot_workers,
        delivery=args.delivery,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    results = asyncio.run(run(options))
    print(render_report(results))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(results, indent=2, default=str))
        print(f"figures written to {options.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
