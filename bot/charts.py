"""The metrics chart of `/incident metrics <service> [window]`: what to draw, the data drawn, the
PNG and the comment that goes with the upload.

Data first: a `ChartSpec` says what to draw (the service's queries, the window, the markers for
its change events and the incident's declaration); `collect_chart` asks Prometheus and returns the
`ChartData` the picture is drawn from, which tests and the postmortem can read without pixels.
`render_chart` draws it with matplotlib's Agg renderer in a worker thread: a `Figure` of its own
per chart and no pyplot, so no global figure state is shared between threads or with a display.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, computed_field

from bot.blocks import format as fmt
from bot.changes import ChangeEvent
from bot.models import format_duration
from bot.prometheus import Point, PrometheusClient, Series, choose_step
from bot.text import escape_mrkdwn

MAX_SERIES_DRAWN = 10  # per panel; a query returning more should aggregate (`sum by`, `topk`)
LATEST_SHOWN = 3  # series per panel in the upload comment
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_WIDTH_INCHES = 10.0
_PANEL_INCHES = 2.4
_HEADER_INCHES = 0.7
_DPI = 100
_CHANGE_STYLE = {"color": "tab:blue", "linestyle": "--", "linewidth": 1.0}
_DECLARED_STYLE = {"color": "tab:red", "linestyle": "-", "linewidth": 1.5}
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MarkerKind(StrEnum):
    CHANGE = "change"
    DECLARED = "declared"


class Marker(BaseModel):
    """A vertical line across every panel: a change event or the incident's declaration."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    label: str
    kind: MarkerKind


class PanelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    title: str
    query: str


class ChartSpec(BaseModel):
    """What to draw: the panels of one service over `start`..`end`, and the markers in it."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    service: str
    start: datetime
    end: datetime
    panels: tuple[PanelSpec, ...]
    markers: tuple[Marker, ...] = ()

    @property
    def window(self) -> timedelta:
        return self.end - self.start

    @property
    def step(self) -> timedelta:
        return choose_step(self.window)


def chart_spec(
    *,
    incident_id: str,
    service: str,
    queries: Mapping[str, str],
    end: datetime,
    window: timedelta,
    changes: Iterable[ChangeEvent] = (),
    declared_at: datetime | None = None,
) -> ChartSpec:
    """The chart of `service` over the `window` up to `end`: a panel per query, a marker at each
    of that service's changes in the window (labelled with its version, else its kind) and one at
    the declaration (`declared INC-7`) when it falls in the window."""
    if window <= timedelta(0):
        raise ValueError("the window must be longer than zero")
    start = end - window
    markers = [
        Marker(at=c.at, label=c.label, kind=MarkerKind.CHANGE)
        for c in changes
        if c.service == service and start <= c.at <= end
    ]
    if declared_at is not None and start <= declared_at <= end:
        markers.append(Marker(at=declared_at, label=f"declared {incident_id}", kind=MarkerKind.DECLARED))
    return ChartSpec(
        incident_id=incident_id,
        service=service,
        start=start,
        end=end,
        panels=tuple(PanelSpec(title=t, query=q) for t, q in queries.items()),
        markers=tuple(sorted(markers, key=lambda m: m.at)),
    )


class Latest(BaseModel):
    """The last point of one series of a panel."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    labels: str  # `code="500"`, `{}` for a series without labels
    at: datetime
    value: float


class Panel(BaseModel):
    """One panel as drawn: its query and the series Prometheus returned for it (the first
    MAX_SERIES_DRAWN: the others are only counted, never read)."""

    model_config = ConfigDict(frozen=True)

    title: str
    query: str
    series: tuple[Series, ...]
    more_series: int = 0  # series the answer had beyond `series`

    @property
    def series_count(self) -> int:
        """How many series the query returned, drawn or not."""
        return len(self.series) + self.more_series

    @computed_field  # type: ignore[prop-decorator]
    @property
    def latest(self) -> tuple[Latest, ...]:
        """The last point of each series that has one, in the order of the series."""
        return tuple(
            Latest(labels=s.label_text(), at=point.at, value=point.value)
            for s in self.series
            if (point := s.latest) is not None
        )


class ChartData(BaseModel):
    """The chart as drawn: the spec and, per panel, the data."""

    model_config = ConfigDict(frozen=True)

    spec: ChartSpec
    panels: tuple[Panel, ...]

    @property
    def markers(self) -> tuple[Marker, ...]:
        return self.spec.markers

    def panel(self, title: str) -> Panel:
        for panel in self.panels:
            if panel.title == title:
                return panel
        raise KeyError(title)


async def collect_chart(client: PrometheusClient, spec: ChartSpec) -> ChartData:
    """Ask Prometheus for every panel of `spec`, all at once, at one step. Raises the
    PrometheusError of the first failing panel (in panel order), which names its query."""
    answers = await asyncio.gather(
        *(
            client.query_range(p.query, spec.start, spec.end, spec.step, max_series=MAX_SERIES_DRAWN)
            for p in spec.panels
        ),
        return_exceptions=True,
    )
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    panels = tuple(
        Panel(title=p.title, query=p.query, series=answer.series, more_series=answer.more_series)
        for p, answer in zip(spec.panels, answers, strict=True)
        if not isinstance(answer, BaseException)
    )
    return ChartData(spec=spec, panels=panels)


