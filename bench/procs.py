"""The processes a benchmark run owns: a private redis-server, the bot (its HTTP process, and its
delivery process when the Slack work is delivered apart), the floor, the load client.

Each is started here, by its own id, and stopped here; nothing else is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import aiohttp

from bot.demo.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The bot's settings: cleared from the inherited environment so only what the bench sets applies.
_BOT_ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "REDIS_URL",
    "INCIDENT_PLAYBOOK",
    "INCIDENT_STAKEHOLDER_CHANNEL",
    "INCIDENT_CREATE_CHANNELS",
    "INCIDENT_CHANNEL_PREFIX",
    "PORT",
    "LOG_LEVEL",
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process and of its running descendants (uvicorn's
    worker processes under `--workers N`), from /proc (10 ms resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it exited meanwhile
    own = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return children


class ServerProcess:
    """A Python HTTP server in its own process (the bot or the floor), with its start timed."""

    def __init__(self, name: str, module_args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.args = [sys.executable, "-m", *module_args, "--port", str(self.port), "--host", "127.0.0.1"]
        base = {k: v for k, v in os.environ.items() if k not in _BOT_ENV}
        self.env = {**base, **env}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[Any] | None = None
        self.started_at = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/slack/events"

    @property
    def healthz_url(self) -> str:
        return f"{self.base_url}/healthz"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 20.0) -> tuple[float, Any]:
        """Start the process; returns (seconds from spawn to /healthz answering 200, its body)."""
        self._log = self.log_path.open("ab")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the wait below is async
            self.args, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = self.started_at + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    await self.stop()
                    raise RuntimeError(f"{self.name} exited with {code}; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.healthz_url) as response:
                        if response.status == 200:
                            return time.perf_counter() - self.started_at, await response.json()
                await asyncio.sleep(0.01)
        await self.stop()
        raise TimeoutError(f"{self.name} did not serve /healthz within {timeout}s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (uvicorn shuts down gracefully, running the lifespan's close), then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)
            except TimeoutError:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class BotProcesses:
    """The bot under test: its HTTP process, plus an `incident-bot deliver` process when the Slack
    work is delivered apart from the acks (the HTTP process then runs with `--delivery none`)."""

    def __init__(self, http: ServerProcess, deliver: ServerProcess | None = None) -> None:
        self.http = http
        self.deliver = deliver

    @property
    def processes(self) -> list[ServerProcess]:
        return [self.http] if self.deliver is None else [self.http, self.deliver]

    @property
    def events_url(self) -> str:
        return self.http.events_url

    @property
    def healthz_url(self) -> str:
        return self.http.healthz_url

    @property
    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]

    async def start(self, timeout: float = 20.0) -> tuple[float, Any]:
        """The delivery process first, so the first request's work is delivered; returns the HTTP
        process's (start to serving, /healthz body)."""
        if self.deliver is not None:
            await self.deliver.start(timeout)
        try:
            return await self.http.start(timeout)
        except BaseException:
            await self.stop()
            raise

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.processes)

    def cpu_by_process(self) -> dict[str, float]:
        return {p.name: p.cpu_seconds() for p in self.processes}

    async def stop(self) -> None:
        for process in reversed(self.processes):
            await process.stop()


class LoadClient:
    """The `bench.loadgen` process: sends pre-signed requests and reports latencies."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )

    async def run(self, job_line: str, timeout: float = 120.0) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(job_line.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the load client exited")
        return line.decode()

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None
