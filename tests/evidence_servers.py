"""Real Prometheus and Alertmanager on free loopback ports, and a small exporter for them to scrape.

`Exporter` serves `/metrics` in Prometheus's text format from a thread: two counters,
`http_requests_total{service="checkout",code="200"}` and `{code="500"}`, growing at
`requests_per_second` with a share `error_rate` of 5xx. `set_error_rate()` switches that share at
a moment the test knows (it returns it). The counters follow wall-clock time between scrapes, so
over any interval entirely before or after the switch, the 5xx ratio Prometheus computes is
exactly the rate in force.

`PrometheusServer` scrapes given targets every second; `AlertmanagerServer` runs alone
(`--cluster.listen-address=`) and sends every alert group to one webhook with a bearer token,
with short group timings so notifications repeat within seconds. Both are this machine's Debian
binaries (`prometheus`, `prometheus-alertmanager`, or upstream's `alertmanager`), each with its
config, data and log in a temporary directory, started with `start()` (or `with`), which returns
once the server answers `/-/ready`; they are SIGKILLed by pid on `stop()`, when starting fails,
and, as a last resort, when the interpreter exits. On two cores each is ready in about 0.3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiohttp
import yaml
from aiohttp import web

from tests.topologies import LOOPBACK, free_ports

POLL_SECONDS = 0.05
START_TIMEOUT = 15.0
SERVICE = "checkout"
METRIC = "http_requests_total"
ALERT_TOKEN = "test-alert-token"  # the bearer token Alertmanager sends to the webhook


class EvidenceServerError(RuntimeError):
    """A server did not come up, or died when it should not have."""


def server_binary(*names: str) -> str:
    """The first of `names` found on PATH; FileNotFoundError (a skip reason) if none is."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise FileNotFoundError(f"{' or '.join(names)} is not installed (Debian: apt-get install {names[0]})")


def prometheus_binary() -> str:
    return server_binary("prometheus")


