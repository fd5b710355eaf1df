"""Prometheus metrics, served as `GET /metrics`: what happened in this process (counters and
histograms), and the state every process shares, read from Redis when scraped (gauges).

Each bot has a `Metrics` of its own, with a registry of its own: a test process builds many bots,
and prometheus-client's default registry would refuse the second one's metrics. Under
`run --workers N` the parent sets PROMETHEUS_MULTIPROC_DIR before the workers start, so each
worker's counters go to files there and a scrape, whichever worker answers it, sums them all.
The gauges are not counted by any process: they are read from Redis at each scrape, so every
process reports the same value and none is summed over workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from bot.errors import StoreUnavailable
from bot.logs import Throttled
from bot.models import Incident, Severity, Status
from bot.store import IncidentStore

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# A scrape waits this long for Redis, then answers without the shared gauges.
SCRAPE_DEADLINE = 2.0

# Slack wants an ack within 3 seconds: the buckets are finest around that.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0)
# The reminder clock polls four times a second: lateness beyond a few seconds means no process ran.
LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
MINUTE, HOUR = 60.0, 3600.0
MILESTONE_BUCKETS = (
    *(m * MINUTE for m in (1, 5, 10, 15, 30)),
    *(h * HOUR for h in (1, 2, 4, 8, 24, 72, 168)),
)


class AckKind(StrEnum):
    COMMAND = "command"
    ACTION = "action"
    VIEW = "view"
    SHORTCUT = "shortcut"
    EVENT = "event"
    OTHER = "other"


class Milestone(StrEnum):
    """How far an incident got, as its postmortem draft names the steps."""

    IDENTIFIED = "identified"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


MILESTONE_HELP = {
    Milestone.IDENTIFIED: "the status Identified or a confirmed hypothesis, whichever came first",
    Milestone.MITIGATED: "the status Monitoring (a fix or mitigation is in place)",
    Milestone.RESOLVED: "the status Resolved",
}


def reached(incident: Incident, milestone: Milestone) -> datetime | None:
    """When the incident first reached `milestone` (None: not yet)."""
    match milestone:
        case Milestone.IDENTIFIED:
            return incident.identified()[0]
        case Milestone.MITIGATED:
            return incident.status_changed_at.get(Status.MONITORING)
        case Milestone.RESOLVED:
            return incident.status_changed_at.get(Status.RESOLVED)
        case _:
            assert_never(milestone)


class Metrics:
    """The bot's metrics. `multiprocess_dir`: where prometheus-client keeps every process's
    values (PROMETHEUS_MULTIPROC_DIR); None keeps them in this registry."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._quiet = Throttled(log)  # every scrape while Redis is away: once a minute
        self.registry = CollectorRegistry()
        into = self.registry
        severity = ["severity"]
        self.declared = Counter(
            "incident_bot_incidents_declared", "Incidents declared, by severity.", severity, registry=into
        )
        self.updates_posted = Counter(
            "incident_bot_updates_posted",
            "Status updates posted in incident channels (each update once, whatever else it went to).",
            registry=into,
        )
        self.reminders_sent = Counter(
            "incident_bot_reminders_sent", "Next-update reminders posted in incident channels.", registry=into
        )
        self.reminder_lateness = Histogram(
            "incident_bot_reminder_lateness_seconds",
            "How long after it fell due each reminder was posted.",
            buckets=LATENESS_BUCKETS,
            registry=into,
        )
        self.slack_calls = Counter(
            "incident_bot_slack_api_calls",
            "Slack Web API calls, by method and outcome: ok, the Slack error (the ones the bot acts "
            "on by name, others as other_error), http_4xx/http_5xx, timeout, connection_error.",
            ["method", "outcome"],
            registry=into,
        )
        self.slack_seconds = Histogram(
            "incident_bot_slack_api_seconds", "How long Slack Web API calls took.", ["method"], registry=into
        )
        self.redis_errors = Counter(
            "incident_bot_redis_errors",
            "Store operations that failed because Redis did not answer or refused.",
            registry=into,
        )
        self.ack_seconds = Histogram(
            "incident_bot_ack_seconds",
            "Seconds from a Slack request reaching the bot to its answer (the ack), by kind.",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=into,
        )
        self.time_to = {
            milestone: Histogram(
                f"incident_bot_time_to_{milestone.value}_seconds",
                f"Seconds from declaring an incident to {milestone.value}: {MILESTONE_HELP[milestone]}; "
                "by severity at that moment.",
                severity,
                buckets=MILESTONE_BUCKETS,
                registry=into,
            )
            for milestone in Milestone
        }
        # Every series that has a known label set exists from the start, at zero.
        for level in Severity:
            self.declared.labels(level.value)
            for histogram in self.time_to.values():
                histogram.labels(level.value)
        for kind in AckKind:
            self.ack_seconds.labels(kind.value)

    @classmethod
    def for_this_process(cls) -> Metrics:
        """Shared with the other workers when PROMETHEUS_MULTIPROC_DIR is set (as `run --workers`
        sets it), else this process's own."""
        return cls(os.environ.get(MULTIPROCESS_VARIABLE) or None)

    # -- what happened -----------------------------------------------------------------------

    def incident_written(self, before: Incident | None, after: Incident) -> None:
        """A change to an incident was stored (`before` None: it was declared)."""
        if before is None:
            self.declared.labels(after.severity.value).inc()
        for milestone, histogram in self.time_to.items():
            at = reached(after, milestone)
            if at is not None and (before is None or reached(before, milestone) is None):
                seconds = max((at - after.declared_at).total_seconds(), 0.0)
                histogram.labels(after.severity.value).observe(seconds)

    def update_posted(self) -> None:
        self.updates_posted.inc()

    def reminder_posted(self, lateness: float) -> None:
        self.reminders_sent.inc()
        self.reminder_lateness.observe(max(lateness, 0.0))

    def slack_call(self, method: str, outcome: str, seconds: float) -> None:
        self.slack_calls.labels(method, outcome).inc()
        self.slack_seconds.labels(method).observe(seconds)

    def redis_error(self) -> None:
        self.redis_errors.inc()

    def acked(self, kind: AckKind, seconds: float) -> None:
        self.ack_seconds.labels(kind.value).observe(seconds)

    # -- the page ----------------------------------------------------------------------------

    async def page(self, store: IncidentStore) -> bytes:
        """The text exposition: this process's metrics (every worker's, in multiprocess mode) and
        the shared gauges as Redis has them now."""
        shared = await _shared_gauges(store, self._quiet)
        if self.multiprocess_dir is not None:
            # Every worker's files, summed (a scrape reaches one worker, whichever is free).
            workers = MultiProcessCollector(None, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            counted: Iterable[Metric] = workers.collect()  # type: ignore[no-untyped-call]
        else:
            counted = self.registry.collect()
        return generate_latest(_Families([*counted, *shared]))


@contextlib.contextmanager
def counted_across_workers() -> Iterator[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the worker processes about to start (they inherit
    this environment), removed once they have stopped.

    A worker that dies leaves its files: its counts stay in the sums, so the counters never go
    back. (prometheus-client's `mark_process_dead` only clears live gauges, and this bot has
    none: its gauges are read from Redis.)"""
    before = os.environ.get(MULTIPROCESS_VARIABLE)
    with tempfile.TemporaryDirectory(prefix="incident-bot-metrics-") as directory:
        os.environ[MULTIPROCESS_VARIABLE] = directory
        try:
            yield directory
        finally:
            if before is None:
                os.environ.pop(MULTIPROCESS_VARIABLE, None)
            else:
                os.environ[MULTIPROCESS_VARIABLE] = before


async def _shared_gauges(store: IncidentStore, quiet: Throttled) -> list[Metric]:
    """The gauges of the state every process shares, read from Redis; without them (but with
    `incident_bot_redis_up` 0) when Redis does not answer in time."""
    up = GaugeMetricFamily(
        "incident_bot_redis_up", "1 when this scrape could read the shared gauges from Redis, else 0."
    )
    try:
        async with asyncio.timeout(SCRAPE_DEADLINE):
            incidents = await store.get_incidents(await store.open_incident_ids())
            pending = await store.pending_effects()
    except (StoreUnavailable, TimeoutError) as exc:
        why = str(exc) or "no answer in time"
        quiet.warn("redis", "metrics served without the gauges read from Redis: %s", why)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    open_now = GaugeMetricFamily(
        "incident_bot_incidents_open", "Open (not resolved) incidents, by severity.", labels=["severity"]
    )
    by_severity = Tally(i.severity for i in incidents.values() if not i.is_resolved)
    for level in Severity:
        open_now.add_metric([level.value], by_severity[level])
    outbox = GaugeMetricFamily(
        "incident_bot_outbox_pending",
        "Slack work stored and not yet delivered (posts, updates, invites...), over all incidents.",
        value=pending,
    )
    return [open_now, outbox, up]


class _Families(Collector):
    """Metric families gathered for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
