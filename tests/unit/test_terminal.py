"""The demo's terminal renderer: Slack mrkdwn as Slack draws it, in plain text or ANSI styles."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bot.demo.terminal import EMOJI, Terminal, use_ansi

USERS = {"U0ALICE": "alice", "U0BOB": "bob"}
CHANNELS = {"C0GENERAL": "general"}
BOLD, UNBOLD = "\x1b[1m", "\x1b[22m"
ITALIC, UNITALIC = "\x1b[3m", "\x1b[23m"
STRIKE, UNSTRIKE = "\x1b[9m", "\x1b[29m"
CODE, UNCODE = "\x1b[36m", "\x1b[39m"

plain = Terminal(USERS, CHANNELS).mrkdwn
ansi = Terminal(USERS, CHANNELS, ansi=True).mrkdwn


@pytest.mark.parametrize(
    ("text", "as_plain", "as_ansi"),
    [
        ("*INC-1* declared", "INC-1 declared", f"{BOLD}INC-1{UNBOLD} declared"),
        ("an _italic_ word", "an italic word", f"an {ITALIC}italic{UNITALIC} word"),
        ("~old~ new", "~old~ new", f"{STRIKE}old{UNSTRIKE} new"),
        ("run `/incident note`", "run /incident note", f"run {CODE}/incident note{UNCODE}"),
        ("*Severity*\nSEV1", "Severity\nSEV1", f"{BOLD}Severity{UNBOLD}\nSEV1"),
        ("(*bold*), *two words*.", "(bold), two words.", f"({BOLD}bold{UNBOLD}), {BOLD}two words{UNBOLD}."),
    ],
)
def test_each_style_is_drawn_not_spelled(text: str, as_plain: str, as_ansi: str) -> None:
    assert plain(text) == as_plain
    assert ansi(text) == as_ansi


@pytest.mark.parametrize(
    "text",
    [
        "a*b*c",  # inside a word
        "2*3*4 and 5 * 6 * 7",  # arithmetic
        "snake_case_name and __init__",
        "* a *",  # a delimiter must touch the text it styles
        "*unclosed and _unclosed",
        "*across\nlines*",  # a style never spans a line
        "**",
        "~5% of checkout requests failing",
        "*bold*text",  # closing inside a word
    ],
)
def test_delimiters_slack_does_not_style_stay_as_written(text: str) -> None:
    assert plain(text) == text
    assert ansi(text) == text


def test_styles_nest() -> None:
    assert ansi("*bold _and italic_*") == f"{BOLD}bold {ITALIC}and italic{UNITALIC}{UNBOLD}"
    assert ansi("_*both*_") == f"{ITALIC}{BOLD}both{UNBOLD}{UNITALIC}"
    assert plain("*bold _and italic_* ~gone~") == "bold and italic ~gone~"
    assert ansi("*:x: H1* · Ruled out") == f"{BOLD}❌ H1{UNBOLD} · Ruled out"


def test_nothing_is_drawn_inside_code() -> None:
    assert plain("`*not bold* _nor_ :x:`") == "*not bold* _nor_ :x:"
    assert ansi("`*a*` *b*") == f"{CODE}*a*{UNCODE} {BOLD}b{UNBOLD}"
    # A code span inside a style keeps its own text as written.
    assert ansi("_see `a*b*` here_") == f"{ITALIC}see {CODE}a*b*{UNCODE} here{UNITALIC}"
    # Entities are the wire's encoding, so they are decoded in code too.
    assert plain("`a &lt; b &amp;&amp; c`") == "a < b && c"


def test_a_code_block_shows_its_lines_as_written() -> None:
    text = "before\n```\n*x* :x:\n  indented\n```\nafter"
    assert plain(text) == "before\n*x* :x:\n  indented\nafter"
    assert ansi(text) == f"before\n{CODE}*x* :x:\n  indented{UNCODE}\nafter"


def test_emoji_shortcodes_become_characters_unknown_ones_stay() -> None:
    assert plain(":large_orange_circle: :white_check_mark: done") == "🟠 ✅ done"
    assert plain(":x::warning: :no_such_emoji:") == "❌⚠️ :no_such_emoji:"
    assert plain("at 14:02:05 UTC") == "at 14:02:05 UTC"  # times are not shortcodes
    assert plain("ratio 1:x:2") == "ratio 1❌2"  # a shortcode needs no spaces around it


def test_mentions_show_the_workspace_name() -> None:
    assert plain("<@U0ALICE> made <@U0BOB|bobby> commander") == "@alice made @bob commander"
    assert plain("<@U0NEW|newbie> and <@U0GHOST>") == "@newbie and @U0GHOST"
    assert ansi("*<@U0ALICE>*") == f"{BOLD}@alice{UNBOLD}"
    assert plain("<@U0ALICE>_") == "@alice_"  # an underscore after a name opens nothing


def test_channels_links_and_special_mentions() -> None:
    assert plain("Join <#C0GENERAL>, <#C0GENERAL|old-name> or <#C0NEW|inc-2>") == (
        "Join #general, #general or #inc-2"
    )
    assert plain("<https://example.com/a?b=1&amp;c=2|the runbook>") == (
        "the runbook (https://example.com/a?b=1&c=2)"
    )
    assert plain("<https://example.com> <mailto:ops@example.com|ops@example.com>") == (
        "https://example.com ops@example.com"
    )
    assert plain("<!here> <!channel> <!subteam^S01|@oncall> <!date^1700000000^{date}|Nov 14>") == (
        "@here @channel @oncall Nov 14"
    )


def test_escapes_are_decoded_last_so_escaped_text_is_never_markup() -> None:
    assert plain("a &lt;b&gt; &amp; c") == "a <b> & c"
    assert plain("&amp;lt;") == "&lt;"  # decoded once
    assert plain("&lt;@U0ALICE&gt; typed") == "<@U0ALICE> typed"  # text, not a mention
    assert ansi("*&lt;!channel&gt;*") == f"{BOLD}<!channel>{UNBOLD}"


def test_private_use_characters_in_the_text_survive() -> None:
    text = "\ue000 \U000f0000 *b*"
    assert plain(text) == "\ue000 \U000f0000 b"


def test_plain_text_objects_only_draw_emoji() -> None:
    terminal = Terminal(USERS, CHANNELS, ansi=True)
    assert terminal.plain_text("*INC-1* :red_circle: <@U0ALICE>") == "*INC-1* 🔴 <@U0ALICE>"
    assert terminal.show("*x*", "mrkdwn") == f"{BOLD}x{UNBOLD}"
    assert terminal.show("*x*", "plain_text") == "*x*"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ansi_only_on_a_terminal_that_wants_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_ansi(_Tty()) and not use_ansi(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_ansi(_Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_ansi(_Tty())


def test_every_shortcode_the_bot_posts_has_its_character() -> None:
    root = Path(__file__).resolve().parents[2]
    sources = [
        path
        for folder in ("bot", "handlers")
        for path in (root / folder).rglob("*")
        if path.suffix in (".py", ".yml") and "demo" not in path.relative_to(root).parts
    ]
    used = {name for path in sources for name in re.findall(r":([a-z_]+):", path.read_text())}
    assert used, "no shortcode found: the scan looks in the wrong place"
    assert used - EMOJI.keys() == set()
