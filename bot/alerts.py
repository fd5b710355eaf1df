"""Alerts from Alertmanager: its webhook payload (version 4) as models, and what an alert group
means for an incident: its severity, its summary, its service. Pure: no I/O, no Slack.

Alertmanager posts one alert group per request and posts the same group (`groupKey`) again every
`group_interval` while something in it changed, every `repeat_interval` while it fires, and again
after a failed delivery; the group key is what ties those notifications together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from bot.models import Severity

# The mapping of the alert label `severity` that holds unless the playbook's
# `alerts.severity_map` says otherwise for a value.
BUILTIN_SEVERITY_MAP: dict[str, Severity] = {
    "critical": Severity.SEV2,
    "warning": Severity.SEV3,
    "info": Severity.SEV4,
}
# For an alert whose `severity` label is missing or mapped to nothing: the middle of the scale,
# so a click declares something that gets attention, and the commander can move it either way.
UNMAPPED_SEVERITY = Severity.SEV3
SEVERITY_LABEL = "severity"
OVERRIDE_LABEL = "incident_severity"  # `incident_severity: sev1` wins over any mapping
SERVICE_LABEL = "service"
MAX_BODY_BYTES = 1024 * 1024
SUMMARY_MAX_CHARS = 300

# Alertmanager writes a zero time (`0001-01-01T00:00:00Z`) for "not set".
_ZERO_YEAR = 1


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _unset_if_zero(at: datetime | None) -> datetime | None:
    return None if at is None or at.year <= _ZERO_YEAR else at


class Alert(BaseModel):
    """One alert of a group, as Alertmanager sends it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: Annotated[datetime | None, AfterValidator(_unset_if_zero)] = Field(None, alias="startsAt")
    ends_at: Annotated[datetime | None, AfterValidator(_unset_if_zero)] = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def summary(self) -> str:
        """`annotations.summary`, else the alert's name, else `alert`."""
        text = self.annotations.get("summary", "").strip() or self.name.strip() or "alert"
        return " ".join(text.split())[:SUMMARY_MAX_CHARS]

    @property
    def service(self) -> str | None:
        return self.labels.get(SERVICE_LABEL) or None

    @property
    def is_firing(self) -> bool:
        return self.status is AlertStatus.FIRING


class AlertGroup(BaseModel):
    """One webhook notification: a group of alerts that share `groupKey`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    status: AlertStatus
    receiver: str = ""
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    # Alerts left out of `alerts` by the receiver's `max_alerts`.
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)

    @field_validator("alerts")
    @classmethod
    def _not_empty(cls, alerts: tuple[Alert, ...]) -> tuple[Alert, ...]:
        if not alerts:
            raise ValueError("is empty")
        return alerts

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.is_firing)


class AlertsConfig(BaseModel):
    """The playbook's `alerts` key. `severity_map`: label `severity` value -> incident severity,
    merged over `BUILTIN_SEVERITY_MAP`; values are matched without regard to case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity_map: dict[str, Severity] = {}

    @field_validator("severity_map")
    @classmethod
    def _clean_keys(cls, mapping: dict[str, Severity]) -> dict[str, Severity]:
        cleaned: dict[str, Severity] = {}
        for label, severity in mapping.items():
            key = label.strip().lower()
            if not key:
                raise ValueError("a severity label is empty")
            if key in cleaned:
                raise ValueError(f"the severity label {key!r} is listed twice")
            cleaned[key] = severity
        return cleaned

    def mapping(self) -> dict[str, Severity]:
        """The built-in map with the playbook's entries over it."""
        return {**BUILTIN_SEVERITY_MAP, **self.severity_map}


def alert_severity(alert: Alert, mapping: dict[str, Severity] = BUILTIN_SEVERITY_MAP) -> Severity:
    """The incident severity an alert asks for: its `incident_severity` label when that names a
    severity (`sev1`…`sev4`, any case), else its `severity` label through `mapping` (lower-case
    keys, as `AlertsConfig.mapping()` gives), else `UNMAPPED_SEVERITY`. An unusable override is
    ignored rather than refused: the alert still needs a severity."""
    override = alert.labels.get(OVERRIDE_LABEL, "").strip().lower()
    if override in {s.value for s in Severity}:
        return Severity(override)
    label = alert.labels.get(SEVERITY_LABEL, "").strip().lower()
    return mapping.get(label, UNMAPPED_SEVERITY)


@dataclass(frozen=True)
class GroupAssessment:
    """What the triage message and a declaration need to know of an alert group.

    `lead` is the alert the group is shown by: the most severe of the firing alerts (of all
    alerts, once none fires), the earliest started among equals."""

    group_key: str
    firing: bool
    severity: Severity
    summary: str
    service: str | None
    started_at: datetime | None
    lead: Alert
    alert_count: int  # as sent, plus those truncated
    firing_count: int


def assess_group(group: AlertGroup, mapping: dict[str, Severity] = BUILTIN_SEVERITY_MAP) -> GroupAssessment:
    """The group's severity and summary are those of its most severe alert; its service is the
    common `service` label, else the lead alert's; it started when its earliest firing alert did."""
    candidates = group.firing or group.alerts
    lead = min(candidates, key=lambda a: (alert_severity(a, mapping).rank, _sort_time(a.starts_at)))
    starts = [a.starts_at for a in candidates if a.starts_at is not None]
    return GroupAssessment(
        group_key=group.group_key,
        firing=group.status is AlertStatus.FIRING,
        severity=alert_severity(lead, mapping),
        summary=lead.summary,
        service=group.common_labels.get(SERVICE_LABEL) or lead.service,
        started_at=min(starts) if starts else None,
        lead=lead,
        alert_count=len(group.alerts) + group.truncated_alerts,
        firing_count=len(group.firing),
    )


def _sort_time(at: datetime | None) -> float:
    return at.timestamp() if at is not None else float("inf")


@dataclass(frozen=True)
class InvalidAlerts:
    """Why a webhook body was refused: `message` is the 400 answer, one line."""

    message: str


def parse_alertmanager(body: bytes) -> AlertGroup | InvalidAlerts:
    """A `POST /alerts/alertmanager` body as an AlertGroup, or what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        return InvalidAlerts(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return InvalidAlerts("the body is not JSON")
    if not isinstance(data, dict):
        return InvalidAlerts("the body must be a JSON object (an Alertmanager webhook payload)")
    if "version" in data and data["version"] != "4":
        return InvalidAlerts(f"payload version {data['version']!r} is not supported: expected '4'")
    try:
        return AlertGroup.model_validate(data)
    except ValidationError as exc:
        return InvalidAlerts(_problems(exc))


def _problems(exc: ValidationError, shown: int = 3) -> str:
    errors = exc.errors(include_url=False)
    problems = []
    for error in errors[:shown]:
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(f"missing {field}")
        else:
            problems.append(f"{field} {message}" if error["type"] == "value_error" else f"{field}: {message}")
    if len(errors) > shown:
        problems.append(f"and {len(errors) - shown} more")
    return "; ".join(problems)
