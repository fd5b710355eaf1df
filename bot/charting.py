"""The metrics chart an `UploadChart` effect asks for, drawn for the delivery loop: the service's
queries from the playbook, its change events from the change log, the data from Prometheus, the
PNG rendered off the event loop, and the comment and alt text that go with the upload.

No Slack here: `bot.delivery` uploads what `ChartMaker.draw` returns, or says in the channel why
there is no chart (`ChartUnavailable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

import aiohttp

from bot.change_log import ChangeLog
from bot.charts import (
    ChartData,
    chart_filename,
    chart_spec,
    collect_chart,
    latest_values,
    render_chart,
    upload_comment,
)
from bot.effects import UploadChart
from bot.models import Incident, format_duration
from bot.playbook import ServiceQueries
from bot.prometheus import DEFAULT_TIMEOUT_SECONDS, PrometheusClient, PrometheusError
from bot.text import escape_mrkdwn, truncate

log = logging.getLogger(__name__)

ALT_TEXT_MAX_CHARS = 1000  # files.getUploadURLExternal refuses longer alt text


class ChartUnavailable(Exception):
    """Why a chart could not be drawn: `str(error)` is one line of safe mrkdwn for the channel."""


@dataclass(frozen=True)
class DrawnChart:
    data: ChartData
    png: bytes
    filename: str
    comment: str  # safe mrkdwn: what the chart shows and each panel's latest value
    alt_text: str

    @property
    def latest(self) -> dict[str, str]:
        return latest_values(self.data)


def chart_title(incident_id: str, work: UploadChart) -> str:
    """The upload's title: `INC-7 checkout metrics, the last 1h to 2026-11-25 14:05:09 UTC`. It
    names the request (its end, to the second), so an upload whose answer was lost is found by
    file name and title and never mistaken for another chart of the same service."""
    end = work.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{incident_id} {work.service} metrics, the last {format_duration(work.window)} to {end}"


class ChartMaker:
    """Draws charts from the Prometheus at `prometheus_url`, over the HTTP session `session()`
    returns (the bot's shared one, open once the bot started)."""

    def __init__(
        self,
        *,
        prometheus_url: str,
        session: Callable[[], aiohttp.ClientSession | None],
        services: Mapping[str, ServiceQueries],
        changes: ChangeLog | None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.prometheus_url = prometheus_url
        self.session = session
        self.services = services
        self.changes = changes
        self.timeout = timeout

    async def draw(self, incident: Incident, work: UploadChart) -> DrawnChart:
        """The chart of `work.service` over its window, with a marker at each of the service's
        change events and at the declaration. Raises ChartUnavailable when the playbook has no
        queries for the service or Prometheus cannot answer one of them; StoreUnavailable when
        the change events cannot be read (the effect is tried again)."""
        service = self.services.get(work.service)
        if service is None:
            raise ChartUnavailable(
                f"the playbook has no queries for *{escape_mrkdwn(work.service)}* (its `services` key)"
            )
        session = self.session()
        if session is None:
            raise RuntimeError("the bot's HTTP session is not open yet")
        start = work.end - work.window
        changes = await self.changes.between(start, work.end) if self.changes is not None else []
        spec = chart_spec(
            incident_id=incident.id,
            service=work.service,
            queries=service.queries,
            end=work.end,
            window=work.window,
            changes=changes,
            declared_at=incident.declared_at,
        )
        client = PrometheusClient(session, self.prometheus_url, timeout=self.timeout)
        try:
            data = await collect_chart(client, spec)
        except PrometheusError as exc:
            titles = [p.title for p in spec.panels if p.query == exc.query]
            panel = f"panel *{escape_mrkdwn(titles[0])}*: " if titles else ""
            raise ChartUnavailable(f"{panel}{escape_mrkdwn(str(exc))}") from exc
        try:
            png = await render_chart(data)
        except Exception as exc:  # a drawing bug must not keep the effect retrying forever
            log.exception("%s: drawing the %s chart failed", incident.id, work.service)
            raise ChartUnavailable(
                f"drawing it failed ({type(exc).__name__}); the bot's log has more"
            ) from exc
        panels = ", ".join(p.title for p in spec.panels)
        alt_text = f"Metrics of {work.service} over the last {format_duration(work.window)}: {panels}"
        return DrawnChart(
            data=data,
            png=png,
            filename=chart_filename(incident.id, work.service),
            comment=upload_comment(data),
            alt_text=truncate(alt_text, ALT_TEXT_MAX_CHARS),
        )
