"""Where the bot's CPU goes under load: the bot's HTTP process under py-spy while the load client
drives declares or ticks at it, and the samples summed by what the code was doing.

    python -m bench.profile [--kind tick] [--concurrency 8] [--requests 300]
        [--delivery process [--process deliver]] [--py-spy PATH]

py-spy comes with the `bench` extra (`pip install -e '.[bench]'`); it is found on PATH or beside
this Python (a venv's bin/), or named with --py-spy. Samples are taken only while the process
runs Python (idle waits are left out), and the share of each activity is counted over the event
loop's samples, so start-up imports do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from bench import bench
from bench.procs import LoadClient, ServerProcess
from bench.signed import RequestFactory
from bot.demo.harness import RedisServer
from bot.demo.standin import SlackStandIn, SlackUser

# (label, a frame that marks it), counted inclusively; a sample can fall under several.
ACTIVITIES = (
    ("HTTP request in uvicorn/Starlette (both bot and floor do this)", "RequestResponseCycle.run_asgi"),
    ("  Bolt parsing the form body", "parse_body"),
    ("Bolt listener task (before and after ack)", "run_ack_function_asynchronously"),
    ("  /incident listener", "handle_incident_command"),
    ("  checkbox listener", "handle_tick"),
    ("after the ack: ChecklistRefresher._run", "ChecklistRefresher._run"),
    ("after the ack: the delivery loop, one incident (Delivery.deliver_incident)", "deliver_incident"),
    ("  one effect: render, call Slack, record (Delivery._attempt)", "_attempt"),
    ("  re-rendering checklist messages (Delivery._refresh_stale_checklists)", "_refresh_stale_checklists"),
    ("pydantic: parsing stored JSON (model_validate_json)", "model_validate_json"),
    ("pydantic: writing JSON (model_dump_json)", "model_dump_json"),
    ("Web API calls (SlackGateway._call)", "SlackGateway._call"),
    ("  opening a new TCP connection (aiohttp BaseConnector.connect)", "BaseConnector.connect"),
    ("response_url posts (respond)", "AsyncWebhookClient.send_dict"),
    ("Block Kit to dicts (Rendered.block_dicts)", "Rendered.block_dicts"),
    ("Redis calls through the store", "translate_errors.<locals>.wrapper"),
    ("reminder poll (ReminderClock._poll)", "ReminderClock._poll"),
)
EVENT_LOOP = "Handle._run"


def _function(frame: str) -> str:
    match = re.match(r"(.*?) \(", frame)
    return match[1] if match else frame


def summarize_profile(raw: str) -> list[tuple[str, float]]:
    """(activity, share of event-loop samples) from py-spy's raw (collapsed) output."""
    loop_samples = 0
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        functions = {_function(f) for f in stack.split(";")}
        if EVENT_LOOP not in functions:
            continue
        loop_samples += int(number)
        for label, marker in ACTIVITIES:
            # Nested functions show as `Outer.<locals>.inner`: match on the name's end.
            if any(f == marker or f.endswith("." + marker) for f in functions):
                counts[label] += int(number)
    if loop_samples == 0:
        return []
    return [(label, counts[label] / loop_samples) for label, _ in ACTIVITIES]


async def stop_profiled(bot: ServerProcess) -> None:
    """SIGTERM to the bot under py-spy (py-spy itself would die without writing its samples),
    then wait for py-spy to write them and exit."""
    children = await asyncio.to_thread(Path(f"/proc/{bot.pid}/task/{bot.pid}/children").read_text)
    for child in children.split():
        os.kill(int(child), signal.SIGTERM)
    if bot.proc is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(bot.proc.wait), 30)
    await bot.stop()


async def profile(
    py_spy: str, kind: str, concurrency: int, requests: int, delivery: str, process: str
) -> str:
    log_dir = Path(tempfile.mkdtemp(prefix="incident-profile-"))
    output = log_dir / f"{kind}-c{concurrency}.txt"
    redis_server = RedisServer(log_dir / "redis.log")
    await redis_server.start()
    admin = aioredis.Redis(port=redis_server.port, decode_responses=True)
    load = LoadClient()
    await load.start()
    try:
        async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
            user = SlackUser(slack, "", bench.SIGNING_SECRET)
            ctx = bench.Context(
                bench.Options(delivery=delivery),
                slack,
                RequestFactory(slack, user),
                redis_server,
                admin,
                load,
                log_dir,
                session,
            )
            bot = ctx.bot_process("bot-profiled", redis_server.url)
            # Incidents with checklists to tick, made before profiling starts.
            await bot.start()
            warm = bench.declare_requests(ctx, 40, "warm-up")
            await bench.run_load(ctx, bot, warm, 4)
            await ctx.quiesce(idle=0.5, timeout=60, until=lambda: bench.stakeholder_posts(slack) >= len(warm))
            await bot.stop()

            profiled = bot.deliver if process == "deliver" and bot.deliver is not None else bot.http
            profiled.args = [
                py_spy,
                "record",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(output),
                "--",
                *profiled.args,
            ]
            await bot.start()
            if kind == "declare":
                batch = bench.declare_requests(ctx, requests, "profiled")
            else:
                batch = bench.tick_requests(ctx, bench.incident_channels(slack)[:32], requests)
            result = await bench.run_load(ctx, bot, batch, concurrency)
            await ctx.quiesce(idle=1.0, timeout=60)
            await stop_profiled(profiled)
            await bot.stop()
            figures = bench.latency_figures(result, 0.0)
    finally:
        await load.stop()
        await admin.aclose()
        redis_server.stop()
    lines = [
        f"{kind} x {requests} at concurrency {concurrency}: ack p50 {figures['p50']:.1f} ms, "
        f"p99 {figures['p99']:.1f} ms, {figures['throughput']:.0f} req/s",
        f"share of the event-loop CPU samples of {profiled.name} (py-spy, raw samples in {output}):",
    ]
    lines += [f"  {share * 100:5.1f}%  {label}" for label, share in summarize_profile(output.read_text())]
    return "\n".join(lines)


def find_py_spy(named: str | None) -> str | None:
    """The py-spy binary: the one named, else py-spy on PATH, else beside this Python."""
    if named is not None:
        return shutil.which(named)
    beside_python = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or shutil.which(str(beside_python))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--py-spy", metavar="PATH", help="the py-spy binary (default: py-spy on PATH or beside this Python)"
    )
    parser.add_argument("--kind", choices=("declare", "tick"), default="tick")
    parser.add_argument("--concurrency", type=_positive, default=8)
    parser.add_argument("--requests", type=_positive, default=300)
    parser.add_argument(
        "--delivery", choices=bench.DELIVERY_MODES, default="inline", help="as for bench.bench"
    )
    parser.add_argument(
        "--process",
        choices=("http", "deliver"),
        default="http",
        help="which process to profile; deliver needs --delivery process (default http)",
    )
    args = parser.parse_args(argv)
    if args.process == "deliver" and args.delivery != "process":
        parser.error("--process deliver needs --delivery process")
    py_spy = find_py_spy(args.py_spy)
    if py_spy is None:
        where = f"no executable py-spy at {args.py_spy}" if args.py_spy else "py-spy not found"
        parser.exit(2, f"bench.profile: {where}: pip install py-spy (or pip install -e '.[bench]')\n")
    run = profile(py_spy, args.kind, args.concurrency, args.requests, args.delivery, args.process)
    print(asyncio.run(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
