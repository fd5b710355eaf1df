"""Against the real servers: Prometheus scraping the exporter, read through bot.prometheus and
drawn by bot.charts; Alertmanager delivering to a webhook, read by bot.alerts.

The rise test comes last: Prometheus scrapes a new target only some seconds after it starts
(it applies target changes at most every 5 s), so the module's Prometheus, started by the first
test, has its baseline by the time the Alertmanager tests are done. Any order still passes."""

from __future__ import annotations

import json
from datetime import timedelta

import aiohttp
import pytest

from bot.alerts import AlertGroup, AlertStatus, assess_group, parse_alertmanager
from bot.changes import ChangeEvent, ChangeKind
from bot.charts import PNG_SIGNATURE, MarkerKind, chart_spec, collect_chart, render_chart
from bot.models import Severity
from bot.prometheus import PrometheusClient, PrometheusError
from tests.evidence_servers import (
    ALERT_TOKEN,
    SERVICE,
    AlertmanagerServer,
    Delivery,
    Exporter,
    PrometheusServer,
    WebhookReceiver,
    alert,
    utcnow,
)

SERIES = f'http_requests_total{{service="{SERVICE}"}}'
# Over 3 s, so three scrapes at most fall in each point's window: the rise shows within seconds.
ERROR_RATIO = (
    f'sum(rate(http_requests_total{{service="{SERVICE}",code=~"5.."}}[3s])) '
    f'/ sum(rate(http_requests_total{{service="{SERVICE}"}}[3s]))'
)
BASELINE, RISEN = 0.01, 0.5


async def test_a_bad_query_gets_prometheus_own_words(
    prometheus: PrometheusServer, http_session: aiohttp.ClientSession
) -> None:
    client = PrometheusClient(http_session, prometheus.url, timeout=5)
    now = utcnow()
    with pytest.raises(PrometheusError) as caught:
        await client.query_range("sum(rate(http_requests_total[1m])", now - timedelta(minutes=5), now)
    message = str(caught.value)
    assert message.startswith(
        "Prometheus query `sum(rate(http_requests_total[1m])` failed: HTTP 400 (bad_data): "
    )
    assert "parse error" in message


async def test_prometheus_stopped_gets_a_clear_message(
    own_prometheus: PrometheusServer, http_session: aiohttp.ClientSession
) -> None:
    client = PrometheusClient(http_session, own_prometheus.url, timeout=5)
    now = utcnow()
    await client.query_range("up", now - timedelta(minutes=5), now)  # answers while it runs

    own_prometheus.kill()

    with pytest.raises(PrometheusError) as caught:
        await client.query_range("up", now - timedelta(minutes=5), now)
    assert str(caught.value) == (
        f"Prometheus query `up` failed: cannot reach {own_prometheus.url} (Connection refused)"
    )


def group_of(delivery: Delivery) -> AlertGroup:
    assert delivery.authorization == f"Bearer {ALERT_TOKEN}"
    group = parse_alertmanager(delivery.body)
    assert isinstance(group, AlertGroup), group
    return group


