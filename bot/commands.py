"""Parsing `/incident` command text into typed commands. Pure: no Slack, no Redis.

`SUBCOMMANDS` is the one table of subcommands: each entry has its usage line and its parser,
which turns the rest of the text into the subcommand's typed model (or Help saying what is
wrong). The listener dispatches on the model's type with `match` and `assert_never`, so a model
without its handler fails type checking.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel

from bot.changes import KEEP_FOR, RECENT_WINDOW, SERVICE_MAX_CHARS, service_name
from bot.models import HypothesisState, Phase, Severity, format_duration, parse_duration
from bot.text import escape_mrkdwn

TITLE_MAX_CHARS = 150
TEXT_MAX_CHARS = 2000  # a note, a hypothesis or a follow-up
ROLE_MAX_CHARS = 20

# A mention as Slack escapes it (`should_escape: true`): <@U123|name>, or <@U123>.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class Declare(BaseModel):
    kind: Literal["declare"] = "declare"
    severity: Severity
    title: str


class Help(BaseModel):
    kind: Literal["help"] = "help"
    problem: str | None = None  # why the text was not understood, when it was not


class Update(BaseModel):
    kind: Literal["update"] = "update"


class ShowStatus(BaseModel):
    kind: Literal["status"] = "status"


class Resolve(BaseModel):
    kind: Literal["resolve"] = "resolve"


class Note(BaseModel):
    kind: Literal["note"] = "note"
    text: str


class AddHypothesis(BaseModel):
    kind: Literal["hypothesis"] = "hypothesis"
    text: str


class SetPhase(BaseModel):
    kind: Literal["phase"] = "phase"
    phase: Phase


class Runbook(BaseModel):
    kind: Literal["runbook"] = "runbook"
    name: str | None = None  # None: list the runbooks


class HandOver(BaseModel):
    kind: Literal["commander"] = "commander"
    user: str


class AssignRole(BaseModel):
    kind: Literal["role"] = "role"
    role: str
    user: str


class ListIncidents(BaseModel):
    kind: Literal["list"] = "list"


class ShowTimeline(BaseModel):
    kind: Literal["timeline"] = "timeline"


class AddFollowUp(BaseModel):
    kind: Literal["followup"] = "followup"
    text: str


class Postmortem(BaseModel):
    kind: Literal["postmortem"] = "postmortem"


class ShowChanges(BaseModel):
    """The change events of `window` before now, `service`'s first; in an incident's channel,
    posted there, elsewhere answered to the user alone."""

    kind: Literal["changes"] = "changes"
    service: str | None = None
    window: timedelta = RECENT_WINDOW


class ShowMetrics(BaseModel):
    kind: Literal["metrics"] = "metrics"
    service: str
    window: timedelta = timedelta(hours=1)


# Commands that act on the incident of the channel they are typed in.
InIncident = (
    Update
    | ShowStatus
    | Resolve
    | Note
    | AddHypothesis
    | SetPhase
    | Runbook
    | HandOver
    | AssignRole
    | ShowTimeline
    | AddFollowUp
    | Postmortem
    | ShowMetrics
)
Command = Declare | Help | ListIncidents | ShowChanges | InIncident

Parser = Callable[[str], Command]


@dataclass(frozen=True)
class Subcommand:
    usage: str  # one line of the help text
    parse: Parser  # the rest of the text -> the command (Help when it can't be understood)


def _nothing(model: Callable[[], Command]) -> Parser:
    def parse(rest: str) -> Command:
        return model()

    return parse


def _text(name: str, what: str, model: Callable[[str], Command]) -> Parser:
    def parse(rest: str) -> Command:
        text = rest.strip()
        if not text:
            example = f"/incident {name} {_EXAMPLES[name]}"
            return Help(problem=f"`/incident {name}` needs {what}, like `{example}`.")
        if len(text) > TEXT_MAX_CHARS:
            return Help(problem=f"Keep {what} to {TEXT_MAX_CHARS} characters (now {len(text)}).")
        return model(text)

    return parse


_EXAMPLES = {
    "note": "Error rate dropped after the rollback",
    "hypothesis": "The 14:05 deploy exhausts the DB connection pool",
    "followup": "Alert on connection pool usage above 80%",
}


def mentioned_user(text: str) -> str | None:
    """The user of a mention, as Slack sends it escaped (`<@U123|name>`) or not (`<@U123>`)."""
    found = _MENTION.fullmatch(text.strip())
    return found.group(1) if found else None


def _parse_phase(rest: str) -> Command:
    names = "|".join(p.value for p in Phase)
    word = rest.strip().lower()
    if not word:
        return Help(problem=f"`/incident phase` needs the step to move to: `/incident phase <{names}>`.")
    try:
        return SetPhase(phase=Phase(word))
    except ValueError:
        return Help(problem=f"`{escape_mrkdwn(word[:30])}` is not a step of the flow: use one of {names}.")


def _parse_runbook(rest: str) -> Command:
    name = rest.strip().lower()
    return Runbook(name=name or None)


def _parse_commander(rest: str) -> Command:
    user = mentioned_user(rest)
    if user is None:
        return Help(problem="`/incident commander` needs the new commander: `/incident commander @someone`.")
    return HandOver(user=user)


def _parse_role(rest: str) -> Command:
    words = rest.split(maxsplit=1)
    if len(words) < 2:
        return Help(problem="`/incident role` needs a role and a person: `/incident role comms @someone`.")
    role, who = words[0].lower(), words[1]
    user = mentioned_user(who)
    if user is None:
        return Help(problem=f"Mention the person to be {escape_mrkdwn(role[:ROLE_MAX_CHARS])}: `@someone`.")
    if role == "commander":
        return HandOver(user=user)
    return AssignRole(role=role[:ROLE_MAX_CHARS], user=user)


# The windows `changes` and `metrics` take: a duration like 30m, 2h or 1d, within what is kept
# (change events are kept seven days) or what a chart can show.
CHANGES_WINDOW = (timedelta(minutes=1), KEEP_FOR)
METRICS_WINDOW = (timedelta(minutes=5), timedelta(days=7))
_WINDOW = re.compile(r"(?:\d+[smhd])+", re.IGNORECASE)


def _window(name: str, word: str, bounds: tuple[timedelta, timedelta]) -> timedelta | Help:
    least, most = bounds
    shown = escape_mrkdwn(word if len(word) <= 20 else word[:19] + "…")
    if not _WINDOW.fullmatch(word):
        return Help(problem=f"`{shown}` is not a time window: use a number and a unit, like 30m, 2h or 1d.")
    try:
        window: timedelta | None = parse_duration(word)
    except (ValueError, OverflowError):  # `0m`, or more days than a timedelta holds
        window = None
    if window is None or not least <= window <= most:
        return Help(
            problem=f"The window of `/incident {name}` is from {format_duration(least)} "
            f"to {format_duration(most)} (not {shown})."
        )
    return window


def _service(name: str, word: str) -> str | Help:
    try:
        if len(word) <= SERVICE_MAX_CHARS:
            return service_name(word)
    except ValueError:
        pass
    example = f"/incident {name} checkout"
    return Help(problem=f"`{escape_mrkdwn(word[:30])}` is not a service name, as in `{example}`.")


def _parse_changes(rest: str) -> Command:
    """`[service] [window]`, in either order: a word like `6h` is the window."""
    words = rest.split()
    if len(words) > 2:
        return Help(
            problem="`/incident changes` takes a service and a window at most: "
            "`/incident changes checkout 6h`."
        )
    service: str | None = None
    window, window_given = RECENT_WINDOW, False
    for word in words:
        if _WINDOW.fullmatch(word) and window_given:
            return Help(problem="`/incident changes` takes one window: `/incident changes checkout 6h`.")
        if _WINDOW.fullmatch(word):
            window_given = True
            parsed = _window("changes", word, CHANGES_WINDOW)
            if isinstance(parsed, Help):
                return parsed
            window = parsed
        elif service is None:
            named = _service("changes", word)
            if isinstance(named, Help):
                return named
            service = named
        else:
            return Help(problem="`/incident changes` takes one service: `/incident changes checkout 6h`.")
    return ShowChanges(service=service, window=window)


def _parse_metrics(rest: str) -> Command:
    words = rest.split()
    if not words or len(words) > 2 or _WINDOW.fullmatch(words[0]):
        return Help(
            problem="`/incident metrics` needs a service, then a window if not 1h: "
            "`/incident metrics checkout 30m`."
        )
    service = _service("metrics", words[0])
    if isinstance(service, Help):
        return service
    if len(words) == 1:
        return ShowMetrics(service=service)
    window = _window("metrics", words[1], METRICS_WINDOW)
    return window if isinstance(window, Help) else ShowMetrics(service=service, window=window)


SUBCOMMANDS: dict[str, Subcommand] = {
    "update": Subcommand("`/incident update`: post a status update", _nothing(Update)),
    "status": Subcommand("`/incident status`: show the latest status", _nothing(ShowStatus)),
    "note": Subcommand(
        "`/incident note <text>`: post a note and put it on the timeline",
        _text("note", "the note", lambda t: Note(text=t)),
    ),
    "hypothesis": Subcommand(
        "`/incident hypothesis <text>`: propose a hypothesis (H1, H2, …) to test",
        _text("hypothesis", "the hypothesis", lambda t: AddHypothesis(text=t)),
    ),
    "phase": Subcommand(
        "`/incident phase <assess|mitigate|investigate|hypothesize|validate|fix|verify|postmortem>`: "
        "move to a step of the flow",
        _parse_phase,
    ),
    "runbook": Subcommand(
        "`/incident runbook [name]`: list the runbooks, or post one with its steps as a checklist",
        _parse_runbook,
    ),
    "commander": Subcommand("`/incident commander @someone`: hand the commander role over", _parse_commander),
    "role": Subcommand("`/incident role <role> @someone`: assign a role (comms, scribe, …)", _parse_role),
    "timeline": Subcommand("`/incident timeline`: post the timeline in the channel", _nothing(ShowTimeline)),
    "followup": Subcommand(
        "`/incident followup <text>`: record a follow-up action for the postmortem",
        _text("followup", "the follow-up", lambda t: AddFollowUp(text=t)),
    ),
    "postmortem": Subcommand(
        "`/incident postmortem`: upload the postmortem draft as it stands", _nothing(Postmortem)
    ),
    "changes": Subcommand(
        "`/incident changes [service] [window]`: the deploys, config changes and flags of the last "
        "2h (or the window, up to 7d), the service's first",
        _parse_changes,
    ),
    "metrics": Subcommand(
        "`/incident metrics <service> [window]`: chart the service's metrics over the last 1h "
        "(or the window, 5m to 7d)",
        _parse_metrics,
    ),
    "resolve": Subcommand("`/incident resolve`: resolve the incident", _nothing(Resolve)),
    "list": Subcommand("`/incident list`: the open incidents (anywhere)", _nothing(ListIncidents)),
}

DECLARE_USAGE = (
    "`/incident sev1|sev2|sev3|sev4 [title]`: declare an incident "
    "(in an incident channel: change its severity)"
)

USAGE = "\n".join(
    [
        "*Usage of /incident*",
        f"• {DECLARE_USAGE}",
        *(f"• {sub.usage}" for sub in SUBCOMMANDS.values()),
        "• `/incident help`: this text",
        "Severities: SEV1 complete outage · SEV2 major feature broken",
        "SEV3 partial impact, workaround exists · SEV4 minor issue",
    ]
)

HYPOTHESIS_STATES = (HypothesisState.TESTING, HypothesisState.CONFIRMED, HypothesisState.RULED_OUT)


def parse_command(text: str) -> Command:
    words = text.strip().split(maxsplit=1)
    if not words:
        return Help(problem="Tell me what to do.")
    verb = words[0].lower()
    rest = words[1].strip() if len(words) > 1 else ""
    if verb in ("help", "-h", "--help", "?"):
        return Help()
    if verb in {s.value for s in Severity}:
        title = " ".join(rest.split())  # newlines and runs of spaces collapse to one space
        if len(title) > TITLE_MAX_CHARS:
            return Help(
                problem=f"The title is {len(title)} characters long; keep it to {TITLE_MAX_CHARS} or fewer."
            )
        return Declare(severity=Severity(verb), title=title)
    sub = SUBCOMMANDS.get(verb)
    if sub is not None:
        return sub.parse(rest)
    if verb.startswith("sev"):
        return Help(problem=f"`{escape_mrkdwn(verb[:20])}` is not a severity: use sev1, sev2, sev3 or sev4.")
    return Help(problem=f"I don't know `{escape_mrkdwn(verb[:20])}`.")
