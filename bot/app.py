"""The factory: builds the Bolt app, its services and the ASGI app from settings. Nothing at import."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import is_action, is_event, is_shortcut, is_slash_command, is_view
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import handlers
from bot.alert_store import AlertGroupStore
from bot.change_log import ChangeLog
from bot.change_receiver import ChangeReceiver
from bot.charting import ChartMaker
from bot.delivery import Delivery, DeliveryConfig
from bot.errors import StoreLost, StoreUnavailable
from bot.http_edge import SlackRequestGuard, install_error_handler
from bot.http_edge import bolt_request as parse_bolt_request
from bot.intake import ALERTS_PATH, CHANGES_PATH, Answer, Receiver, answer
from bot.metrics import CONTENT_TYPE, AckKind, Metrics
from bot.models import utcnow
from bot.playbook import Playbook, load_playbook
from bot.refresher import ChecklistRefresher
from bot.reminders import deliver_due
from bot.retention import Retention
from bot.schedule_store import ScheduleStore
from bot.scheduler import ReminderClock
from bot.service import IncidentService
from bot.settings import Settings
from bot.slack_gateway import MeasuredWebClient, SlackGateway
from bot.store import IncidentStore, connect, embedded, replica_wait_for
from bot.triage import AlertReceiver, AlertTriage
from bot.triage_delivery import TriageDelivery
from handlers.deps import Deps, install

log = logging.getLogger(__name__)

EMBEDDED_WARNING = (
    "REDIS_URL is not set: running on the embedded in-memory store. "
    "ALL INCIDENT STATE IS LOST WHEN THIS PROCESS STOPS. Set REDIS_URL for real use."
)


@dataclass
class IncidentBot:
    settings: Settings
    bolt: AsyncApp
    service: IncidentService
    store: IncidentStore
    refresher: ChecklistRefresher
    clock: ReminderClock
    delivery: Delivery
    # False: this process only answers Slack; `incident-bot deliver` runs the delivery loop, the
    # reminder clock and the digest against the same Redis.
    deliver_here: bool = True
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    # The evidence endpoints (bot.intake), by path; a path not here answers 404.
    receivers: dict[str, Receiver] = dataclasses.field(default_factory=dict)
    # The triage messages of alerts from Alertmanager, when the bot takes them (INCIDENT_ALERT_TOKEN).
    triage: TriageDelivery | None = None

    @property
    def slack_client(self) -> AsyncWebClient:
        client: AsyncWebClient = self.bolt.client
        return client

    def asgi(self) -> Starlette:
        """The HTTP face: `POST /slack/events`, `GET /healthz`, `/readyz` and `/metrics`."""
        if not self.settings.slack_signing_secret:
            raise ValueError("serving HTTP needs SLACK_SIGNING_SECRET to verify Slack's requests")
        async def events(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            body = await request.body()
            headers: dict[str, str | Sequence[str]] = dict(request.headers)
            bolt_request = parse_bolt_request(body, request.url.query, headers)
            response = to_starlette_response(await self.bolt.async_dispatch(bolt_request))
            await response(scope, receive, send)

        async def healthz(request: Request) -> Response:
            return JSONResponse(await self.health())

        async def readyz(request: Request) -> Response:
            ready, reason = await self.readiness()
            return JSONResponse({"ready": ready, "reason": reason}, status_code=200 if ready else 503)

        async def metrics(request: Request) -> Response:
            return Response(await self.metrics_page(), headers={"Content-Type": CONTENT_TYPE})

        async def evidence(request: Request) -> Response:
            length = request.headers.get("content-length", "")
            given = await self.receive_evidence(
                request.url.path,
                request.headers.get("authorization", ""),
                int(length) if length.isdigit() else None,
                request.stream,
            )
            return JSONResponse(given.body, status_code=given.status)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.close()

        return Starlette(
            routes=[
                # The guard is an ASGI app, so Starlette routes to it as is: only this route has it.
                Route(
                    "/slack/events",
                    SlackRequestGuard(events, signing_secret=self.settings.slack_signing_secret),
                    methods=["POST"],
                ),
                Route("/healthz", healthz, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
                Route(ALERTS_PATH, evidence, methods=["POST"]),
                Route(CHANGES_PATH, evidence, methods=["POST"]),
            ],
            lifespan=lifespan,
        )

    async def readiness(self) -> tuple[bool, str]:
        """Ready: Redis answers and is the store this bot knows (no data loss)."""
        try:
            await self.store.check_identity()
            await self.store.every_master_answers()
        except StoreUnavailable as exc:
            return False, f"the incident store (Redis) is unreachable: {exc}"
        except StoreLost as exc:
            return False, str(exc)
        except Exception as exc:  # a probe answers 503 with a reason, never a 500
            log.exception("readiness check failed")
            return False, f"the readiness check failed: {type(exc).__name__}"
        return True, "ready"

    async def receive_evidence(
        self,
        path: str,
        authorization: str,
        declared_length: int | None,
        chunks: Callable[[], AsyncIterator[bytes]],
    ) -> Answer:
        """An evidence endpoint's answer (bot.intake), the same over HTTP and beside Socket Mode."""
        receiver = self.receivers.get(path)
        return await answer(receiver, self.settings.alert_token, authorization, declared_length, chunks)

    async def metrics_page(self) -> bytes:
        """Prometheus' text format: what this process counted (every worker's, under
        `run --workers`) and the shared state as Redis holds it now."""
        return await self.metrics.page(self.store)

    async def health(self) -> dict[str, object]:
        """Alive, and whether Redis answers (the bot keeps serving while it does not)."""
        try:
            redis_ok = await self.store.ping()
        except StoreUnavailable:
            redis_ok = False
        return {"ok": True, "redis": "up" if redis_ok else "down"}

    async def start(self) -> None:
        """Background work beside the listeners: the managers' digest and the reminder clock.

        Also one HTTP session for every Web API call (slack_sdk otherwise opens a connection,
        and against Slack a TLS handshake, per call); it needs the running loop, so it starts here.
        """
        if self.slack_client.session is None:
            self.slack_client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.slack_client.timeout)
            )
        try:
            await self.store.known_identity()
        except StoreUnavailable as exc:
            log.warning("starting without the incident store (Redis), which is unreachable: %s", exc)
        except StoreLost as exc:
            log.error("%s", exc)
        if not self.deliver_here:
            return
        try:
            await self.service.reminders.start_digest()
        except StoreUnavailable as exc:
            log.warning("digest not scheduled yet, store unavailable: %s", exc)
        self.clock.start()
        self.delivery.start()
        if self.triage is not None:
            self.triage.start()

    async def close(self) -> None:
        self.clock.stop()
        await self.delivery.stop()
        if self.triage is not None:
            await self.triage.stop()
        await self.refresher.drain()
        await self.store.close()
        if self.slack_client.session is not None:
            await self.slack_client.session.close()
            self.slack_client.session = None