async def test_alertmanager_delivers_with_the_token_and_repeats_the_group(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver
) -> None:
    fired = utcnow()
    await alertmanager.post_alerts(
        [
            alert(
                "CheckoutErrors",
                labels={"service": SERVICE, "severity": "critical"},
                summary="Checkout 5xx above 5%",
                generator_url="http://prometheus.example:9090/graph?g0.expr=x",
            )
        ]
    )

    deliveries = await webhook_receiver.wait_for(2, timeout=15)

    groups = [group_of(d) for d in deliveries]
    assert len({g.group_key for g in groups}) == 1  # the same group, notified again and again
    first = groups[0]
    assert first.status is AlertStatus.FIRING and first.version == "4"
    assert first.receiver == "incident-bot" and first.external_url.startswith("http")
    assessed = assess_group(first)
    assert assessed.severity is Severity.SEV2
    assert assessed.summary == "Checkout 5xx above 5%"
    assert assessed.service == SERVICE
    assert assessed.lead.generator_url == "http://prometheus.example:9090/graph?g0.expr=x"
    assert assessed.lead.ends_at is None and len(assessed.lead.fingerprint) == 16
    assert assessed.started_at is not None and abs(assessed.started_at - fired) < timedelta(seconds=2)

    resolved_at = utcnow()
    await alertmanager.post_alerts(
        [alert("CheckoutErrors", labels={"service": SERVICE, "severity": "critical"}, ends_at=resolved_at)]
    )
    for _ in range(5):
        count = len(webhook_receiver.deliveries) + 1
        last = group_of((await webhook_receiver.wait_for(count, timeout=10))[-1])
        if last.status is AlertStatus.RESOLVED:
            break
    assert last.status is AlertStatus.RESOLVED and last.group_key == first.group_key
    (gone,) = last.alerts
    assert gone.ends_at is not None and abs(gone.ends_at - resolved_at) < timedelta(seconds=1)
    assert not assess_group(last).firing


async def test_alertmanager_retries_a_failed_delivery(
    alertmanager: AlertmanagerServer, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.status = 500
    await alertmanager.post_alerts([alert("QueueBacklog", labels={"severity": "warning"})])
    await webhook_receiver.wait_for(1, timeout=10)
    webhook_receiver.status = 200

    deliveries = await webhook_receiver.wait_for(2, timeout=10)

    bodies = [json.loads(d.body) for d in deliveries[:2]]
    assert bodies[0]["groupKey"] == bodies[1]["groupKey"]
    assert assess_group(group_of(deliveries[1])).severity is Severity.SEV3


async def test_the_error_rate_rise_shows_in_the_range_query_and_the_chart(
    prometheus: PrometheusServer, exporter: Exporter, http_session: aiohttp.ClientSession
) -> None:
    await prometheus.wait_for_samples(SERIES, 4)
    assert exporter.error_rate == BASELINE
    switched = exporter.set_error_rate(RISEN)
    try:
        await prometheus.wait_for_samples(SERIES, 6, since=switched)
    finally:
        exporter.set_error_rate(BASELINE)
    end = switched + timedelta(seconds=5)
    start = switched - timedelta(seconds=4)
    client = PrometheusClient(http_session, prometheus.url, timeout=5)

    result = await client.query_range(ERROR_RATIO, start, end, timedelta(seconds=1))

    (series,) = result.series
    before = [p.value for p in series.points if p.at <= switched - timedelta(seconds=0.5)]
    after = [p.value for p in series.points if p.at >= switched + timedelta(seconds=4)]
    assert before and after, series.points
    assert all(v == pytest.approx(BASELINE, abs=0.002) for v in before), before
    assert all(v == pytest.approx(RISEN, abs=0.02) for v in after), after

    # The chart of that window: drawn from the same rise, with the change marked at the switch.
    deploy = ChangeEvent(service=SERVICE, kind=ChangeKind.DEPLOY, version="v2.3.1", at=switched)
    spec = chart_spec(
        incident_id="INC-1",
        service=SERVICE,
        queries={"Error rate": ERROR_RATIO},
        end=end,
        window=end - start,
        changes=[deploy],
        declared_at=switched + timedelta(seconds=4),
    )
    data = await collect_chart(client, spec)
    (drawn,) = data.panel("Error rate").series
    assert drawn.points[0].value == pytest.approx(BASELINE, abs=0.002)
    assert drawn.points[-1].value == pytest.approx(RISEN, abs=0.02)
    assert data.panel("Error rate").latest[0].value == pytest.approx(RISEN, abs=0.02)
    assert [(m.kind, m.label, m.at) for m in data.markers] == [
        (MarkerKind.CHANGE, "v2.3.1", switched),
        (MarkerKind.DECLARED, "declared INC-1", switched + timedelta(seconds=4)),
    ]
    assert (await render_chart(data)).startswith(PNG_SIGNATURE)
