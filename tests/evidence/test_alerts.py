"""Alertmanager's webhook payload and what an alert group means for an incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.alerts import (
    BUILTIN_SEVERITY_MAP,
    UNMAPPED_SEVERITY,
    Alert,
    AlertGroup,
    AlertsConfig,
    AlertStatus,
    InvalidAlerts,
    alert_severity,
    assess_group,
    parse_alertmanager,
)
from bot.models import Severity


def alert(status: str = "firing", starts: str = "2026-11-25T13:58:00Z", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "CheckoutErrors", **labels},
        "annotations": {},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=x",
        "fingerprint": "4889ff3223809fa0",
    }


def payload(*alerts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A webhook body as Alertmanager 0.25 sends it (captured from a real one, trimmed)."""
    return {
        "receiver": "incident-bot",
        "status": "firing",
        "alerts": list(alerts) or [alert(severity="critical", service="checkout")],
        "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": {"alertname": "CheckoutErrors"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="CheckoutErrors"}',
        "truncatedAlerts": 0,
        **fields,
    }


def parsed(data: dict[str, Any]) -> AlertGroup:
    result = parse_alertmanager(json.dumps(data).encode())
    assert isinstance(result, AlertGroup), result
    return result


def one(**labels: str) -> Alert:
    return Alert.model_validate(alert(**labels))


def test_the_payload_is_read_whole() -> None:
    first = alert(severity="critical", service="checkout")
    first["annotations"] = {"summary": "5xx above 5%"}
    group = parsed(payload(first, truncatedAlerts=2))
    assert group.group_key == '{}:{alertname="CheckoutErrors"}'
    assert group.status is AlertStatus.FIRING and group.receiver == "incident-bot"
    assert group.external_url == "http://alertmanager.example:9093"
    assert group.truncated_alerts == 2
    (only,) = group.alerts
    assert only.labels == {"alertname": "CheckoutErrors", "severity": "critical", "service": "checkout"}
    assert only.summary == "5xx above 5%" and only.name == "CheckoutErrors" and only.service == "checkout"
    assert only.starts_at == datetime(2026, 11, 25, 13, 58, tzinfo=UTC)
    assert only.ends_at is None  # Alertmanager's zero time means "not set"
    assert only.generator_url.startswith("http://prometheus.example:9090/graph")
    assert only.fingerprint == "4889ff3223809fa0"


def test_a_resolved_alert_keeps_its_end() -> None:
    resolved = alert(status="resolved")
    resolved["endsAt"] = "2026-11-25T14:03:00.123Z"
    group = parsed(payload(resolved, status="resolved"))
    assert group.alerts[0].ends_at == datetime(2026, 11, 25, 14, 3, 0, 123000, tzinfo=UTC)
    assert group.firing == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[]", "the body must be a JSON object (an Alertmanager webhook payload)"),
        (json.dumps(payload(version="3")).encode(), "payload version '3' is not supported: expected '4'"),
        (json.dumps({**payload(), "groupKey": None}).encode(), "groupKey: Input should be a valid string"),
        (json.dumps(payload(alerts=[])).encode(), "alerts is empty"),
        (json.dumps({k: v for k, v in payload().items() if k != "version"}).encode(), "missing version"),
        (json.dumps(payload(status="pending")).encode(), "status: Input should be 'firing' or 'resolved'"),
    ],
)
def test_a_bad_payload_gets_a_message(raw: bytes, message: str) -> None:
    result = parse_alertmanager(raw)
    assert isinstance(result, InvalidAlerts)
    assert result.message == message


def test_builtin_severity_map() -> None:
    assert alert_severity(one(severity="critical")) is Severity.SEV2
    assert alert_severity(one(severity="Warning ")) is Severity.SEV3
    assert alert_severity(one(severity="info")) is Severity.SEV4
    assert alert_severity(one(severity="page")) is UNMAPPED_SEVERITY is Severity.SEV3
    assert alert_severity(one()) is UNMAPPED_SEVERITY


def test_the_playbook_map_goes_over_the_builtin_one() -> None:
    config = AlertsConfig.model_validate({"severity_map": {"Critical": "sev1", "page": "sev2"}})
    mapping = config.mapping()
    assert mapping == {**BUILTIN_SEVERITY_MAP, "critical": Severity.SEV1, "page": Severity.SEV2}
    assert alert_severity(one(severity="critical"), mapping) is Severity.SEV1
    assert alert_severity(one(severity="PAGE"), mapping) is Severity.SEV2
    assert alert_severity(one(severity="warning"), mapping) is Severity.SEV3


def test_incident_severity_label_overrides_any_mapping() -> None:
    assert alert_severity(one(severity="info", incident_severity="SEV1")) is Severity.SEV1
    # One that names no severity is ignored: the alert still gets one.
    assert alert_severity(one(severity="info", incident_severity="sev9")) is Severity.SEV4


def test_a_bad_severity_map_is_refused() -> None:
    with pytest.raises(ValidationError, match="sev9"):
        AlertsConfig.model_validate({"severity_map": {"critical": "sev9"}})
    with pytest.raises(ValidationError, match="listed twice"):
        AlertsConfig.model_validate({"severity_map": {"critical": "sev1", "CRITICAL": "sev2"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AlertsConfig.model_validate({"severity": {"critical": "sev1"}})


def test_a_group_is_as_severe_as_its_most_severe_firing_alert() -> None:
    warning = alert(severity="warning", service="search", starts="2026-11-25T13:50:00Z")
    warning["annotations"] = {"summary": "Search slow"}
    critical = alert(severity="critical", service="checkout", starts="2026-11-25T13:58:00Z")
    critical["annotations"] = {"summary": "Checkout failing"}
    gone = alert(status="resolved", incident_severity="sev1", service="payments")
    assessed = assess_group(parsed(payload(warning, critical, gone)))
    assert assessed.severity is Severity.SEV2
    assert assessed.summary == "Checkout failing"
    assert assessed.service == "checkout"
    assert assessed.lead.labels["service"] == "checkout"
    assert assessed.started_at == datetime(2026, 11, 25, 13, 50, tzinfo=UTC)  # the earliest firing
    assert assessed.firing and assessed.firing_count == 2 and assessed.alert_count == 3


def test_the_summary_falls_back_to_the_alert_name_and_the_service_to_common_labels() -> None:
    group = parsed(
        payload(alert(severity="info"), commonLabels={"alertname": "CheckoutErrors", "service": "checkout"})
    )
    assessed = assess_group(group)
    assert assessed.summary == "CheckoutErrors"
    assert assessed.service == "checkout"
    assert assessed.severity is Severity.SEV4


def test_a_resolved_group_is_assessed_from_all_its_alerts() -> None:
    group = parsed(payload(alert(status="resolved", severity="critical"), status="resolved"))
    assessed = assess_group(group)
    assert not assessed.firing and assessed.firing_count == 0
    assert assessed.severity is Severity.SEV2 and assessed.service is None