def chart_filename(incident_id: str, service: str) -> str:
    """`INC-7-checkout-metrics.png`; characters a file name should not carry become `-`."""
    safe = _FILE_UNSAFE.sub("-", f"{incident_id}-{service}").strip("-.")
    return f"{safe}-metrics.png"


def format_value(value: float) -> str:
    """Three significant digits, whole and grouped from 1000 up: `0.482`, `12.3`, `1,234`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = f"{value:.3g}"
    return f"{value:,.0f}" if "e+" in text else text


def upload_comment(data: ChartData) -> str:
    """The upload's comment, safe mrkdwn: what the chart shows, then each panel's latest value.

    *INC-7 · checkout*: the last 1h, to 14:05 UTC
    • Error rate: 0.482
    • Requests: 97.1 (code="200"), 3.2 (code="500")
    """
    spec = data.spec
    lines = [
        f"*{escape_mrkdwn(spec.incident_id)} · {escape_mrkdwn(spec.service)}*: "
        f"the last {format_duration(spec.window)}, to {fmt.clock(spec.end.astimezone(UTC))}"
    ]
    for panel in data.panels:
        lines.append(f"• {escape_mrkdwn(panel.title)}: {_latest_text(panel, spec)}")
    return "\n".join(lines)


def latest_values(data: ChartData) -> dict[str, str]:
    """Panel title -> its latest value(s) as the upload's comment shows them (safe mrkdwn)."""
    return {panel.title: _latest_text(panel, data.spec) for panel in data.panels}


def _latest_text(panel: Panel, spec: ChartSpec) -> str:
    if not panel.latest:
        return "no data"
    several = len(panel.latest) > 1
    shown = []
    for latest in panel.latest[:LATEST_SHOWN]:
        text = format_value(latest.value)
        if several:
            text += f" ({escape_mrkdwn(latest.labels)})"
        if latest.at < spec.end - 2 * spec.step:  # the series stopped before the window's end
            text += f" at {fmt.clock(latest.at.astimezone(UTC))}"
        shown.append(text)
    # The series not kept count too: a range answer has no series without a point.
    more = len(panel.latest) + panel.more_series - LATEST_SHOWN
    if more > 0:
        shown.append(f"and {more} more series")
    return ", ".join(shown)


async def render_chart(data: ChartData) -> bytes:
    """`render_png` in a worker thread, so drawing never blocks the event loop."""
    return await asyncio.to_thread(render_png, data)


def render_png(data: ChartData) -> bytes:
    """The chart as PNG bytes: one panel per query, stacked, on one UTC time axis, with a
    vertical line at each marker (labelled in the top panel)."""
    spec = data.spec
    count = max(len(data.panels), 1)
    figure = Figure(
        figsize=(_WIDTH_INCHES, _HEADER_INCHES + _PANEL_INCHES * count), dpi=_DPI, layout="constrained"
    )
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg, never a display
    start, end = spec.start.astimezone(UTC), spec.end.astimezone(UTC)
    figure.suptitle(
        f"{spec.incident_id} · {spec.service} · {fmt.stamp(start)} to {fmt.clock(end)}",
        fontsize=12,
        x=0.01,
        ha="left",
    )
    axes: list[Axes] = list(figure.subplots(count, 1, sharex=True, squeeze=False)[:, 0])
    for index, ax in enumerate(axes):
        if index < len(data.panels):
            _draw_panel(ax, data.panels[index])
        for marker in spec.markers:
            style = _DECLARED_STYLE if marker.kind is MarkerKind.DECLARED else _CHANGE_STYLE
            ax.axvline(marker.at.astimezone(UTC), **style)  # type: ignore[arg-type]
            if index == 0:
                ax.text(
                    marker.at.astimezone(UTC),  # type: ignore[arg-type]
                    0.98,
                    f" {marker.label}",
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=8,
                    color=style["color"],
                )
        ax.grid(True, alpha=0.3)
    bottom = axes[-1]
    bottom.set_xlim(start, end)  # type: ignore[arg-type]
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    form = "%H:%M" if spec.window <= timedelta(days=1) else "%m-%d %H:%M"
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter(form, tz=UTC))  # type: ignore[no-untyped-call]
    bottom.set_xlabel("time (UTC)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_panel(ax: Axes, panel: Panel) -> None:
    ax.set_title(panel.title, loc="left", fontsize=10)
    drawn = panel.series[:MAX_SERIES_DRAWN]
    for series in drawn:
        times = [p.at.astimezone(UTC) for p in series.points]
        values = [_drawable(p) for p in series.points]
        ax.plot(times, values, linewidth=1.4, label=series.label_text())  # type: ignore[arg-type]
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    elif len(drawn) > 1:
        ax.legend(loc="upper left", fontsize=7, ncols=2)
    if panel.series_count > len(drawn):
        ax.text(
            0.99,
            0.02,
            f"{panel.series_count - len(drawn)} more series not drawn",
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            color="grey",
        )


def _drawable(point: Point) -> float:
    """NaN and ±Inf as gaps: matplotlib breaks the line there instead of scaling to infinity."""
    return point.value if math.isfinite(point.value) else math.nan
