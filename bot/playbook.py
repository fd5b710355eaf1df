"""The playbook: severities, their update cadence and checklists, the checklists of each phase,
runbooks, roles, and who may resolve an incident or lower its severity.

The built-in playbook ships as `playbook.yml` in this package; a user's file is merged over it and
the result is validated before the bot starts. How each top-level key merges:

- `severities`: per severity, key by key (`severities.sev2.update_every` alone changes only that).
- `phase_checklists`: per phase; a phase's list replaces the built-in list whole, `[]` turns that
  phase's checklists off, and phases the file does not name keep the built-in lists.
- `runbooks`, `roles`: per name; the file's entry is added, or replaces the built-in one of that
  name whole. Built-in entries cannot be removed, only replaced.
- `permissions`: per action (`resolve`, `lower_severity`).
- anything else (`digest_every`, `verification`): replaced whole.

Every checklist item (severity checklists, verification, phase checklists, runbook steps) has the
id `item_id(title, text)`, and an incident tracks its items and ticks by id, so an id may belong
to one checklist only. The exception is the severities: an item that sev1 and sev2 both list is
one item by design, and a severity change does not post it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.alerts import AlertsConfig
from bot.changes import service_name
from bot.models import ChecklistItem, ChecklistSection, Duration, Phase, Severity, item_id
from bot.text import escape_mrkdwn

# Slack's limit on the text of an option in a checkboxes element.
ITEM_MAX_CHARS = 75
TITLE_MAX_CHARS = 150
SYMPTOM_MAX_CHARS = 75
RUNBOOK_NAME_MAX_CHARS = 30
ROLE_KEY_MAX_CHARS = 20
ROLE_LABEL_MAX_CHARS = 40
COMMANDER_ROLE = "commander"
DEFAULT_DIGEST_EVERY = "1h"

_RUNBOOK_NAME = re.compile(rf"[a-z0-9-]{{1,{RUNBOOK_NAME_MAX_CHARS}}}")
_ROLE_KEY = re.compile(rf"[a-z][a-z0-9_-]{{0,{ROLE_KEY_MAX_CHARS - 1}}}")

Loc = tuple[str | int, ...]


class _KeyedProblems(ValueError):
    """Problems found below the key being validated, each with its path from that key, so the
    message can name the exact key (`phase_checklists.fix.0.phase`) rather than its parent."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{_key(path)}: {problem}" for path, problem in problems))
        self.problems = problems


def _clean_texts(texts: list[str], noun: str, limit: int, limit_text: str) -> list[str]:
    """Stripped, none empty, none repeated, each within `limit` once escaped for Slack mrkdwn."""
    cleaned = []
    for n, raw in enumerate(texts, start=1):
        text = str(raw).strip()
        if not text:
            raise ValueError(f"{noun} {n} is empty")
        # Slack counts the escaped text, so `&` costs five characters.
        if len(escape_mrkdwn(text)) > limit:
            raise ValueError(f"{noun} {n} is longer than {limit_text}: {text!r}")
        cleaned.append(text)
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"a{'n' if noun[0] in 'aeiou' else ''} {noun} is listed twice")
    return cleaned


def _checkbox_texts(texts: list[str], noun: str) -> list[str]:
    return _clean_texts(texts, noun, ITEM_MAX_CHARS, f"Slack allows ({ITEM_MAX_CHARS} characters)")


def _section(title: str, texts: Iterable[str]) -> ChecklistSection:
    return ChecklistSection(
        title=title, items=tuple(ChecklistItem(id=item_id(title, t), text=t) for t in texts)
    )


class ChecklistSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    phase: Phase = Phase.ASSESS
    items: list[str] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _items_fit_slack(cls, items: list[str]) -> list[str]:
        return _checkbox_texts(items, "item")

    def section(self) -> ChecklistSection:
        return _section(self.title, self.items)


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


