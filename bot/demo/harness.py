"""The real bot on a loopback port, against the Slack stand-in: for the end-to-end tests and the demo.

Requests reach the bot over HTTP, signed as Slack signs them, or over its Socket Mode connection
when it runs as a process with SLACK_APP_TOKEN (`start_bot_process`); every Web API call the bot
makes goes to the stand-in through SLACK_API_URL. Nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import redis.asyncio as aioredis
import uvicorn
from redis.exceptions import RedisError

from bot.app import IncidentBot, create_app
from bot.delivery import DeliveryConfig
from bot.demo.standin import SlackStandIn, SlackUser
from bot.errors import StoreUnavailable
from bot.models import utcnow
from bot.playbook import Playbook
from bot.settings import Settings

SIGNING_SECRET = "standin-signing-secret"
# Retries within a test's patience: Slack faults clear in a second or two here.
QUICK_DELIVERY = DeliveryConfig(lease=5.0, backoff_base=0.1, backoff_cap=1.0, poll=0.05)
STAKEHOLDER_CHANNEL = "C0MANAGERS"


@dataclass
class Running:
    slack: SlackStandIn
    bot: IncidentBot
    user: SlackUser
    url: str

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until work started by earlier requests has finished (listeners run after acks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.bot.refresher.drain()
            pending = [
                t for t in asyncio.all_tasks() if t is not asyncio.current_task() and _is_listener_task(t)
            ]
            if not pending:
                try:
                    due = await self.bot.store.undelivered(self.bot.service.clock())
                except StoreUnavailable:
                    return  # nothing can be delivered while Redis is away
                if self.bot.delivery.idle and not due:
                    return
                await asyncio.sleep(0.02)
                continue
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        raise TimeoutError("the bot did not settle")


def _is_listener_task(task: asyncio.Task[object]) -> bool:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", "")
    return "run_ack_function_asynchronously" in name or "run_async_middleware" in name


async def eventually(
    check: Callable[[], bool],
    timeout: float = 5.0,
    every: float = 0.02,
) -> None:
    """Wait until `check()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def serve_bot(bot: IncidentBot) -> AsyncIterator[str]:
    """Serve the bot's ASGI app under uvicorn on a free loopback port; yields its events URL."""
    config = uvicorn.Config(
        bot.asgi(), host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped the server
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_bot(
    *,
    slack: SlackStandIn | None = None,
    redis: aioredis.Redis | None = None,
    redis_url: str = "",
    playbook_path: Path | None = None,
    playbook: Playbook | None = None,
    stakeholder_channel: str = STAKEHOLDER_CHANNEL,
    create_channels: bool = True,
    clock: Callable[[], datetime] = utcnow,
    refresh_interval: float = 0.05,
    reminder_poll: float = 0.1,
    slack_timeout: float = 2.0,
    delivery: DeliveryConfig = QUICK_DELIVERY,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Running]:
    """A stand-in Slack (started here unless given) and the bot serving HTTP against it, on
    `redis` if given, else on REDIS_URL `redis_url` (as configured), else on the embedded store.
    `settings`: more settings by their variable's name (`INCIDENT_ALERT_TOKEN`, `PROMETHEUS_URL`)."""
    async with contextlib.AsyncExitStack() as stack:
        if slack is None:
            slack = await stack.enter_async_context(SlackStandIn())
        configured = Settings(
            **dict[str, Any](settings or {}),
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
            REDIS_URL=redis_url,
            INCIDENT_PLAYBOOK=playbook_path,
            INCIDENT_STAKEHOLDER_CHANNEL=stakeholder_channel,
            INCIDENT_CREATE_CHANNELS=create_channels,
        )
        bot = create_app(
            configured,
            redis=redis,
            playbook=playbook,
            clock=clock,
            refresh_interval=refresh_interval,
            reminder_poll=reminder_poll,
            slack_timeout=slack_timeout,
            delivery=delivery,
        )
        url = await stack.enter_async_context(serve_bot(bot))
        yield Running(slack=slack, bot=bot, user=SlackUser(slack, url, SIGNING_SECRET), url=url)


# -- the bot as a process: `python -m bot run` ------------------------------------------------

Readiness = Callable[[], Awaitable[bool]]


def bot_process_env(slack: SlackStandIn, redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `python -m bot run` process serving HTTP against the stand-in:
    this process's own, less any Socket Mode token, plus `settings` (e.g. INCIDENT_PLAYBOOK)."""
    env = {k: v for k, v in os.environ.items() if k != "SLACK_APP_TOKEN"}
    env.update(
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url,
        REDIS_URL=redis_url,
        **settings,
    )
    return env


async def start_bot_process(
    env: Mapping[str, str],
    ready: Readiness,
    *,
    args: Sequence[str] = (),
    timeout: float = 10.0,
    log_path: Path | None = None,
) -> asyncio.subprocess.Process:
    """Runs `python -m bot run *args` with exactly `env`; returns once `ready()` is true.

    The process is killed if it exits or is not ready within `timeout` seconds. Its output is
    appended to `log_path`, or dropped.
    """
    output = _log_file(log_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", *args, env=dict(env), stdout=output, stderr=output
        )
    finally:
        if not isinstance(output, int):
            output.close()
    deadline = time.monotonic() + timeout
    while proc.returncode is None:
        if await ready():
            return proc
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    await stop_bot_process(proc)
    raise RuntimeError(f"the bot process was not ready in {timeout}s (exit code {proc.returncode})")


async def stop_bot_process(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL, as a crash would: no shutdown hooks run."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_healthy(port: int) -> Readiness:
    """Ready when the bot answers GET /healthz on the port."""

    async def check() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                return response.status == 200
        except aiohttp.ClientError:
            return False

    return check


def socket_connected(slack: SlackStandIn) -> Readiness:
    """Ready when the bot holds a Socket Mode connection to the stand-in."""

    async def check() -> bool:
        return bool(slack.socket_connections())

    return check


def _log_file(path: Path | None) -> IO[bytes] | int:
    return path.open("ab") if path is not None else subprocess.DEVNULL


def update_modal_values(status: str, impact: str, state: str, next_update: str) -> dict[str, object]:
    """`view.state.values` of the update modal as Slack sends them when a person submits it."""
    return {
        "status": {"value": {"type": "static_select", "selected_option": {"value": status}}},
        "impact": {"value": {"type": "plain_text_input", "value": impact}},
        "current_state": {"value": {"type": "plain_text_input", "value": state}},
        "next_update": {"value": {"type": "static_select", "selected_option": {"value": next_update}}},
    }


class RedisServer:
    """A private redis-server without persistence on a free loopback port; it can be stopped
    (killed, as a crash would) and started again on the same port."""

    def __init__(self, log_file: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.log_file = log_file
        self.extra_args = list(extra_args)  # e.g. ["--replicaof", "127.0.0.1", "6380"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.directory: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        if self.log_file is not None:
            args += ["--logfile", str(self.log_file)]
        # Its own working directory: a replica's full sync writes an RDB file there.
        self.directory = tempfile.mkdtemp(prefix="incident-bot-redis-")
        args += ["--dir", self.directory, *self.extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        client = aioredis.Redis(port=self.port)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except (OSError, RedisError):
                    await asyncio.sleep(0.025)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
