"""The playbook: severities, their update cadence and their checklists.

The built-in playbook ships as `playbook.yml` in this package; a user's file is merged over it,
key by key within each severity, and the result is validated before the bot starts.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.models import ChecklistItem, ChecklistSection, Duration, Phase, Severity, item_id
from bot.text import escape_mrkdwn

# Slack's limit on the text of an option in a checkboxes element.
ITEM_MAX_CHARS = 75
TITLE_MAX_CHARS = 150
DEFAULT_DIGEST_EVERY = "1h"


class ChecklistSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    phase: Phase = Phase.ASSESS
    items: list[str] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _items_fit_slack(cls, items: list[str]) -> list[str]:
        cleaned = []
        for n, raw in enumerate(items, start=1):
            text = str(raw).strip()
            if not text:
                raise ValueError(f"item {n} is empty")
            # Slack counts the escaped text, so `&` costs five characters.
            if len(escape_mrkdwn(text)) > ITEM_MAX_CHARS:
                raise ValueError(
                    f"item {n} is longer than Slack allows ({ITEM_MAX_CHARS} characters): {text!r}"
                )
            cleaned.append(text)
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("an item is listed twice")
        return cleaned

    def section(self) -> ChecklistSection:
        return ChecklistSection(
            title=self.title,
            items=tuple(ChecklistItem(id=item_id(self.title, t), text=t) for t in self.items),
        )


class SeveritySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=20)
    description: str = Field(min_length=1, max_length=300)
    response: str = Field(min_length=1, max_length=300)
    update_every: Duration
    checklists: list[ChecklistSpec] = Field(min_length=1)

    def sections_by_phase(self) -> dict[Phase, list[ChecklistSection]]:
        """Checklists grouped by phase, phases in the order of the incident flow."""
        grouped: dict[Phase, list[ChecklistSection]] = {}
        for phase in Phase:
            sections = [c.section() for c in self.checklists if c.phase is phase]
            if sections:
                grouped[phase] = sections
        return grouped


class SeverityTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sev1: SeveritySpec
    sev2: SeveritySpec
    sev3: SeveritySpec
    sev4: SeveritySpec


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digest_every: Duration | None = Field(default=DEFAULT_DIGEST_EVERY)  # type: ignore[assignment]
    verification: ChecklistSpec
    severities: SeverityTable

    def severity(self, severity: Severity) -> SeveritySpec:
        spec: SeveritySpec = getattr(self.severities, severity.value)
        return spec


class PlaybookError(Exception):
    """A playbook that cannot be used; the message names the file, the key and the problem."""


def _builtin_data() -> dict[str, Any]:
    text = resources.files("bot").joinpath("playbook.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _read_user_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read the playbook: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: the playbook must be a mapping of keys, not {type(data).__name__}")
    return data


def merge_playbook(base: dict[str, Any], override: dict[str, Any], source: str) -> dict[str, Any]:
    """Merge `override` over `base`: top-level keys replace, `severities.<sevN>` merge key by key."""
    merged = {k: v for k, v in base.items() if k != "severities"}
    severities = {k: dict(v) for k, v in base.get("severities", {}).items()}
    for key, value in override.items():
        if key != "severities":
            merged[key] = value
            continue
        if not isinstance(value, dict):
            raise PlaybookError(f"{source}: severities: must be a mapping of sev1..sev4")
        for sev, fields in value.items():
            if sev not in severities:
                valid = ", ".join(s.value for s in Severity)
                raise PlaybookError(f"{source}: severities.{sev}: unknown severity (valid: {valid})")
            if not isinstance(fields, dict):
                raise PlaybookError(f"{source}: severities.{sev}: must be a mapping of keys")
            severities[sev] = {**severities[sev], **fields}
    merged["severities"] = severities
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        lines.append(f"{source}: {key}: {problem}")
    return "\n".join(lines)


def load_playbook(path: Path | None = None) -> Playbook:
    """The built-in playbook, with the file at `path` merged over it when given."""
    data = _builtin_data()
    source = "built-in playbook"
    if path is not None:
        source = str(path)
        data = merge_playbook(data, _read_user_file(path), source)
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError(_describe(exc, source)) from None