class RunbookSpec(BaseModel):
    """What to look into for one kind of problem: how it shows, and the steps to investigate it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    symptoms: list[str] = Field(min_length=1)
    steps: list[str] = Field(min_length=1)

    @field_validator("symptoms")
    @classmethod
    def _symptoms_are_short(cls, symptoms: list[str]) -> list[str]:
        return _clean_texts(symptoms, "symptom", SYMPTOM_MAX_CHARS, f"{SYMPTOM_MAX_CHARS} characters")

    @field_validator("steps")
    @classmethod
    def _steps_fit_slack(cls, steps: list[str]) -> list[str]:
        return _checkbox_texts(steps, "step")

    def section(self) -> ChecklistSection:
        """The steps as one checklist, titled after the runbook."""
        return _section(self.title, self.steps)


class Permission(StrEnum):
    """Who may take an action: anyone in the incident, or only its commander."""

    MEMBER = "member"
    COMMANDER = "commander"


class Permissions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resolve: Permission = Permission.MEMBER
    lower_severity: Permission = Permission.MEMBER


def _phase(value: object) -> Phase:
    if isinstance(value, str) and value in tuple(Phase):
        return Phase(value)
    raise ValueError(f"unknown phase (valid: {', '.join(Phase)})")


def _runbook_name(name: str) -> str:
    if not _RUNBOOK_NAME.fullmatch(name):
        raise ValueError(
            "a runbook name is lowercase letters, digits and '-', "
            f"at most {RUNBOOK_NAME_MAX_CHARS} characters"
        )
    return name


def _role_key(key: str) -> str:
    if not _ROLE_KEY.fullmatch(key):
        raise ValueError(
            "a role key is a lowercase letter then lowercase letters, digits, '_' or '-', "
            f"at most {ROLE_KEY_MAX_CHARS} characters"
        )
    return key


PhaseName = Annotated[Phase, BeforeValidator(_phase)]
RunbookName = Annotated[str, AfterValidator(_runbook_name)]
RoleKey = Annotated[str, AfterValidator(_role_key)]
ServiceName = Annotated[str, AfterValidator(service_name)]
RoleLabel = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ROLE_LABEL_MAX_CHARS)
]


# A service's chart (`services.<name>.queries`): a panel per query, drawn in the order written.
MAX_PANELS = 6
PANEL_TITLE_MAX_CHARS = 60
QUERY_MAX_CHARS = 2000


class ServiceQueries(BaseModel):
    """The playbook's `services.<name>`: `queries` maps a panel title to its PromQL, drawn in
    the order written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queries: dict[str, str] = Field(min_length=1, max_length=MAX_PANELS)

    @field_validator("queries")
    @classmethod
    def _clean(cls, queries: dict[str, str]) -> dict[str, str]:
        cleaned = {}
        for title, query in queries.items():
            name, promql = str(title).strip(), str(query).strip()
            if not name or len(name) > PANEL_TITLE_MAX_CHARS:
                raise ValueError(f"a panel title must be 1 to {PANEL_TITLE_MAX_CHARS} characters: {name!r}")
            if not promql or len(promql) > QUERY_MAX_CHARS:
                raise ValueError(f"the query of {name!r} must be 1 to {QUERY_MAX_CHARS} characters")
            cleaned[name] = promql
        return cleaned



class _Place(NamedTuple):
    """Where a checklist's items live, for the check that no item id belongs to two checklists."""

    group: str  # checklists of one group may share an item: the severities
    unit: Loc  # within one unit (a severity, a phase, a runbook), an id appears once
    where: Loc  # the key of the items, for messages
    title: str
    texts: list[str]


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digest_every: Duration | None = Field(default=DEFAULT_DIGEST_EVERY)  # type: ignore[assignment]
    verification: ChecklistSpec
    severities: SeverityTable
    # Posted the first time an incident enters the phase; each checklist's `phase` is its key.
    phase_checklists: dict[PhaseName, list[ChecklistSpec]] = Field(default_factory=dict)
    runbooks: dict[RunbookName, RunbookSpec] = Field(default_factory=dict)
    roles: dict[RoleKey, RoleLabel] = Field(default_factory=lambda: {COMMANDER_ROLE: "Incident commander"})
    permissions: Permissions = Field(default_factory=Permissions)
    # Alertmanager's alerts: label `severity` -> incident severity, over the built-in map.
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    # Services whose metrics `/incident metrics <service>` charts; names as change events give them.
    services: dict[ServiceName, ServiceQueries] = Field(default_factory=dict)

    @field_validator("phase_checklists")
    @classmethod
    def _phase_is_the_key(
        cls, by_phase: dict[Phase, list[ChecklistSpec]]
    ) -> dict[Phase, list[ChecklistSpec]]:
        """A checklist may leave out `phase` (it is the key) or repeat it, not contradict it."""
        problems: list[tuple[Loc, str]] = []
        for phase, specs in by_phase.items():
            for n, spec in enumerate(specs):
                if "phase" in spec.model_fields_set and spec.phase is not phase:
                    problems.append(
                        (
                            (phase.value, n, "phase"),
                            f"is {spec.phase.value} but the checklist is listed under {phase.value}: "
                            "leave the phase out or make the two agree",
                        )
                    )
        if problems:
            raise _KeyedProblems(problems)
        return {
            phase: [ChecklistSpec(title=s.title, phase=phase, items=s.items) for s in specs]
            for phase, specs in by_phase.items()
        }

    @field_validator("roles")
    @classmethod
    def _has_a_commander(cls, roles: dict[str, str]) -> dict[str, str]:
        if COMMANDER_ROLE not in roles:
            raise ValueError(f"must include the {COMMANDER_ROLE} role")
        return roles

    @model_validator(mode="after")
    def _each_item_id_belongs_to_one_checklist(self) -> Playbook:
        problems = _repeated_item_ids(self._places())
        if problems:
            raise _KeyedProblems(problems)
        return self

    def _places(self) -> Iterator[_Place]:
        for severity in Severity:
            unit: Loc = ("severities", severity.value)
            for n, spec in enumerate(self.severity(severity).checklists):
                yield _Place("severities", unit, (*unit, "checklists", n, "items"), spec.title, spec.items)
        verification = self.verification
        yield _Place(
            "verification",
            ("verification",),
            ("verification", "items"),
            verification.title,
            verification.items,
        )
        for phase, specs in self.phase_checklists.items():
            unit = ("phase_checklists", phase.value)
            for n, spec in enumerate(specs):
                yield _Place(_key(unit), unit, (*unit, n, "items"), spec.title, spec.items)
        for name, runbook in self.runbooks.items():
            unit = ("runbooks", name)
            yield _Place(_key(unit), unit, (*unit, "steps"), runbook.title, runbook.steps)

    def severity(self, severity: Severity) -> SeveritySpec:
        spec: SeveritySpec = getattr(self.severities, severity.value)
        return spec

    def phase_sections(self, phase: Phase) -> list[ChecklistSection]:
        """The checklists to post when an incident first enters `phase` (none: post nothing)."""
        return [spec.section() for spec in self.phase_checklists.get(phase, [])]

    def runbook(self, name: str) -> RunbookSpec | None:
        """The runbook named `name` (any case, surrounding spaces ignored), if there is one."""
        return self.runbooks.get(name.strip().lower())

    def role_label(self, key: str) -> str | None:
        """The label of the role `key` (any case, surrounding spaces ignored), if there is one."""
        return self.roles.get(key.strip().lower())


