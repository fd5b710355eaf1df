"""A small client for Prometheus's HTTP query API, over the bot's shared aiohttp session.

`query_range` (`/api/v1/query_range`) is what the charts need; `query` (`/api/v1/query`) reads
one instant. Any server that speaks the same API (Thanos, Mimir, VictoriaMetrics) works too.

Answers come back as pydantic models: one `Series` of `(time, value)` points per label set.
Values are floats as Prometheus sends them, `NaN` and `±Inf` included (a ratio over no traffic is
`NaN`); a renderer decides how to show them. Every failure is a `PrometheusError` whose message
is one line a person can read in Slack: the query, then what went wrong.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

DEFAULT_TIMEOUT_SECONDS = 10.0
# A chart panel is about 1000 px wide: ~240 points (one every 4 px) draw a smooth line, keep
# answers small (over 1 h, a 15 s step: one point per usual scrape), and stay far below
# Prometheus's limit of 11,000 points per series. More points would not show.
POINTS_PER_WINDOW = 240
# Steps below a second add no information (scrapes are rarely closer) and only multiply points.
MIN_STEP = timedelta(seconds=1)
QUERY_SHOWN_CHARS = 120  # of the query, in an error message
DETAIL_SHOWN_CHARS = 200  # of what the server said, in an error message


class PrometheusError(Exception):
    """A query could not be answered. `str(error)` is one user-presentable line naming the query."""

    def __init__(self, query: str, problem: str) -> None:
        self.query = query
        self.problem = problem
        super().__init__(f"Prometheus query `{_shorten(query, QUERY_SHOWN_CHARS)}` failed: {problem}")


class Point(NamedTuple):
    at: datetime
    value: float


class Series(BaseModel):
    """One time series of an answer: its labels and its points, oldest first."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    labels: dict[str, str]
    points: tuple[Point, ...]

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None

    def label_text(self) -> str:
        """`code="500", service="checkout"` (without `__name__`), or `{}` for no labels."""
        shown = {k: v for k, v in sorted(self.labels.items()) if k != "__name__"}
        return ", ".join(f'{k}="{v}"' for k, v in shown.items()) or "{}"


