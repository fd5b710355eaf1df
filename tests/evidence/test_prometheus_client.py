"""bot.prometheus against a stand-in HTTP server on loopback: how answers are read and how each
kind of failure is reported. The real Prometheus is in test_live_servers.py."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from bot.prometheus import MAX_ANSWER_BYTES, PrometheusClient, PrometheusError, choose_step
from tests.evidence_servers import StandIn
from tests.topologies import LOOPBACK, free_ports

START = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)
QUERY = 'sum(rate(http_requests_total{code=~"5.."}[1m]))'


@pytest.fixture
async def client(stand_in: StandIn) -> AsyncIterator[PrometheusClient]:
    async with aiohttp.ClientSession() as session:
        yield PrometheusClient(session, stand_in.url, timeout=2.0)


def test_step_is_about_240_points_in_whole_seconds_never_below_one() -> None:
    assert choose_step(timedelta(minutes=1)) == timedelta(seconds=1)
    assert choose_step(timedelta(minutes=5)) == timedelta(seconds=2)
    assert choose_step(timedelta(hours=1)) == timedelta(seconds=15)
    assert choose_step(timedelta(days=1)) == timedelta(minutes=6)
    # Prometheus refuses more than 11,000 points a series; a week stays far below.
    week = timedelta(days=7)
    assert week / choose_step(week) <= 240


async def test_a_matrix_becomes_series_of_points_with_nan_and_inf(
    stand_in: StandIn, client: PrometheusClient
) -> None:
    t0 = START.timestamp()
    stand_in.matrix(
        {
            "metric": {"code": "500", "service": "checkout"},
            "values": [[t0, "0.5"], [t0 + 2, "NaN"], [t0 + 4, "+Inf"]],
        },
        {"metric": {}, "values": [[t0, "-Inf"]]},
    )

    result = await client.query_range(QUERY, START, END)

    assert stand_in.paths == ["/prom/api/v1/query_range"]
    form = stand_in.forms[0]
    assert form["query"] == QUERY
    assert float(form["start"]) == t0 and float(form["end"]) == END.timestamp()
    assert form["step"] == "2"  # choose_step(5 min)
    assert result.step == timedelta(seconds=2)
    first, second = result.series
    assert first.labels == {"code": "500", "service": "checkout"}
    assert first.label_text() == 'code="500", service="checkout"'
    assert [p.at for p in first.points] == [START, START + timedelta(seconds=2), START + timedelta(seconds=4)]
    assert first.points[0].value == 0.5
    assert math.isnan(first.points[1].value)
    assert first.points[2].value == math.inf
    assert first.latest is not None and first.latest.value == math.inf
    assert second.points[0].value == -math.inf and second.label_text() == "{}"


async def test_a_given_step_is_sent_as_is_and_warnings_are_kept(
    stand_in: StandIn, client: PrometheusClient
) -> None:
    stand_in.answer(
        {"status": "success", "data": {"resultType": "matrix", "result": []}, "warnings": ["PromQL info: x"]}
    )
    result = await client.query_range(QUERY, START, END, timedelta(seconds=30))
    assert stand_in.forms[0]["step"] == "30"
    assert result.series == () and result.warnings == ("PromQL info: x",)


async def test_prometheus_error_field_is_in_the_message(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.answer(
        {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed left parenthesis"},
        400,
    )
    with pytest.raises(PrometheusError) as caught:
        await client.query_range("sum(", START, END)
    assert str(caught.value) == (
        "Prometheus query `sum(` failed: HTTP 400 (bad_data): 1:5: parse error: unclosed left parenthesis"
    )
    assert caught.value.query == "sum("


async def test_an_error_page_gives_the_status(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.status, stand_in.body, stand_in.content_type = (
        503,
        "<html><body>Bad gateway</body></html>",
        "text/html",
    )
    with pytest.raises(PrometheusError, match=r"failed: HTTP 503 Service Unavailable$"):
        await client.query_range(QUERY, START, END)


async def test_a_plain_text_error_is_quoted_on_one_line(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.status, stand_in.body, stand_in.content_type = 502, "upstream\nconnect error", "text/plain"
    with pytest.raises(PrometheusError, match=r"failed: HTTP 502 Bad Gateway: upstream connect error$"):
        await client.query_range(QUERY, START, END)


async def test_an_answer_that_is_not_json(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.body, stand_in.content_type = "<html>login</html>", "text/html"
    with pytest.raises(
        PrometheusError, match=r"the answer is not Prometheus JSON \(content type text/html\)"
    ):
        await client.query_range(QUERY, START, END)


async def test_a_result_that_is_not_a_matrix(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.answer({"status": "success", "data": {"resultType": "vector", "result": []}})
    with pytest.raises(PrometheusError, match=r"expected a range of samples \(matrix\), got a vector"):
        await client.query_range(QUERY, START, END)


async def test_samples_in_another_shape(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.matrix({"metric": {}, "values": [[START.timestamp(), "lots"]]})
    with pytest.raises(PrometheusError, match="the answer is not in Prometheus's format"):
        await client.query_range(QUERY, START, END)


async def test_no_answer_within_the_timeout(stand_in: StandIn) -> None:
    stand_in.matrix()
    stand_in.delay = 1.0
    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, stand_in.url, timeout=0.2)
        with pytest.raises(PrometheusError) as caught:
            await client.query_range(QUERY, START, END)
    assert f"no answer from {stand_in.url.rstrip('/')} within 0.2s" in str(caught.value)
    assert stand_in.forms[0]["timeout"] == "0.5"  # Prometheus's own deadline


async def test_a_closed_connection_is_asked_again_once(stand_in: StandIn, client: PrometheusClient) -> None:
    stand_in.matrix()
    stand_in.hang_ups = 1  # as a kept-alive connection the server had closed meanwhile
    assert (await client.query_range(QUERY, START, END)).series == ()
    assert len(stand_in.forms) == 2

    stand_in.hang_ups = 2
    with pytest.raises(
        PrometheusError, match=r"failed: http://\S+/prom closed the connection without answering$"
    ):
        await client.query_range(QUERY, START, END)


async def test_nothing_listening() -> None:
    (port,) = free_ports(1)
    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, f"http://{LOOPBACK}:{port}")
        with pytest.raises(PrometheusError) as caught:
            await client.query_range(QUERY, START, END)
    message = str(caught.value)
    assert message.startswith(f"Prometheus query `{QUERY}` failed: cannot reach http://{LOOPBACK}:{port}")
    assert "refused" in message.lower()
    assert "\n" not in message


async def test_a_long_query_is_shortened_in_the_message_but_kept_whole(client: PrometheusClient) -> None:
    long_query = "sum(" + "x + " * 100 + "y)"
    with pytest.raises(PrometheusError) as caught:
        await client.query_range(long_query, END, START)  # an empty window: refused before asking
    assert caught.value.query == long_query
    assert "…`" in str(caught.value)
    assert "the time window is empty" in str(caught.value)


async def test_an_instant_query_reads_vectors_and_scalars(
    stand_in: StandIn, client: PrometheusClient
) -> None:
    t0 = START.timestamp()
    stand_in.answer(
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {"code": "500"}, "value": [t0, "3"]}]},
        }
    )
    (series,) = await client.query("up", at=START)
    assert series.labels == {"code": "500"} and series.points[0].value == 3.0
    assert stand_in.paths[-1] == "/prom/api/v1/query" and float(stand_in.forms[-1]["time"]) == t0

    stand_in.answer({"status": "success", "data": {"resultType": "scalar", "result": [t0, "NaN"]}})
    (scalar,) = await client.query("0/0")
    assert scalar.labels == {} and math.isnan(scalar.points[0].value)
    assert "time" not in stand_in.forms[-1]

    stand_in.matrix()
    with pytest.raises(PrometheusError, match=r"expected an instant value \(vector\), got a matrix"):
        await client.query("up[5m]")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        asyncio.run(PrometheusClient(None, "http://x").query_range("up", START.replace(tzinfo=None), END))  # type: ignore[arg-type]


# -- large answers ----------------------------------------------------------------------------


def big_matrix(series: int, points: int = 241) -> bytes:
    """A range answer as Prometheus writes it: `series` label sets of `points` samples each
    (241 points, a 1 h window at the 15 s step, is about 6.9 kB a series)."""
    t0 = START.timestamp()
    result = [
        {
            "metric": {"__name__": "http_requests_total", "instance": f"10.0.{i // 250}.{i % 250}:9100"},
            "values": [[t0 + 15 * j, f"{i + j / 1000:.6f}"] for j in range(points)],
        }
        for i in range(series)
    ]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return json.dumps(body, separators=(",", ":")).encode()


class BigAnswers:
    """A fake Prometheus answering `body`: whole (with a Content-Length), or streamed in chunks
    without one; `endless` streams the same chunk until the client hangs up."""

    def __init__(self) -> None:
        self.body = b""
        self.chunked = False
        self.endless = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        if not self.chunked and not self.endless:
            return web.Response(body=self.body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = 64 * 1024
        for at in range(0, len(self.body), chunk):
            await response.write(self.body[at : at + chunk])
        while self.endless:  # until the client closes the connection (the write then fails)
            await response.write(b" " * chunk)
        await response.write_eof()
        return response


@pytest.fixture
async def big_answers() -> AsyncIterator[BigAnswers]:
    fake = BigAnswers()
    app = web.Application(client_max_size=1024)
    app.router.add_post("/api/v1/query_range", fake.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    fake.url = f"http://{LOOPBACK}:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


TOO_LARGE = (
    "failed: the answer is larger than 5 MB: aggregate the query (`sum by (…)`, `topk(…)`) "
    "so that it returns fewer series"
)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_past_the_cap_is_refused_asking_to_aggregate(
    big_answers: BigAnswers, chunked: bool
) -> None:
    big_answers.body, big_answers.chunked = big_matrix(800), chunked
    assert len(big_answers.body) > MAX_ANSWER_BYTES == 5 * 1024 * 1024
    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, big_answers.url, timeout=5.0)
        with pytest.raises(PrometheusError) as caught:
            await client.query_range(QUERY, START, END)
    assert str(caught.value).endswith(TOO_LARGE)


async def test_reading_stops_at_the_cap(big_answers: BigAnswers) -> None:
    """An answer that never ends is refused once past the cap, not read until the timeout."""
    big_answers.endless = True
    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, big_answers.url, timeout=30.0)
        began = time.monotonic()
        with pytest.raises(PrometheusError) as caught:
            await client.query_range(QUERY, START, END)
    assert str(caught.value).endswith(TOO_LARGE)
    assert time.monotonic() - began < 10


async def test_an_answer_just_under_the_cap_is_read_off_the_event_loop(big_answers: BigAnswers) -> None:
    big_answers.body = big_matrix(700)
    assert 0.9 * MAX_ANSWER_BYTES < len(big_answers.body) < MAX_ANSWER_BYTES
    longest_gap, last_tick = 0.0, time.perf_counter()

    async def tick() -> None:
        nonlocal longest_gap, last_tick
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest_gap, last_tick = max(longest_gap, now - last_tick), now

    async with aiohttp.ClientSession() as session:
        client = PrometheusClient(session, big_answers.url, timeout=10.0)
        ticker = asyncio.create_task(tick())
        try:
            result = await client.query_range(QUERY, START, END)
        finally:
            longest_gap = max(longest_gap, time.perf_counter() - last_tick)
            ticker.cancel()

        # Read and validated on the loop, 700 series stall it most of a second (1,000: 0.96 s).
        assert longest_gap < 0.25, f"the event loop stalled {longest_gap:.2f}s while the answer was read"
        assert len(result.series) == 700 and result.more_series == 0
        last = result.series[-1]
        assert last.labels["instance"] == "10.0.2.199:9100" and len(last.points) == 241
        assert last.points[0] == (START, 699.0) and last.points[-1].value == 699.24

        # A chart keeps the series it draws: the others are counted, never made into models.
        cut = await client.query_range(QUERY, START, END, max_series=10)
    assert (len(cut.series), cut.more_series) == (10, 690)
    assert cut.series == result.series[:10]


async def test_an_answer_in_any_layout_is_read_and_cut_alike(
    stand_in: StandIn, client: PrometheusClient
) -> None:
    """Keys in another order, blanks between tokens: the result is cut however it is written."""
    t0 = START.timestamp()
    answer = {
        "data": {
            "result": [{"metric": {"n": str(n)}, "values": [[t0, str(n)]]} for n in range(4)],
            "resultType": "matrix",
        },
        "warnings": ["w"],
        "status": "success",
    }
    stand_in.body = json.dumps(answer, indent=2)
    result = await client.query_range(QUERY, START, END, max_series=3)
    assert [s.labels["n"] for s in result.series] == ["0", "1", "2"]
    assert result.more_series == 1 and result.warnings == ("w",)

    all_of_it = await client.query_range(QUERY, START, END)
    assert len(all_of_it.series) == 4 and all_of_it.more_series == 0

    stand_in.body = json.dumps(answer)[:-1]  # cut short
    with pytest.raises(PrometheusError, match="is not Prometheus JSON"):
        await client.query_range(QUERY, START, END)