def _repeated_item_ids(places: Iterable[_Place]) -> list[tuple[Loc, str]]:
    """Items whose id another checklist already uses (outside the sharing allowed in a group)."""
    first: dict[str, tuple[_Place, str]] = {}
    first_in_unit: dict[tuple[Loc, str], tuple[_Place, str]] = {}
    problems: list[tuple[Loc, str]] = []
    for place in places:
        for text in place.texts:
            id_ = item_id(place.title, text)
            earlier = first_in_unit.get((place.unit, id_))
            if earlier is None and id_ in first and first[id_][0].group != place.group:
                earlier = first[id_]
            if earlier is not None:
                other, other_text = earlier
                same = "is also" if other_text == text else f"has the same id as {other_text!r},"
                problems.append(
                    (
                        place.where,
                        f"item {text!r} {same} in {_key(other.where)} under the title {other.title!r}: "
                        "an item's id comes from its title and text, so retitle one of the two",
                    )
                )
            first.setdefault(id_, (place, text))
            first_in_unit.setdefault((place.unit, id_), (place, text))
    return problems


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


class _MergeRule(NamedTuple):
    noun: str  # what one sub-key names, for messages
    deep: bool  # a sub-key's own mapping merges key by key too; otherwise it is replaced whole


# Top-level keys merged one sub-key at a time; every other top-level key is replaced whole.
_MERGED_BY_SUBKEY = {
    "severities": _MergeRule("severity", deep=True),
    "phase_checklists": _MergeRule("phase", deep=False),
    "runbooks": _MergeRule("runbook", deep=False),
    "roles": _MergeRule("role", deep=False),
    "permissions": _MergeRule("permission", deep=False),
}


def merge_playbook(base: dict[str, Any], override: dict[str, Any], source: str) -> dict[str, Any]:
    """Merge `override` over `base` by the rules in the module docstring."""
    merged = dict(base)
    for key, value in override.items():
        rule = _MERGED_BY_SUBKEY.get(key)
        if rule is None:
            merged[key] = value
            continue
        if not isinstance(value, dict):
            raise PlaybookError(f"{source}: {key}: must be a mapping, one entry per {rule.noun}")
        table = dict(base.get(key) or {})
        for sub, sub_value in value.items():
            if not rule.deep:
                table[sub] = sub_value
                continue
            if sub not in table:
                valid = ", ".join(str(k) for k in table)
                raise PlaybookError(f"{source}: {key}.{sub}: unknown {rule.noun} (valid: {valid})")
            if not isinstance(sub_value, dict):
                raise PlaybookError(f"{source}: {key}.{sub}: must be a mapping of keys")
            table[sub] = {**table[sub], **sub_value}
        merged[key] = table
    return merged


def _key(loc: Loc) -> str:
    # pydantic marks a problem with a mapping's key (not its value) with a `[key]` part.
    return ".".join(str(part) for part in loc if part != "[key]")


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        found = error.get("ctx", {}).get("error")
        if isinstance(found, _KeyedProblems):
            problems = [((*loc, *path), problem) for path, problem in found.problems]
        elif error["type"] == "extra_forbidden":
            problems = [(loc, "unknown key")]
        else:
            problems = [(loc, error["msg"].removeprefix("Value error, "))]
        lines += [f"{source}: {_key(where) or '(top level)'}: {problem}" for where, problem in problems]
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