def create_app(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    playbook: Playbook | None = None,
    clock: Callable[[], datetime] = utcnow,
    refresh_interval: float = 0.3,
    reminder_poll: float = 0.25,
    slack_timeout: float = 10.0,
    delivery: DeliveryConfig | None = None,
    deliver_here: bool = True,
    metrics: Metrics | None = None,
) -> IncidentBot:
    """Build the bot. `redis` and `playbook` default to what the settings name. With
    `deliver_here=False`, `start()` leaves delivery and reminders to another process.
    `metrics` defaults to a registry of this bot's own (shared by the workers under
    `run --workers`, through PROMETHEUS_MULTIPROC_DIR)."""
    metrics = metrics or Metrics.for_this_process()
    if playbook is None:
        playbook = load_playbook(settings.incident_playbook)
    if redis is None:
        if settings.redis_url:
            redis = connect(settings.redis_url, sentinel_password=settings.redis_sentinel_password or None)
        else:
            redis = embedded()
    wait = None
    if settings.redis_url:
        wait = replica_wait_for(settings.redis_url, settings.redis_wait_replicas, settings.redis_wait_ms)
    store = IncidentStore(
        redis,
        wait,
        retention=settings.incident_retention,
        on_write=metrics.incident_written,
        on_failure=metrics.redis_error,
    )
    schedule = ScheduleStore(redis, on_failure=metrics.redis_error)
    service = IncidentService(store, schedule, playbook, clock)

    # No retry handlers in the client: the delivery loop retries with backoff (honouring
    # Retry-After) without holding anything up, and knows when an answer was lost.
    client = MeasuredWebClient(
        on_call=metrics.slack_call,
        token=settings.slack_bot_token or None,
        base_url=settings.api_base_url,
        timeout=int(slack_timeout),
        # slack_sdk's default handler re-sends a call whose connection dropped: a post whose
        # answer was lost would be posted twice.
        retry_handlers=[],
    )
    client.timeout = slack_timeout  # type: ignore[assignment]  # aiohttp takes fractions of seconds
    with _token_warning_dropped():
        bolt = TimedApp(
            metrics=metrics,
            client=client,
            signing_secret=settings.slack_signing_secret,
            # Bolt skips verification only for Socket Mode envelopes, never for HTTP.
            request_verification_enabled=True,
        )
    slack = SlackGateway(client)
    refresher = ChecklistRefresher(store, slack, min_interval=refresh_interval)
    stakeholders = settings.stakeholder_channel or None
    config = delivery or DeliveryConfig()
    config = dataclasses.replace(
        config,
        stakeholder_channel=stakeholders,
        create_channels=settings.create_channels,
        channel_prefix=settings.channel_prefix,
    )
    change_log = ChangeLog(store) if settings.alert_token else None
    charts = None
    if settings.prometheus_url:
        charts = ChartMaker(
            prometheus_url=settings.prometheus_url,
            session=lambda: client.session,  # the one start() opens, shared with Slack's calls
            services=playbook.services,
            changes=change_log,
        )
    outbox = Delivery(service, slack, config, clock, metrics, charts=charts)
    triage = None
    if settings.alert_token:
        triage = AlertTriage(service, AlertGroupStore(store), changes=change_log, charts=charts is not None)
    deps = Deps(
        service=service,
        slack=slack,
        refresher=refresher,
        delivery=outbox,
        create_channels=settings.create_channels,
        changes=change_log,
        charts=charts is not None,
        triage=triage,
    )
    install(bolt, deps)
    install_error_handler(bolt)
    handlers.register(bolt)
    reminder_clock = ReminderClock(
        lambda: deliver_due(service, slack, stakeholders, outbox.wake),
        poll_seconds=reminder_poll,
        housekeeping=Retention(store, clock).run,
    )
    bot = IncidentBot(
        settings, bolt, service, store, refresher, reminder_clock, outbox, deliver_here, metrics
    )
    if change_log is not None:
        bot.receivers[CHANGES_PATH] = ChangeReceiver(change_log, clock)
    if triage is not None:
        triage_channel = settings.triage_channel or stakeholders
        bot.triage = TriageDelivery(
            triage, slack, config, channel=triage_channel, owner=outbox.owner, wake_outbox=outbox.wake
        )
        triage.wake = bot.triage.wake
        bot.receivers[ALERTS_PATH] = AlertReceiver(triage)
    return bot


