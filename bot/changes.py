"""Change events: deploys, config changes and feature flags that a CI pipeline reports with
`POST /events/change`, so responders can line them up against the incident.

This module holds the model and its pure rules: reading a request body into a `ChangeEvent` (or
the reason it is refused), and choosing the changes around a moment. No I/O.

Storage (`bot.change_log`): one ZSET `changes`, member = the event's JSON as
`ChangeEvent.stored()` writes it (compact, keys sorted), score = `at` in unix seconds. One key for
every service, because "Recent changes" lists every service (the alert's first), and one
ZRANGEBYSCORE reads a window. Writing the same body twice (a CI retry) stores one member; a body
without `at` (whose time is when it arrived) is stored once per `RETRY_WINDOW`, by a hash of the
rest (`ReceivedChange.retry_key`). Each write also trims what is older than `KEEP_FOR` (seven
days) and keeps at most `KEEP_AT_MOST` members, in the same step, so a runaway pipeline cannot
fill Redis.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

KEEP_FOR = timedelta(days=7)
KEEP_AT_MOST = 10_000
# A change sent without `at` and sent again within this time (a CI retry) is stored once.
RETRY_WINDOW = timedelta(minutes=10)
RECENT_WINDOW = timedelta(hours=2)
# How far in the future `at` may be: clocks of CI runners and the bot disagree a little.
CLOCK_SKEW = timedelta(minutes=5)
MAX_BODY_BYTES = 16 * 1024

SERVICE_MAX_CHARS = 64
VERSION_MAX_CHARS = 100
BY_MAX_CHARS = 100
DESCRIPTION_MAX_CHARS = 500
URL_MAX_CHARS = 1000

# Service names become chart file names and match the playbook's `services` keys.
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A link Slack can show as `<url|text>`: http(s), no blanks and none of `<`, `>`, `|`.
_URL = re.compile(r"https?://[^\s<>|]+", re.IGNORECASE)


class ChangeKind(StrEnum):
    DEPLOY = "deploy"
    CONFIG = "config"
    FLAG = "flag"


def service_name(name: str) -> str:
    """A service's name, as change events and the playbook's `services` give it."""
    if not _SERVICE.fullmatch(name):
        raise ValueError("must use letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


def _url(url: str) -> str:
    if not _URL.fullmatch(url):
        raise ValueError("must be an http:// or https:// link without spaces, '<', '>' or '|'")
    return url


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# Optional texts: a blank one is as good as none.
Version = Annotated[
    Annotated[str, StringConstraints(max_length=VERSION_MAX_CHARS)] | None, BeforeValidator(_blank_to_none)
]
Description = Annotated[
    Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_CHARS)] | None,
    BeforeValidator(_blank_to_none),
]
Author = Annotated[
    Annotated[str, StringConstraints(max_length=BY_MAX_CHARS)] | None, BeforeValidator(_blank_to_none)
]
Link = Annotated[
    Annotated[str, StringConstraints(max_length=URL_MAX_CHARS), AfterValidator(_url)] | None,
    BeforeValidator(_blank_to_none),
]


class ChangeEvent(BaseModel):
    """A change to one service. `at` is timezone-aware; a time without an offset is refused
    (rather than guessed as UTC) because a deploy drawn hours off would mislead more than a 400.

    Fields the model does not know are ignored, so a pipeline that sends more still gets through.
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="ignore")

    service: Annotated[str, Field(min_length=1, max_length=SERVICE_MAX_CHARS), AfterValidator(service_name)]
    kind: ChangeKind
    version: Version = None
    description: Description = None
    by: Author = None  # who or what made the change: a name, a Slack user id, `ci`
    at: datetime
    url: Link = None

    @field_validator("at")
    @classmethod
    def _aware(cls, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("has no timezone: add Z or an offset such as +02:00")
        return at.astimezone(UTC)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_lowercase(cls, kind: Any) -> Any:
        return kind.strip().lower() if isinstance(kind, str) else kind

    def stored(self) -> str:
        """The JSON kept in Redis: compact, keys sorted, so the same event is the same member."""
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
        )

    @property
    def label(self) -> str:
        """What a chart marker says: the version, else the kind (`v2.3.1`, `config`)."""
        return self.version or self.kind.value


