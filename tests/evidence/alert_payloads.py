"""Alertmanager webhook bodies (version 4) for the triage tests, shaped as a real one sends them."""

from __future__ import annotations

import json
from typing import Any

from bot.alerts import AlertGroup, parse_alertmanager

GROUP_KEY = '{}:{alertname="CheckoutErrors", service="checkout"}'
STARTED = "2026-11-25T13:58:00Z"
ZERO_TIME = "0001-01-01T00:00:00Z"


def alert(
    name: str = "CheckoutErrors",
    *,
    status: str = "firing",
    summary: str | None = "Checkout 5xx above 5%",
    starts: str = STARTED,
    ends: str = ZERO_TIME,
    fingerprint: str = "4889ff3223809fa0",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "service": "checkout", "severity": "critical", **labels},
        "annotations": {} if summary is None else {"summary": summary},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=x&g0.tab=1",
        "fingerprint": fingerprint,
    }


def body(*alerts: dict[str, Any], group_key: str = GROUP_KEY, **fields: Any) -> dict[str, Any]:
    """The group is resolved when every alert is."""
    listed = list(alerts) or [alert()]
    status = "firing" if any(a["status"] == "firing" for a in listed) else "resolved"
    return {
        "receiver": "incident-bot",
        "status": status,
        "alerts": listed,
        "groupLabels": {"alertname": "CheckoutErrors", "service": "checkout"},
        "commonLabels": {"alertname": "CheckoutErrors", "service": "checkout"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        **fields,
    }


def resolved(ends: str = "2026-11-25T14:10:00Z", **kwargs: Any) -> dict[str, Any]:
    return alert(status="resolved", ends=ends, **kwargs)


def group(*alerts: dict[str, Any], **fields: Any) -> AlertGroup:
    parsed = parse_alertmanager(json.dumps(body(*alerts, **fields)).encode())
    assert isinstance(parsed, AlertGroup), parsed
    return parsed


def encoded(*alerts: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps(body(*alerts, **fields)).encode()
