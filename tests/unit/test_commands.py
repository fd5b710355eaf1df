"""`/incident` command text parses into typed commands; user text never reaches a problem unescaped."""

from __future__ import annotations

import pytest

from bot.commands import (
    SUBCOMMANDS,
    TEXT_MAX_CHARS,
    TITLE_MAX_CHARS,
    USAGE,
    AddFollowUp,
    AddHypothesis,
    AssignRole,
    Command,
    Declare,
    HandOver,
    Help,
    ListIncidents,
    Note,
    Postmortem,
    Resolve,
    Runbook,
    SetPhase,
    ShowStatus,
    ShowTimeline,
    Update,
    mentioned_user,
    parse_command,
)
from bot.models import Phase, Severity


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("spell", [str.lower, str.upper, str.capitalize])
def test_declare_with_title(severity: Severity, spell: object) -> None:
    verb = spell(severity.value)  # type: ignore[operator]
    assert parse_command(f"{verb} Checkout requests failing") == Declare(
        severity=severity, title="Checkout requests failing"
    )


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("spell", [str.lower, str.upper])
def test_declare_without_title(severity: Severity, spell: object) -> None:
    verb = spell(severity.value)  # type: ignore[operator]
    assert parse_command(verb) == Declare(severity=severity, title="")
    assert parse_command(f"  {verb}  \n") == Declare(severity=severity, title="")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("sev2   Checkout    requests failing", "Checkout requests failing"),
        ("  sev2\tCheckout\nrequests\n\n  failing  ", "Checkout requests failing"),
        ("sev2\n\nDB\u00a0down", "DB down"),
    ],
)
def test_whitespace_in_the_title_collapses(text: str, title: str) -> None:
    assert parse_command(text) == Declare(severity=Severity.SEV2, title=title)


def test_title_at_the_limit_is_kept() -> None:
    title = "x" * TITLE_MAX_CHARS
    assert parse_command(f"sev1 {title}") == Declare(severity=Severity.SEV1, title=title)


def test_title_is_measured_after_collapsing_whitespace() -> None:
    title = " ".join(["word"] * 30)  # 149 characters once collapsed, far more as typed
    assert parse_command("sev3 " + "     ".join(["word"] * 30)) == Declare(
        severity=Severity.SEV3, title=title
    )


def test_title_too_long_asks_for_a_shorter_one() -> None:
    command = parse_command("sev1 " + "x" * (TITLE_MAX_CHARS + 1))
    assert isinstance(command, Help)
    assert command.problem is not None
    assert str(TITLE_MAX_CHARS + 1) in command.problem
    assert str(TITLE_MAX_CHARS) in command.problem


@pytest.mark.parametrize("text", ["help", "HELP", " Help ", "-h", "--help", "?", "help me please"])
def test_help_is_help_without_a_problem(text: str) -> None:
    assert parse_command(text) == Help(problem=None)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_help_with_a_problem(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help)
    assert command.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("update", Update()),
        ("STATUS trailing words", ShowStatus()),
        ("resolve", Resolve()),
        ("list", ListIncidents()),
        ("timeline", ShowTimeline()),
        ("postmortem", Postmortem()),
        ("note Error rate  dropped", Note(text="Error rate  dropped")),
        ("hypothesis DB pool exhausted at 14:05", AddHypothesis(text="DB pool exhausted at 14:05")),
        ("followup Alert on pool usage", AddFollowUp(text="Alert on pool usage")),
        ("phase Investigate", SetPhase(phase=Phase.INVESTIGATE)),
        ("runbook", Runbook(name=None)),
        ("runbook Memory", Runbook(name="memory")),
        ("commander <@U0BOB|bob>", HandOver(user="U0BOB")),
        ("commander <@U0BOB>", HandOver(user="U0BOB")),
        ("role comms <@U0CAROL|carol>", AssignRole(role="comms", user="U0CAROL")),
        ("role Commander <@U0CAROL>", HandOver(user="U0CAROL")),
    ],
)
def test_each_subcommand_parses_into_its_typed_model(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("note", "`/incident note` needs the note"),
        ("note    ", "`/incident note` needs the note"),
        ("hypothesis", "`/incident hypothesis` needs the hypothesis"),
        ("followup", "`/incident followup` needs the follow-up"),
        ("phase", "needs the step to move to"),
        ("phase lunch", "`lunch` is not a step of the flow"),
        ("commander", "needs the new commander"),
        ("commander bob", "needs the new commander"),
        ("role comms", "needs a role and a person"),
        ("role comms bob", "Mention the person to be comms"),
        ("note " + "x" * (TEXT_MAX_CHARS + 1), f"to {TEXT_MAX_CHARS} characters"),
    ],
)
def test_a_subcommand_missing_its_argument_says_what_is_missing(text: str, says: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help) and command.problem is not None
    assert says in command.problem


def test_the_usage_text_has_a_line_for_every_subcommand() -> None:
    for name, sub in SUBCOMMANDS.items():
        assert sub.usage in USAGE
        assert f"/incident {name}" in sub.usage


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("<@U123|alice>", "U123"),
        ("<@W9AB>", "W9AB"),
        (" <@U1|a b> ", "U1"),
        ("@alice", None),
        ("<#C1|x>", None),
    ],
)
def test_mentions_as_slack_sends_them_escaped_or_not(text: str, user: str | None) -> None:
    assert mentioned_user(text) == user


@pytest.mark.parametrize("text", ["sev9", "SEV9 db down", "sev0", "sevx", "sev", "sev10", "sev-1 title"])
def test_unknown_severity_names_the_valid_ones(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help)
    assert command.problem is not None
    assert "is not a severity" in command.problem
    assert "sev1, sev2, sev3 or sev4" in command.problem
    assert f"`{text.split()[0].lower()}`" in command.problem


@pytest.mark.parametrize("text", ["deploy", "open checkout is down", "incident", "1"])
def test_unknown_word_is_named_in_the_problem(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help)
    assert command.problem == f"I don't know `{text.split()[0]}`."


@pytest.mark.parametrize(
    "text",
    [
        "<!channel>",
        "<!channel> sev1 everything is down",
        "sev<!channel>",
        "sev<!here> title",
        "<@U123> please",
        "<https://evil.example|click me>",
        "x" * 18 + "<!channel>",
        "R&D",
    ],
)
def test_user_text_in_problems_is_escaped(text: str) -> None:
    command = parse_command(text)
    assert isinstance(command, Help)
    assert command.problem is not None
    assert "<!channel>" not in command.problem
    assert "<" not in command.problem
    assert ">" not in command.problem
    assert "&" not in command.problem.replace("&lt;", "").replace("&gt;", "").replace("&amp;", "")


def test_escaped_problem_still_shows_what_was_typed() -> None:
    command = parse_command("<!channel>")
    assert isinstance(command, Help)
    assert command.problem == "I don't know `&lt;!channel&gt;`."


def test_title_is_kept_raw_for_the_renderers_to_escape() -> None:
    # Escaping happens once, when rendering; the parsed title is what the user typed.
    assert parse_command("sev2 <!channel> R&D down") == Declare(
        severity=Severity.SEV2, title="<!channel> R&D down"
    )