@dataclass(frozen=True)
class InvalidChange:
    """Why a body was refused: `message` is the 400 answer, one line."""

    message: str


@dataclass(frozen=True)
class ReceivedChange:
    """A change as received: the event, and whether its sender said when it happened (`at`)."""

    event: ChangeEvent
    timed: bool

    @property
    def retry_key(self) -> str | None:
        """For an event sent without `at`: a hash of the rest of it, the same for every retry (whose
        `at`, the time it arrived, differs). None when `at` was sent: the event is its own key."""
        if self.timed:
            return None
        rest = self.event.model_dump(mode="json", exclude_none=True, exclude={"at"})
        text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_change(body: bytes, *, now: datetime) -> ChangeEvent | InvalidChange:
    """A `POST /events/change` body as a ChangeEvent, or what is wrong with it (`read_change`)."""
    received = read_change(body, now=now)
    return received.event if isinstance(received, ReceivedChange) else received


def read_change(body: bytes, *, now: datetime) -> ReceivedChange | InvalidChange:
    """A `POST /events/change` body as the change received, or what is wrong with it.

    `at` is ISO 8601 with an offset (or unix seconds, which are UTC), defaults to `now`
    (timezone-aware), may not be more than `CLOCK_SKEW` after it, and may not be older than
    the `KEEP_FOR` the events are kept (it would be dropped as it was stored).
    """
    if len(body) > MAX_BODY_BYTES:
        return InvalidChange(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return InvalidChange('the body is not JSON: send {"service": "…", "kind": "deploy", …}')
    if not isinstance(data, dict):
        return InvalidChange("the body must be a JSON object")
    timed = data.get("at") is not None
    if not timed:
        data["at"] = now
    try:
        change = ChangeEvent.model_validate(data)
    except ValidationError as exc:
        return InvalidChange(_problems(exc))
    if change.at > now + CLOCK_SKEW:
        return InvalidChange(f"at: {change.at.isoformat()} is in the future")
    if change.at < now - KEEP_FOR:
        kept = f"{KEEP_FOR.days} days"
        return InvalidChange(f"at: {change.at.isoformat()} is older than the {kept} change events are kept")
    return ReceivedChange(change, timed=timed)


def _problems(exc: ValidationError) -> str:
    """`missing service; kind must be one of deploy, config, flag`."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        kind = error["type"]
        if kind == "missing":
            problems.append(f"missing {field}")
        elif field == "kind" and kind == "enum":
            problems.append(f"kind must be one of {', '.join(k.value for k in ChangeKind)}")
        elif kind == "string_too_long":
            problems.append(f"{field} is longer than {error['ctx']['max_length']} characters")
        elif kind == "string_too_short":
            problems.append(f"{field} is empty")
        elif kind in ("string_type", "datetime_type"):
            problems.append(f"{field} must be a string")
        elif field == "at" and kind.startswith("datetime"):
            problems.append("at must be an ISO 8601 time with a timezone, like 2026-11-25T14:02:00Z")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{field} {message}" if kind == "value_error" else f"{field}: {message}")
    return "; ".join(problems)


def recent_changes(
    changes: Iterable[ChangeEvent],
    *,
    before: datetime,
    window: timedelta = RECENT_WINDOW,
    service: str | None = None,
) -> list[ChangeEvent]:
    """The changes from `window` before `before` up to `before` (both included), `service`'s
    first, then newest first within each group."""
    since = before - window
    chosen = [c for c in changes if since <= c.at <= before]
    return sorted(chosen, key=lambda c: (service is None or c.service != service, -c.at.timestamp()))
