"""The postmortem's evidence from outside Slack: the alert the incident was declared from, the
changes of the two hours before declaring, and the metrics charts' latest values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.changes import ChangeEvent, ChangeKind
from bot.models import AlertNote, ChartNote, Incident, Severity
from bot.postmortem import SECTIONS, postmortem_markdown

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
NOTHING_NOTED = "### Notes\n\nNone.\n\n### Messages added to the timeline\n\nNone."


def incident(**fields: Any) -> Incident:
    return Incident(
        id="INC-7",
        uid="0f3c9a2b",
        number=7,
        severity=Severity.SEV2,
        title="Checkout requests failing",
        declared_by="UDANA",
        commander="UDANA",
        declared_at=T0,
        updated_at=T0,
        origin_channel="CORIGIN",
        channel_id="CINCIDENT",
        **fields,
    )


def evidence(of: Incident) -> str:
    markdown = postmortem_markdown(of, lambda s: s.value.upper(), [], [], {}, lambda u: u or "bot", {})
    assert re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE) == list(SECTIONS)
    return markdown.split("## Evidence\n\n", 1)[1].split("\n\n## ", 1)[0]


def test_without_alert_changes_or_charts_the_evidence_is_as_before() -> None:
    assert evidence(incident()) == NOTHING_NOTED


def test_the_alert_it_was_declared_from() -> None:
    alert = AlertNote(
        group_key='{}:{alertname="HighErrorRate"}',
        summary="Error rate *above* 5% on checkout",
        severity=Severity.SEV2,
        service="checkout",
        labels={"severity": "critical", "alertname": "HighErrorRate", "service": "checkout"},
        started_at=T0 - timedelta(minutes=3),
        link="http://prometheus:9090/graph?g0.expr=rate%28x%29&g0.tab=1",
    )
    assert evidence(incident(alert=alert)) == (
        "### Alert\n\n"
        "- **Summary:** Error rate \\*above\\* 5% on checkout\n"
        "- **Severity it asked for:** SEV2\n"
        "- **Service:** checkout\n"
        "- **Started:** 2026-11-25 13:57 UTC\n"
        "- **Labels:** alertname=HighErrorRate, service=checkout, severity=critical\n"
        "- **Link:** [the alert's query](http://prometheus:9090/graph?g0.expr=rate%28x%29&g0.tab=1)\n\n"
        + NOTHING_NOTED
    )


def test_an_alert_link_that_would_break_the_markdown_is_left_out() -> None:
    alert = AlertNote(group_key="g", summary="s", severity=Severity.SEV3, link="http://x/a b)")
    shown = evidence(incident(alert=alert))
    assert "Link" not in shown
    assert "- **Severity it asked for:** SEV3" in shown


def test_the_changes_before_declaring_in_the_order_shown_at_declaration() -> None:
    changes = (
        ChangeEvent(
            service="checkout",
            kind=ChangeKind.DEPLOY,
            version="v2.3.1",
            by="ci",
            description="Bump the *pool* size\nand the timeout",
            url="https://ci.example.com/runs/42",
            at=T0 - timedelta(minutes=58),
        ),
        ChangeEvent(service="payments", kind=ChangeKind.FLAG, at=T0 - timedelta(days=1)),
    )
    assert evidence(incident(changes=changes)) == (
        "### Changes in the two hours before declaring\n\n"
        "- 13:02 UTC: checkout deploy v2.3.1 by ci: Bump the \\*pool\\* size and the timeout "
        "([link](https://ci.example.com/runs/42))\n"
        "- 2026-11-24 14:00 UTC: payments flag\n\n" + NOTHING_NOTED
    )


def test_changes_past_those_kept_are_counted_as_the_recent_changes_message_counts_them() -> None:
    changes = tuple(
        ChangeEvent(service="checkout", kind=ChangeKind.DEPLOY, version=f"v{n}", at=T0 - timedelta(minutes=n))
        for n in range(30)
    )
    lines = evidence(incident(changes=changes, changes_total=42)).split("\n\n")[1].splitlines()
    assert len(lines) == 31
    assert lines[0] == "- 14:00 UTC: checkout deploy v0" and lines[-1] == "- …and 12 more."
    # All of them kept (or an incident stored before the count was): no count line.
    assert "more" not in evidence(incident(changes=changes[:3]))


def test_the_charts_latest_values() -> None:
    charts = (
        ChartNote(
            service="checkout",
            window=timedelta(hours=1),
            end=T0 + timedelta(minutes=5),
            latest={"Error rate": "0.31", "Requests": '97.1 (code="200"), 3.2 (code=&lt;5xx&gt;)'},
            file="INC-7-checkout-metrics.png",
        ),
        ChartNote(service="checkout", window=timedelta(minutes=5), end=T0 + timedelta(minutes=9)),
    )
    assert evidence(incident(charts=charts)) == (
        "### Metrics charts (latest values)\n\n"
        "- checkout, the last 1h to 14:05 UTC (INC-7-checkout-metrics.png): Error rate: 0.31; "
        'Requests: 97.1 (code="200"), 3.2 (code=\\<5xx\\>)\n'
        "- checkout, the last 5m to 14:09 UTC: no data\n\n" + NOTHING_NOTED
    )


def test_all_three_come_before_the_notes() -> None:
    alert = AlertNote(group_key="g", summary="s", severity=Severity.SEV2)
    change = ChangeEvent(service="checkout", kind=ChangeKind.CONFIG, at=T0)
    chart = ChartNote(service="checkout", window=timedelta(hours=1), end=T0, latest={"Up": "1"})
    shown = evidence(incident(alert=alert, changes=(change,), charts=(chart,)))
    headings = re.findall(r"^### (.+)$", shown, flags=re.MULTILINE)
    assert headings == [
        "Alert",
        "Changes in the two hours before declaring",
        "Metrics charts (latest values)",
        "Notes",
        "Messages added to the timeline",
    ]
