"""The metrics chart: what it is drawn from (panels, series, markers, latest values), the
comment of its upload, and that it renders to a PNG off the event loop."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from pydantic import ValidationError

from bot.changes import ChangeEvent, ChangeKind
from bot.charts import (
    MAX_SERIES_DRAWN,
    PNG_SIGNATURE,
    ChartData,
    MarkerKind,
    Panel,
    chart_filename,
    chart_spec,
    collect_chart,
    format_value,
    render_chart,
    render_png,
    upload_comment,
)
from bot.playbook import ServiceQueries
from bot.prometheus import Point, PrometheusClient, PrometheusError, Series
from tests.evidence_servers import StandIn

END = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
QUERIES = {
    "Error rate": 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[1m])) '
    '/ sum(rate(http_requests_total{service="checkout"}[1m]))',
    "Requests per second": 'sum by (code) (rate(http_requests_total{service="checkout"}[1m]))',
}


def change(minutes_before_end: int, service: str = "checkout", version: str | None = None) -> ChangeEvent:
    return ChangeEvent(
        service=service,
        kind=ChangeKind.DEPLOY,
        version=version,
        at=END - timedelta(minutes=minutes_before_end),
    )


def points(
    values: list[float], step: timedelta = timedelta(minutes=15), end: datetime = END
) -> tuple[Point, ...]:
    first = end - step * (len(values) - 1)
    return tuple(Point(first + step * i, v) for i, v in enumerate(values))


def sample_chart() -> ChartData:
    spec = chart_spec(
        incident_id="INC-7",
        service="checkout",
        queries=QUERIES,
        end=END,
        window=HOUR,
        changes=[
            change(20, version="v2.3.1"),
            change(40),
            change(25, "search", "v9"),
            change(90, version="old"),
        ],
        declared_at=END - timedelta(minutes=5),
    )
    error_rate = Panel(
        title="Error rate",
        query=QUERIES["Error rate"],
        series=(Series(labels={}, points=points([0.01, 0.01, 0.3, 0.48])),),
    )
    requests = Panel(
        title="Requests per second",
        query=QUERIES["Requests per second"],
        series=(
            Series(labels={"code": "200"}, points=points([97.0, 96.5, 70.0, 51.9])),
            Series(labels={"code": "500"}, points=points([1.0, math.nan, 30.0, math.inf])),
        ),
    )
    return ChartData(spec=spec, panels=(error_rate, requests))


def test_the_spec_has_a_panel_per_query_and_markers_in_the_window() -> None:
    spec = sample_chart().spec
    assert spec.start == END - HOUR and spec.end == END and spec.step == timedelta(seconds=15)
    assert [(p.title, p.query) for p in spec.panels] == list(QUERIES.items())
    # That service's changes in the window, by time, each labelled with its version (else its
    # kind), and the declaration; not another service's change, not one before the window.
    assert [(m.kind, m.label, END - m.at) for m in spec.markers] == [
        (MarkerKind.CHANGE, "deploy", timedelta(minutes=40)),
        (MarkerKind.CHANGE, "v2.3.1", timedelta(minutes=20)),
        (MarkerKind.DECLARED, "declared INC-7", timedelta(minutes=5)),
    ]


def test_a_declaration_before_the_window_is_not_marked() -> None:
    spec = chart_spec(
        incident_id="INC-7",
        service="checkout",
        queries=QUERIES,
        end=END,
        window=HOUR,
        declared_at=END - 2 * HOUR,
    )
    assert spec.markers == ()
    with pytest.raises(ValueError, match="longer than zero"):
        chart_spec(incident_id="INC-7", service="checkout", queries=QUERIES, end=END, window=timedelta(0))


def test_latest_values_and_the_upload_comment() -> None:
    data = sample_chart()
    latest = data.panel("Requests per second").latest
    assert [(x.labels, x.at, x.value) for x in latest] == [
        ('code="200"', END, 51.9),
        ('code="500"', END, math.inf),
    ]
    assert data.panel("Error rate").latest[0].value == 0.48
    assert upload_comment(data) == (
        "*INC-7 · checkout*: the last 1h, to 14:05 UTC\n"
        "• Error rate: 0.48\n"
        '• Requests per second: 51.9 (code="200"), +Inf (code="500")'
    )


def test_the_comment_says_when_a_series_stopped_or_there_is_no_data() -> None:
    base = sample_chart()
    stale = Panel(
        title="Queue <depth>",
        query="q",
        series=(Series(labels={}, points=points([5.0], end=END - timedelta(minutes=10))),),
    )
    empty = Panel(title="Latency", query="q", series=())
    data = ChartData(spec=base.spec, panels=(stale, empty))
    assert upload_comment(data).splitlines()[1:] == [
        "• Queue &lt;depth&gt;: 5 at 13:55 UTC",
        "• Latency: no data",
    ]


def test_values_are_shown_with_three_significant_digits() -> None:
    assert [
        format_value(v) for v in (0.48213, 12.345, 0.0, 999.6, 1234.5, -0.000123, math.nan, -math.inf)
    ] == [
        "0.482",
        "12.3",
        "0",
        "1,000",
        "1,234",
        "-0.000123",
        "NaN",
        "-Inf",
    ]


def test_file_name() -> None:
    assert chart_filename("INC-7", "checkout") == "INC-7-checkout-metrics.png"
    assert chart_filename("INC-7", "../etc passwd") == "INC-7-..-etc-passwd-metrics.png"


def test_service_queries_are_validated() -> None:
    assert ServiceQueries.model_validate({"queries": {" Error rate ": " up "}}).queries == {
        "Error rate": "up"
    }
    bad_ones: list[dict[str, object]] = [
        {"queries": {}},
        {"queries": {"": "up"}},
        {"queries": {"x": " "}},
        {"queries": {"x": "up"}, "query": 1},
    ]
    for bad in bad_ones:
        with pytest.raises(ValidationError):
            ServiceQueries.model_validate(bad)
    with pytest.raises(ValidationError, match="at most 6"):
        ServiceQueries.model_validate({"queries": {f"p{i}": "up" for i in range(7)}})


def test_chart_data_survives_json() -> None:
    data = sample_chart()
    again = ChartData.model_validate_json(data.model_dump_json())
    assert again.spec == data.spec
    value = again.panel("Requests per second").series[1].points[1].value
    assert math.isnan(value)
    assert again.panel("Requests per second").latest[1].value == math.inf


def test_the_png_is_drawn_from_the_data() -> None:
    png = render_png(sample_chart())
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 10_000  # two panels of lines and text, not an empty canvas


def test_an_empty_chart_still_renders() -> None:
    base = sample_chart()
    empty = ChartData(
        spec=base.spec.model_copy(update={"markers": ()}), panels=(Panel(title="x", query="q", series=()),)
    )
    assert render_png(empty).startswith(PNG_SIGNATURE)


async def test_rendering_runs_off_the_event_loop() -> None:
    ticks = 0
    loop_thread = threading.get_ident()

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        png = await render_chart(sample_chart())
    finally:
        ticker.cancel()
    assert png.startswith(PNG_SIGNATURE)
    assert ticks >= 3, "the event loop was blocked while the chart was drawn"
    assert threading.get_ident() == loop_thread


async def test_collect_asks_each_panel_over_the_window(stand_in: StandIn) -> None:
    t = END.timestamp()
    stand_in.matrix({"metric": {}, "values": [[t - 30, "0.01"], [t - 15, "0.2"], [t, "0.5"]]})
    spec = sample_chart().spec
    async with aiohttp.ClientSession() as session:
        data = await collect_chart(PrometheusClient(session, stand_in.url), spec)
    assert sorted(f["query"] for f in stand_in.forms) == sorted(QUERIES.values())
    assert {(f["start"], f["end"], f["step"]) for f in stand_in.forms} == {
        (f"{t - 3600:.3f}", f"{t:.3f}", "15")
    }
    assert [p.title for p in data.panels] == list(QUERIES)
    assert [p.value for p in data.panel("Error rate").series[0].points] == [0.01, 0.2, 0.5]
    assert data.markers == spec.markers


async def test_a_failing_query_is_named(stand_in: StandIn) -> None:
    stand_in.answer({"status": "error", "errorType": "execution", "error": "query timed out"}, 503)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PrometheusError) as caught:
            await collect_chart(PrometheusClient(session, stand_in.url), sample_chart().spec)
    assert caught.value.query == QUERIES["Error rate"]  # the first panel's
    assert str(caught.value).endswith("failed: HTTP 503 (execution): query timed out")


async def test_a_panel_keeps_the_series_it_draws_and_counts_the_rest(stand_in: StandIn) -> None:
    t = END.timestamp()
    stand_in.matrix(*({"metric": {"pod": f"p{n:02}"}, "values": [[t, str(n)]]} for n in range(25)))
    spec = sample_chart().spec
    async with aiohttp.ClientSession() as session:
        data = await collect_chart(PrometheusClient(session, stand_in.url), spec)
    panel = data.panel("Error rate")
    assert [s.labels["pod"] for s in panel.series] == [f"p{n:02}" for n in range(MAX_SERIES_DRAWN)]
    assert (panel.more_series, panel.series_count) == (25 - MAX_SERIES_DRAWN, 25)
    assert upload_comment(data).splitlines()[1] == (
        '• Error rate: 0 (pod="p00"), 1 (pod="p01"), 2 (pod="p02"), and 22 more series'
    )
    assert render_png(data).startswith(PNG_SIGNATURE)
