"""A small client for Prometheus's HTTP query API, over the bot's shared aiohttp session.

`query_range` (`/api/v1/query_range`) is what the charts need; `query` (`/api/v1/query`) reads
one instant. Any server that speaks the same API (Thanos, Mimir, VictoriaMetrics) works too.

Answers come back as pydantic models: one `Series` of `(time, value)` points per label set.
Values are floats as Prometheus sends them, `NaN` and `±Inf` included (a ratio over no traffic is
`NaN`); a renderer decides how to show them. Every failure is a `PrometheusError` whose message
is one line a person can read in Slack: the query, then what went wrong.

An answer is read up to `MAX_ANSWER_BYTES` and parsed in a worker thread: a query over thousands
of series takes seconds of CPU to read, which on the event loop would hold up every Slack ack.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
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
# A larger answer is refused, read no further: 5 MB is some 700 series of 240 points, far more than
# a chart draws (charts.MAX_SERIES_DRAWN), and reading all of it takes most of a second of CPU.
MAX_ANSWER_BYTES = 5 * 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024
QUERY_SHOWN_CHARS = 120  # of the query, in an error message
DETAIL_SHOWN_CHARS = 200  # of what the server said, in an error message


class PrometheusError(Exception):
    """A query could not be answered. `str(error)` is one user-presentable line naming the query."""

    def __init__(self, query: str, problem: str) -> None:
        self.query = query
        self.problem = problem
        super().__init__(f"Prometheus query `{_shorten(query, QUERY_SHOWN_CHARS)}` failed: {problem}")


class _AnswerTooLarge(Exception):
    """The answer's body passed the client's limit; reading stopped there."""


class _Answer(NamedTuple):
    """One HTTP answer, as read: parsed later, off the event loop."""

    status: int
    reason: str
    content_type: str
    body: bytes


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
    more_series: int = 0  # series the answer had beyond those kept (`max_series`), not read
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
    An answer larger than `max_answer_bytes` is a PrometheusError asking to aggregate the query.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        headers: dict[str, str] | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.max_answer_bytes = max_answer_bytes

    async def query_range(
        self,
        query: str,
        start: datetime,
        end: datetime,
        step: timedelta | None = None,
        *,
        max_series: int | None = None,
    ) -> RangeResult:
        """The series of `query` from `start` to `end` (timezone-aware), every `step` (by default
        `choose_step(end - start)`): the first `max_series` of them if given, the others only
        counted (`more_series`). Raises PrometheusError."""
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
        answer = await self._call("/api/v1/query_range", query, form)
        return await asyncio.to_thread(_range_result, answer, query, start, end, step, max_series)

    async def query(self, query: str, at: datetime | None = None) -> tuple[Series, ...]:
        """The value of `query` at one instant (`at`, default the server's now), as series of one
        point each: one per label set for a vector, one without labels for a scalar. Raises
        PrometheusError, for a range vector (`x[5m]`) too."""
        form = {"query": query}
        if at is not None:
            _require_aware(at)
            form["time"] = _unix(at)
        answer = await self._call("/api/v1/query", query, form)
        return await asyncio.to_thread(_instant_result, answer, query)

    async def _call(self, path: str, query: str, form: dict[str, str]) -> _Answer:
        """The answer as read, unparsed; a failure to get one as a PrometheusError."""
        # Prometheus's own deadline (in seconds), a little inside ours, so a slow query ends there too.
        form = {**form, "timeout": f"{max(self.timeout - 0.5, 0.5):g}"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            try:
                return await self._post(path, form, self.timeout)
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the server had closed (idle, or restarted) fails at once;
                # queries change nothing, so ask again, on a new connection, within the same time.
                return await self._post(path, form, deadline - loop.time())
        except _AnswerTooLarge as exc:
            size = f"{self.max_answer_bytes / (1024 * 1024):g} MB"
            raise PrometheusError(
                query,
                f"the answer is larger than {size}: aggregate the query (`sum by (…)`, `topk(…)`) "
                "so that it returns fewer series",
            ) from exc
        except TimeoutError as exc:
            raise PrometheusError(query, f"no answer from {self.base_url} within {self.timeout:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise PrometheusError(query, f"cannot reach {self.base_url} ({_os_reason(exc)})") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise PrometheusError(query, f"{self.base_url} closed the connection without answering") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PrometheusError(query, f"the request to {self.base_url} failed ({_reason(exc)})") from exc

    async def _post(self, path: str, form: dict[str, str], timeout: float) -> _Answer:
        """Status, reason, content type and body of one POST."""
        if timeout <= 0:
            raise TimeoutError
        async with self.session.post(
            self.base_url + path,
            data=form,  # form-encoded, so a long query never hits a URL length limit
            headers={"Accept": "application/json", **self.headers},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            body = await self._read(response)
            return _Answer(response.status, response.reason or "", response.content_type, body)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, or _AnswerTooLarge as soon as it passes the limit (the connection is then
        closed, not read to its end)."""
        limit = self.max_answer_bytes
        if response.content_length is not None and response.content_length > limit:
            raise _AnswerTooLarge
        body = bytearray()
        async for chunk in response.content.iter_chunked(_READ_CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise _AnswerTooLarge
        return bytes(body)


# What follows runs in a worker thread (`asyncio.to_thread`): pure, CPU only.


def _range_result(
    answer: _Answer, query: str, start: datetime, end: datetime, step: timedelta, max_series: int | None
) -> RangeResult:
    data, warnings, more = _data(answer, query, max_series)
    if data.resultType != "matrix":
        raise PrometheusError(query, f"expected a range of samples (matrix), got a {data.resultType}")
    series = tuple(
        Series(labels=s.metric, points=_points(query, s.values)) for s in _series_list(query, data)
    )
    return RangeResult(
        query=query, start=start, end=end, step=step, series=series, more_series=more, warnings=warnings
    )


def _instant_result(answer: _Answer, query: str) -> tuple[Series, ...]:
    data, _, _ = _data(answer, query, None)
    if data.resultType == "scalar":
        return (Series(labels={}, points=_points(query, [data.result])),)
    if data.resultType != "vector":
        raise PrometheusError(query, f"expected an instant value (vector), got a {data.resultType}")
    return tuple(
        Series(labels=s.metric, points=_points(query, [s.value] if s.value is not None else []))
        for s in _series_list(query, data)
    )


def _data(answer: _Answer, query: str, max_series: int | None) -> tuple[_WireData, tuple[str, ...], int]:
    """The answer's data (its result cut to `max_series` items), its warnings, and how many
    result items were cut; an error answer as a PrometheusError."""
    parsed, more = _parse(answer.body, max_series)
    if answer.status >= 400 or (parsed is not None and parsed.status == "error"):
        raise PrometheusError(query, _http_problem(answer.status, answer.reason, parsed, answer.body))
    if parsed is None:
        raise PrometheusError(
            query, f"the answer is not Prometheus JSON (content type {answer.content_type})"
        )
    if parsed.data is None:
        raise PrometheusError(query, "the answer has no data")
    return parsed.data, tuple(parsed.warnings), more


def _parse(body: bytes, max_series: int | None) -> tuple[_WireAnswer | None, int]:
    try:
        reader = _JsonReader(body.decode("utf-8"), max_series)
        return _WireAnswer.model_validate(reader.document()), reader.cut
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; IndexError: the text ended early.
    except (ValueError, IndexError, RecursionError, ValidationError):
        return None, 0


class _JsonReader:
    """`json.loads`, but the list at `data.result` is decoded one item at a time and only its
    first `limit` items are kept (`cut` counts the others).

    One `json.loads` of a few megabytes holds the GIL throughout (a fifth of a second for 5 MB),
    so the event loop would stall even with the parsing in a thread; between items, it runs."""

    _decoder = json.JSONDecoder()
    _blank = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str, limit: int | None) -> None:
        self.text = text
        self.limit = limit
        self.cut = 0

    def document(self) -> Any:
        value, at = self._value(self._skip(0), ())
        if self._skip(at) != len(self.text):
            raise ValueError("extra data after the JSON document")
        return value

    def _skip(self, at: int) -> int:
        match = self._blank.match(self.text, at)
        return match.end() if match else at

    def _value(self, at: int, path: tuple[str, ...]) -> tuple[Any, int]:
        """The value at `at` and where it ends; `path`: the keys leading to it."""
        opening = self.text[at]
        if opening == "{" and path in ((), ("data",)):
            return self._object(at, path)
        if opening == "[" and path == ("data", "result"):
            return self._items(at)
        return self._decoder.raw_decode(self.text, at)

    def _object(self, at: int, path: tuple[str, ...]) -> tuple[dict[str, Any], int]:
        found: dict[str, Any] = {}
        at = self._skip(at + 1)
        if self.text[at] == "}":
            return found, at + 1
        while True:
            key, at = self._decoder.raw_decode(self.text, at)
            if not isinstance(key, str):
                raise ValueError("an object key is not a string")
            at = self._skip(at)
            if self.text[at] != ":":
                raise ValueError("expected ':'")
            found[key], at = self._value(self._skip(at + 1), (*path, key))
            at = self._skip(at)
            if self.text[at] == "}":
                return found, at + 1
            if self.text[at] != ",":
                raise ValueError("expected ',' or '}'")
            at = self._skip(at + 1)

    def _items(self, at: int) -> tuple[list[Any], int]:
        kept: list[Any] = []
        at = self._skip(at + 1)
        if self.text[at] == "]":
            return kept, at + 1
        while True:
            item, at = self._decoder.raw_decode(self.text, at)
            if self.limit is None or len(kept) < self.limit:
                kept.append(item)
            else:
                self.cut += 1
            at = self._skip(at)
            if self.text[at] == "]":
                return kept, at + 1
            if self.text[at] != ",":
                raise ValueError("expected ',' or ']'")
            at = self._skip(at + 1)


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


def _series_list(query: str, data: _WireData) -> list[_WireSeries]:
    if not isinstance(data.result, list):
        raise PrometheusError(query, "the answer is not in Prometheus's format")
    try:
        return [_WireSeries.model_validate(item) for item in data.result]
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