def alertmanager_binary() -> str:
    return server_binary("prometheus-alertmanager", "alertmanager")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Exporter:
    """A `/metrics` endpoint whose 5xx share the test switches (see the module doc)."""

    def __init__(self, *, requests_per_second: float = 100.0, error_rate: float = 0.01) -> None:
        self.requests_per_second = requests_per_second
        self._error_rate = error_rate
        # Counters of a process that has served for a while: with counters near zero, Prometheus's
        # rate() would extrapolate each series differently and skew the ratio.
        self._ok = 1_000_000.0
        self._errors = self._ok * error_rate
        self._last = time.time()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise EvidenceServerError("the exporter is not started")
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        """`127.0.0.1:PORT`, as a scrape config names it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def error_rate(self) -> float:
        return self._error_rate

    def set_error_rate(self, rate: float) -> datetime:
        """From now on, a share `rate` of requests fail; returns the moment of the switch."""
        with self._lock:
            self._advance()
            self._error_rate = rate
            return datetime.fromtimestamp(self._last, UTC)

    def _advance(self) -> None:
        now = time.time()
        served = max(0.0, now - self._last) * self.requests_per_second
        self._errors += served * self._error_rate
        self._ok += served * (1 - self._error_rate)
        self._last = now

    def exposition(self) -> str:
        with self._lock:
            self._advance()
            ok, errors = self._ok, self._errors
        return (
            f"# HELP {METRIC} Requests served, by status code.\n"
            f"# TYPE {METRIC} counter\n"
            f'{METRIC}{{service="{SERVICE}",code="200"}} {ok!r}\n'
            f'{METRIC}{{service="{SERVICE}",code="500"}} {errors!r}\n'
        )

    def start(self) -> Self:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """One server process: its binary, port, directory, log and pid."""

    def __init__(self, name: str, binary: str, directory: Path, port: int) -> None:
        self.name = name
        self.binary = binary
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<{self.name} {LOOPBACK}:{self.port} pid={self.pid}>"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.log"

    def start(self, args: Sequence[str]) -> None:
        if self.running():
            raise EvidenceServerError(f"{self.name} is already running")
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by pid, as a crash would, and reap it. Does nothing if it is not running."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def log_tail(self, lines: int = 10) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self, timeout: float) -> None:
        """Until `GET /-/ready` answers 200; raises if the process exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        reason = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                tail = self.log_tail()
                self.kill()
                if "address already in use" in tail:
                    raise _PortTaken(f"{self.name}: port {self.port} was taken")
                raise EvidenceServerError(f"{self.name} exited; its log ends:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
                    reason = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                reason = repr(exc)
            time.sleep(POLL_SECONDS)
        raise EvidenceServerError(
            f"{self.name} not ready after {timeout}s ({reason}); log:\n{self.log_tail()}"
        )


class _PortTaken(EvidenceServerError):
    pass


def _kill(processes: list[ServerProcess]) -> None:
    for process in processes:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            process.kill()


class _Server:
    """What both servers share: the temporary directory, starting (again on a lost port), stopping."""

    name = "server"

    def __init__(self, binary: str, *, start_timeout: float = START_TIMEOUT) -> None:
        self.binary = binary
        self.start_timeout = start_timeout
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self._processes: list[ServerProcess] = []
        self._finalizer = weakref.finalize(self, _kill, self._processes)

    @property
    def process(self) -> ServerProcess:
        if not self._processes:
            raise EvidenceServerError(f"{self.name} is not started")
        return self._processes[0]

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> Self:
        """Start the server and return once it is ready; on failure, leave nothing running."""
        try:
            for attempt in range(3):
                (port,) = free_ports(1)
                process = ServerProcess(self.name, self.binary, self.directory, port)
                self._processes[:] = [process]
                config = self.directory / f"{self.name}.yml"
                config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
                process.start(self.args(config, port))
                try:
                    process.wait_ready(self.start_timeout)
                    return self
                except _PortTaken:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """SIGKILL the server by pid (a test's "Prometheus is down"); its directory stays."""
        _kill(self._processes)

    def stop(self) -> None:
        """Kill the server and remove its directory. Safe to call twice."""
        _kill(self._processes)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        # `with server.start():` too: a second start would lose the first process, left running.
        return self if self._processes and self.process.running() else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def args(self, config: Path, port: int) -> list[str]:
        raise NotImplementedError


class PrometheusServer(_Server):
    """Prometheus scraping `targets` (`host:port`) as job `checkout` every `scrape_interval`."""

    name = "prometheus"

    def __init__(self, targets: Sequence[str], *, scrape_interval: str = "1s", **kwargs: Any) -> None:
        super().__init__(prometheus_binary(), **kwargs)
        self.targets = list(targets)
        self.scrape_interval = scrape_interval

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": SERVICE, "static_configs": [{"targets": self.targets}]}],
        }

    def args(self, config: Path, port: int) -> list[str]:
        return [
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
        ]

    async def sample_count(self, selector: str, since: datetime | None = None) -> int:
        """How many samples the fewest-sampled series of `selector` has (since `since`, else in
        the last hour); 0 when there is none yet."""
        seconds = 3600 if since is None else max(1, math.ceil((utcnow() - since).total_seconds()))
        query = f"min(count_over_time({selector}[{seconds}s]))"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"{self.url}/api/v1/query", params={"query": query}) as response,
        ):
            answer = await response.json()
        result = answer.get("data", {}).get("result", [])
        return int(float(result[0]["value"][1])) if result else 0

    async def wait_for_samples(
        self, selector: str, count: int, *, since: datetime | None = None, timeout: float = 15.0
    ) -> int:
        """Wait (at most `timeout` seconds) until every series of `selector` has `count` samples
        (since `since`); returns how many the fewest-sampled has."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            if not self.process.running():
                raise EvidenceServerError(f"prometheus exited; its log ends:\n{self.process.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
                seen = await self.sample_count(selector, since)
            if seen >= count:
                return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{selector}: {seen} of {count} samples after {timeout}s")
            await asyncio.sleep(0.2)


class AlertmanagerServer(_Server):
    """Alertmanager alone, routing every alert to `webhook_url` with `Authorization: Bearer
    <token>`. Groups by `group_by`; first notification after `group_wait`, then again every
    `group_interval` when the group changed and every `repeat_interval` while it fires."""

    name = "alertmanager"

    def __init__(
        self,
        webhook_url: str,
        token: str,
        *,
        group_by: Sequence[str] = ("alertname", "service"),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "2s",
        **kwargs: Any,
    ) -> None:
        super().__init__(alertmanager_binary(), **kwargs)
        self.webhook_url = webhook_url
        self.token = token
        self.group_by = list(group_by)
        self.timings = {
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        }

    def config(self) -> dict[str, Any]:
        return {
            "route": {"receiver": "incident-bot", "group_by": self.group_by, **self.timings},
            "receivers": [
                {
                    "name": "incident-bot",
                    "webhook_configs": [
                        {
                            "url": self.webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": self.token}},
                        }
                    ],
                }
            ],
        }

    def args(self, config: Path, port: int) -> list[str]:
        return [
            f"--config.file={config}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",  # alone: no gossip port, no peers to wait for
            "--log.level=warn",
        ]

    async def post_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Fire (or, with `endsAt` in the past, resolve) alerts through `POST /api/v2/alerts`, as
        Prometheus does: each a dict of `labels`, `annotations`, optional `startsAt`, `endsAt`,
        `generatorURL`."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.post(f"{self.url}/api/v2/alerts", json=list(alerts)) as response,
        ):
            if response.status != 200:
                raise EvidenceServerError(
                    f"POST /api/v2/alerts: HTTP {response.status} {await response.text()}"
                )


def alert(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    summary: str | None = None,
    ends_at: datetime | None = None,
    generator_url: str = "",
) -> dict[str, Any]:
    """One alert for `post_alerts`."""
    body: dict[str, Any] = {"labels": {"alertname": name, **(labels or {})}, "annotations": {}}
    if summary is not None:
        body["annotations"]["summary"] = summary
    if ends_at is not None:
        body["endsAt"] = ends_at.isoformat().replace("+00:00", "Z")
    if generator_url:
        body["generatorURL"] = generator_url
    return body


class Delivery(NamedTuple):
    """One request the webhook receiver got."""

    at: datetime
    authorization: str | None
    body: bytes


class WebhookReceiver:
    """A tiny aiohttp server on a free loopback port, standing where the bot's webhook will be:
    it records every POST to `path` and answers `status` (200 unless the test says otherwise).
    Runs on the test's event loop: `async with WebhookReceiver() as receiver:`."""

    def __init__(self, path: str = "/alerts/alertmanager") -> None:
        self.path = path
        self.status = 200
        self.deliveries: list[Delivery] = []
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    async def _receive(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(utcnow(), request.headers.get("Authorization"), await request.read()))
        self._arrived.set()
        return web.Response(status=self.status)

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Delivery]:
        """Until `count` deliveries have arrived in all (at most `timeout` seconds); returns them."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.deliveries)} of {count} webhook deliveries after {timeout}s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return list(self.deliveries)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class StandIn:
    """A stand-in for Prometheus's HTTP API at `url` (under a path prefix, `/prom/`), for what the
    real one will not do on demand: answers every call with what the test set (late, or not at
    all if told), and records the forms it was sent. `async with StandIn() as stand_in:`."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes | str | dict[str, Any] = {}
        self.content_type = "application/json"
        self.delay = 0.0
        self.hang_ups = 0  # how many of the next requests get their connection closed, unanswered
        self.forms: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, 0).start()
        self.url = f"http://{LOOPBACK}:{self._runner.addresses[0][1]}/prom/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def answer(self, data: dict[str, Any], status: int = 200) -> None:
        self.status, self.body = status, data

    def matrix(self, *series: dict[str, Any]) -> None:
        self.answer({"status": "success", "data": {"resultType": "matrix", "result": list(series)}})

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.forms.append({k: str(v) for k, v in (await request.post()).items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hang_ups and request.transport is not None:
            self.hang_ups -= 1
            request.transport.close()  # aiohttp then drops the response below, unsent
            return web.Response()
        if isinstance(self.body, dict):
            return web.json_response(self.body, status=self.status)
        return web.Response(body=self.body, status=self.status, content_type=self.content_type)