class TimedApp(AsyncApp):
    """Bolt, timing each request from its dispatch (where HTTP and Socket Mode requests both
    pass, before the signature and authorization checks) to the answer Slack gets: the ack, or
    Bolt's own answer when no listener acked in time."""

    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ack_metrics = metrics

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        try:
            return await super().async_dispatch(req)
        finally:
            self._ack_metrics.acked(request_kind(req.body), time.perf_counter() - started)


def request_kind(body: dict[str, Any]) -> AckKind:
    if is_slash_command(body):
        return AckKind.COMMAND
    if is_action(body):
        return AckKind.ACTION
    if is_view(body):
        return AckKind.VIEW
    if is_shortcut(body):
        return AckKind.SHORTCUT
    if is_event(body):
        return AckKind.EVENT
    return AckKind.OTHER


@contextlib.contextmanager
def _token_warning_dropped() -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns on
    every start that the token "will be unused": it is the very token the client carries."""
    unused = warning_client_prioritized_and_token_skipped()

    def drop(record: logging.LogRecord) -> bool:
        return record.getMessage() != unused

    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    bolt_log.addFilter(drop)
    try:
        yield
    finally:
        bolt_log.removeFilter(drop)


def asgi_from_environment() -> Starlette:
    """The ASGI app built from the environment, for each of uvicorn's worker processes."""
    return create_app(Settings()).asgi()


def asgi_without_delivery_from_environment() -> Starlette:
    """The same for `run --workers N --delivery none`: the workers only answer Slack."""
    return create_app(Settings(), deliver_here=False).asgi()