class RangeResult(BaseModel):
    """The answer to one range query: what was asked and the series it returned."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    query: str
    start: datetime
    end: datetime
    step: timedelta
    series: tuple[Series, ...]
    warnings: tuple[str, ...] = ()


# The wire format, with Prometheus's field names. A sample is `[unix seconds, "value"]`, the value
# a string ("1.5", "NaN", "+Inf").
class _WireSeries(BaseModel):
    metric: dict[str, str]
    values: list[tuple[float, str]] = []  # a range
    value: tuple[float, str] | None = None  # an instant


class _WireData(BaseModel):
    resultType: Literal["matrix", "vector", "scalar", "string"]
    result: Any


class _WireAnswer(BaseModel):
    status: Literal["success", "error"]
    data: _WireData | None = None
    errorType: str | None = None
    error: str | None = None
    warnings: list[str] = []


def choose_step(window: timedelta) -> timedelta:
    """The resolution for a range query over `window`: about `POINTS_PER_WINDOW` points, in whole
    seconds, never below `MIN_STEP` (5 min -> 2 s, 1 h -> 15 s, 1 d -> 6 min)."""
    seconds = math.ceil(window.total_seconds() / POINTS_PER_WINDOW)
    return max(MIN_STEP, timedelta(seconds=seconds))


class PrometheusClient:
    """Queries one Prometheus at `base_url` (a path prefix such as `/prometheus` is kept).

    The session is the caller's (the bot shares one) and is never closed here. `timeout` bounds
    each request, connecting included, and is passed on to Prometheus so it stops evaluating too.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})

    async def query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta | None = None
    ) -> RangeResult:
        """The series of `query` from `start` to `end` (timezone-aware), every `step` (by default
        `choose_step(end - start)`). Raises PrometheusError."""
        _require_aware(start, end)
        if end <= start:
            raise PrometheusError(query, "the time window is empty (end is not after start)")
        step = step or choose_step(end - start)
        form = {
            "query": query,
            "start": _unix(start),
            "end": _unix(end),
            "step": f"{step.total_seconds():g}",
        }
        data, warnings = await self._call("/api/v1/query_range", query, form)
        if data.resultType != "matrix":
            raise PrometheusError(query, f"expected a range of samples (matrix), got a {data.resultType}")
        series = tuple(
            Series(labels=s.metric, points=_points(query, s.values)) for s in _series_list(query, data.result)
        )
        return RangeResult(query=query, start=start, end=end, step=step, series=series, warnings=warnings)

    async def query(self, query: str, at: datetime | None = None) -> tuple[Series, ...]:
        """The value of `query` at one instant (`at`, default the server's now), as series of one
        point each: one per label set for a vector, one without labels for a scalar. Raises
        PrometheusError, for a range vector (`x[5m]`) too."""
        form = {"query": query}
        if at is not None:
            _require_aware(at)
            form["time"] = _unix(at)
        data, _ = await self._call("/api/v1/query", query, form)
        if data.resultType == "scalar":
            return (Series(labels={}, points=_points(query, [data.result])),)
        if data.resultType != "vector":
            raise PrometheusError(query, f"expected an instant value (vector), got a {data.resultType}")
        return tuple(
            Series(labels=s.metric, points=_points(query, [s.value] if s.value is not None else []))
            for s in _series_list(query, data.result)
        )

    async def _call(self, path: str, query: str, form: dict[str, str]) -> tuple[_WireData, tuple[str, ...]]:
        """The answer's data and warnings; every failure as a PrometheusError."""
        # Prometheus's own deadline (in seconds), a little inside ours, so a slow query ends there too.
        form = {**form, "timeout": f"{max(self.timeout - 0.5, 0.5):g}"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            try:
                status, reason, content_type, body = await self._post(path, form, self.timeout)
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the server had closed (idle, or restarted) fails at once;
                # queries change nothing, so ask again, on a new connection, within the same time.
                status, reason, content_type, body = await self._post(path, form, deadline - loop.time())
        except TimeoutError as exc:
            raise PrometheusError(query, f"no answer from {self.base_url} within {self.timeout:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise PrometheusError(query, f"cannot reach {self.base_url} ({_os_reason(exc)})") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise PrometheusError(query, f"{self.base_url} closed the connection without answering") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PrometheusError(query, f"the request to {self.base_url} failed ({_reason(exc)})") from exc
        answer = _parse(body)
        if status >= 400 or (answer is not None and answer.status == "error"):
            raise PrometheusError(query, _http_problem(status, reason, answer, body))
        if answer is None:
            raise PrometheusError(query, f"the answer is not Prometheus JSON (content type {content_type})")
        if answer.data is None:
            raise PrometheusError(query, "the answer has no data")
        return answer.data, tuple(answer.warnings)

    async def _post(self, path: str, form: dict[str, str], timeout: float) -> tuple[int, str, str, bytes]:
        """Status, reason, content type and body of one POST."""
        if timeout <= 0:
            raise TimeoutError
        async with self.session.post(
            self.base_url + path,
            data=form,  # form-encoded, so a long query never hits a URL length limit
            headers={"Accept": "application/json", **self.headers},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return response.status, response.reason or "", response.content_type, await response.read()


def _parse(body: bytes) -> _WireAnswer | None:
    try:
        return _WireAnswer.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _http_problem(status: int, reason: str, answer: _WireAnswer | None, body: bytes) -> str:
    """`HTTP 400 (bad_data): 1:5: parse error: unclosed left parenthesis`."""
    head = f"HTTP {status}" if status >= 400 else "error"
    if answer is not None and answer.error:
        kind = f" ({answer.errorType})" if answer.errorType else ""
        return f"{head}{kind}: {_shorten(answer.error, DETAIL_SHOWN_CHARS)}"
    head = f"{head} {reason}" if reason else head
    said = body.decode("utf-8", errors="replace").strip()
    if said and not said.startswith("<"):  # an HTML error page says nothing useful
        return f"{head}: {_shorten(said, DETAIL_SHOWN_CHARS)}"
    return head


def _series_list(query: str, result: Any) -> list[_WireSeries]:
    try:
        return [_WireSeries.model_validate(item) for item in result]
    except (TypeError, ValidationError) as exc:
        raise PrometheusError(query, "the answer is not in Prometheus's format") from exc


def _points(query: str, samples: list[Any]) -> tuple[Point, ...]:
    """Wire samples `[1435781430.781, "1.5"]` as points; float() reads Prometheus's "NaN", "+Inf"
    and "-Inf" as they are."""
    try:
        return tuple(Point(datetime.fromtimestamp(float(at), UTC), float(value)) for at, value in samples)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise PrometheusError(query, "the answer is not in Prometheus's format") from exc


def _unix(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def _require_aware(*times: datetime) -> None:
    if any(t.tzinfo is None for t in times):
        raise ValueError("query times must be timezone-aware")


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    """`Connection refused`, `Name or service not known`: the system's words, without addresses."""
    error = exc.os_error
    if error.errno and error.errno > 0:  # getaddrinfo's codes are negative
        return os.strerror(error.errno)
    return error.strerror or _reason(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return _shorten(text, DETAIL_SHOWN_CHARS)


def _shorten(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
