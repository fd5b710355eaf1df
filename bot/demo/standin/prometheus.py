"""A loopback stand-in for Prometheus's query API, for the demo: every query answers one series
that sits at `before` until `rise_at`, then at `after`, with a little deterministic wobble.

It answers what the bot asks (`POST /api/v1/query_range` and `/api/v1/query`, form-encoded) in
Prometheus's JSON shape, and records the queries. A real Prometheus is what the tests use.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from types import TracebackType

from aiohttp import web


class PrometheusStandIn:
    def __init__(self, rise_at: datetime, *, before: float = 0.004, after: float = 0.31) -> None:
        self.rise_at = rise_at
        self.before = before
        self.after = after
        self.queries: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> PrometheusStandIn:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", self._range)
        app.router.add_post("/api/v1/query", self._instant)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def value_at(self, unix: float) -> float:
        level = self.after if unix >= self.rise_at.timestamp() else self.before
        return level * (1 + 0.08 * math.sin(unix / 37))

    async def _range(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            query = str(form["query"])
            start, end, step = float(str(form["start"])), float(str(form["end"])), float(str(form["step"]))
        except (KeyError, ValueError):
            return _error("bad_data", "query, start, end and step are required")
        if step <= 0 or end < start or (end - start) / step > 11_000:
            return _error("bad_data", "exceeded maximum resolution of 11,000 points per timeseries")
        self.queries.append(query)
        count = int((end - start) // step) + 1
        values = [[start + i * step, f"{self.value_at(start + i * step):.6f}"] for i in range(count)]
        return _success("matrix", [{"metric": {}, "values": values}])

    async def _instant(self, request: web.Request) -> web.Response:
        form = await request.post()
        query = str(form.get("query", ""))
        at = float(str(form.get("time", datetime.now(UTC).timestamp())))
        self.queries.append(query)
        return _success("vector", [{"metric": {}, "value": [at, f"{self.value_at(at):.6f}"]}])


def _success(kind: str, result: list[dict[str, object]]) -> web.Response:
    return web.json_response({"status": "success", "data": {"resultType": kind, "result": result}})


def _error(kind: str, message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": kind, "error": message}, status=400)
