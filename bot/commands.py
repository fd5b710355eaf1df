"""Parsing `/incident` command text into typed commands. Pure: no Slack, no Redis."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from bot.models import Severity
from bot.text import escape_mrkdwn

TITLE_MAX_CHARS = 150


class Declare(BaseModel):
    kind: Literal["declare"] = "declare"
    severity: Severity
    title: str


class Help(BaseModel):
    kind: Literal["help"] = "help"
    problem: str | None = None  # why the text was not understood, when it was not


class IncidentCommand(BaseModel):
    """A subcommand that acts on the incident of the channel it is typed in."""

    kind: Literal["update", "status", "resolve"]


Command = Declare | Help | IncidentCommand

USAGE = """\
*Usage of /incident*
• `/incident sev1|sev2|sev3|sev4 [title]`: declare an incident (in an incident channel: change its severity)
• `/incident update`: post a status update (in an incident channel)
• `/incident status`: show the latest status (in an incident channel)
• `/incident resolve`: resolve the incident (in an incident channel)
• `/incident help`: this text
Severities: SEV1 complete outage · SEV2 major feature broken
SEV3 partial impact, workaround exists · SEV4 minor issue"""


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
    if verb in ("update", "status", "resolve"):
        return IncidentCommand.model_validate({"kind": verb})
    if verb.startswith("sev"):
        return Help(problem=f"`{escape_mrkdwn(verb[:20])}` is not a severity: use sev1, sev2, sev3 or sev4.")
    return Help(problem=f"I don't know `{escape_mrkdwn(verb[:20])}`.")
