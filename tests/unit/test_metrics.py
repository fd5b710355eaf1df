"""The metrics: what counts as declared, identified, mitigated and resolved; the Slack call
outcomes; Redis failures counted once; the shared gauges read from Redis at scrape time."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import request_kind
from bot.effects import Effect, EffectState, Notice
from bot.errors import StoreUnavailable
from bot.metrics import AckKind, Metrics
from bot.models import HypothesisState, Incident, Severity, Status
from bot.playbook import load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService
from bot.slack_gateway import call_outcome
from bot.store import IncidentStore, connect
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def declared(severity: Severity = Severity.SEV2) -> Incident:
    return Incident(
        id="INC-1",
        number=1,
        severity=severity,
        title="Checkout failing",
        declared_by="U1",
        commander="U1",
        declared_at=T0,
        updated_at=T0,
        origin_channel="C1",
        status_changed_at={Status.INVESTIGATING: T0},
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_declaration_counts_by_severity() -> None:
    metrics = Metrics()
    metrics.incident_written(None, declared(Severity.SEV1))
    assert sample(metrics, "incident_bot_incidents_declared_total", severity="sev1") == 1
    # Every severity has its series from the start.
    assert sample(metrics, "incident_bot_incidents_declared_total", severity="sev4") == 0


def test_each_milestone_is_observed_once_when_first_reached() -> None:
    metrics = Metrics()
    start = declared()
    identified = start.moved_to(Status.IDENTIFIED, at(60))
    mitigated = identified.moved_to(Status.MONITORING, at(300))
    again = mitigated.moved_to(Status.IDENTIFIED, at(400)).moved_to(Status.MONITORING, at(500))
    resolved = again.resolved(at(900))
    steps = [start, identified, mitigated, again, resolved]
    for before, after in itertools.pairwise(steps):
        metrics.incident_written(before, after)

    def observed(milestone: str) -> tuple[float | None, float | None]:
        name = f"incident_bot_time_to_{milestone}_seconds"
        count = sample(metrics, f"{name}_count", severity="sev2")
        return count, sample(metrics, f"{name}_sum", severity="sev2")

    assert observed("identified") == (1, 60)
    assert observed("mitigated") == (1, 300)  # Monitoring a second time is not mitigated again
    assert observed("resolved") == (1, 900)
    assert sample(metrics, "incident_bot_time_to_resolved_seconds_count", severity="sev1") == 0


def test_a_confirmed_hypothesis_is_identified_as_the_postmortem_says() -> None:
    metrics = Metrics()
    proposed = declared().with_hypothesis("pool exhausted", "U2", at(30))
    confirmed = proposed.with_hypothesis_state(1, HypothesisState.CONFIRMED, "U2", at(90))
    metrics.incident_written(proposed, confirmed)
    later = confirmed.moved_to(Status.IDENTIFIED, at(120))
    metrics.incident_written(confirmed, later)  # identified already: not again
    assert sample(metrics, "incident_bot_time_to_identified_seconds_count", severity="sev2") == 1
    assert sample(metrics, "incident_bot_time_to_identified_seconds_sum", severity="sev2") == 90
    assert later.identified() == (at(90), "H1 confirmed")


def test_two_bots_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.update_posted()
    assert sample(first, "incident_bot_updates_posted_total") == 1
    assert sample(second, "incident_bot_updates_posted_total") == 0


def slack_error(status: int, body: Any) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None, http_verb="POST", api_url="", req_args={}, data=body, headers={}, status_code=status
    )
    return SlackApiError("refused", response)


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        (None, "ok"),
        (slack_error(200, {"ok": False, "error": "not_in_channel"}), "not_in_channel"),
        (slack_error(429, {"ok": False, "error": "ratelimited"}), "ratelimited"),
        (slack_error(200, {"ok": False, "error": "some_new_error_code"}), "other_error"),
        (slack_error(502, "<html>bad gateway</html>"), "http_5xx"),
        (slack_error(404, "not found"), "http_4xx"),
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError(), "timeout"),
        (aiohttp.ClientConnectionError(), "connection_error"),
        (ConnectionRefusedError(), "connection_error"),
        (asyncio.CancelledError(), "cancelled"),
        (ValueError("bad"), "error"),
    ],
)
def test_slack_call_outcomes_are_few(failure: BaseException | None, outcome: str) -> None:
    assert call_outcome(failure) == outcome


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"command": "/incident", "text": "sev2 x"}, AckKind.COMMAND),
        ({"type": "block_actions", "actions": [{"action_id": "a"}]}, AckKind.ACTION),
        ({"type": "view_submission", "view": {"callback_id": "v"}}, AckKind.VIEW),
        ({"type": "message_action", "callback_id": "s"}, AckKind.SHORTCUT),
        ({"type": "event_callback", "event": {"type": "message"}}, AckKind.EVENT),
        ({"type": "url_verification"}, AckKind.OTHER),
    ],
)
def test_requests_are_timed_by_kind(body: dict[str, Any], kind: AckKind) -> None:
    assert request_kind(body) is kind


async def test_a_redis_failure_counts_once_however_deep_it_happened() -> None:
    metrics = Metrics()
    redis = connect("redis://127.0.0.1:1/0")
    store = IncidentStore(redis, on_failure=metrics.redis_error)
    schedule = ScheduleStore(redis, on_failure=metrics.redis_error)
    try:
        with pytest.raises(StoreUnavailable):
            await store.check_identity()  # calls known_identity(), translated too
        with pytest.raises(StoreUnavailable):
            await store.update_incident("INC-1", lambda incident: None)  # its own retries
        with pytest.raises(StoreUnavailable):
            await schedule.cancel("INC-1")
    finally:
        await store.close()
    assert sample(metrics, "incident_bot_redis_errors_total") == 3


def families(page: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> labels -> value."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(page.decode()):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


async def test_the_page_reads_open_incidents_and_pending_work_from_redis(
    fake_redis: aioredis.Redis, clock: FakeClock
) -> None:
    metrics = Metrics()
    store = IncidentStore(fake_redis, on_write=metrics.incident_written)
    service = IncidentService(store, ScheduleStore(fake_redis), load_playbook(None), clock)
    await service.declare_incident(Severity.SEV1, "Down", "U1", "C1", request_id="r1")
    second = await service.declare_incident(Severity.SEV3, "Slow", "U1", "C2", request_id="r2")
    await service.declare_incident(Severity.SEV3, "Slower", "U1", "C3", request_id="r3")
    await service.resolve(second.id, "U1", "r4")
    pending = len([e for i in ("INC-1", "INC-2", "INC-3") for e in await store.outbox(i) if e.pending])
    # A failed effect stays in the outbox, and is not waiting.
    failed = Effect(id="9999999.00.notice", work=Notice(user="U1", text="x"), state=EffectState.FAILED)
    await store.save_effect("INC-1", failed)

    found = families(await metrics.page(store))
    assert found["incident_bot_incidents_open"] == {
        (("severity", "sev1"),): 1,
        (("severity", "sev2"),): 0,
        (("severity", "sev3"),): 1,
        (("severity", "sev4"),): 0,
    }
    assert found["incident_bot_outbox_pending"] == {(): pending} and pending > 0
    assert found["incident_bot_incidents_declared_total"][(("severity", "sev3"),)] == 2
    assert found["incident_bot_time_to_resolved_seconds_count"][(("severity", "sev3"),)] == 1
    assert found["incident_bot_redis_up"] == {(): 1}


async def test_the_page_is_served_without_the_shared_gauges_while_redis_is_away() -> None:
    metrics = Metrics()
    store = IncidentStore(connect("redis://127.0.0.1:1/0"), on_failure=metrics.redis_error)
    try:
        found = families(await metrics.page(store))
    finally:
        await store.close()
    assert found["incident_bot_redis_up"] == {(): 0}
    assert "incident_bot_incidents_open" not in found
    assert found["incident_bot_redis_errors_total"] == {(): 1}
