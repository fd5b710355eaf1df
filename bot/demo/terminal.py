"""Slack mrkdwn as Slack draws it, for a terminal: what `incident-bot demo` prints unless `--raw`.

`*bold*`, `_italic_`, `~strike~` and `` `code` `` become ANSI styles when the output is a
terminal, plain text otherwise (struck text keeps its tildes there: plain text has no other way to
say it). Like Slack, a delimiter only counts at a word boundary (`a*b*c` stays as written), a
style does not span lines, and nothing inside code is styled or turned into emoji. Emoji
shortcodes the bot's messages use become the characters; unknown ones stay as written.
`<@U123>` shows as `@name`, `<#C123|name>` as `#name`, `<url|text>` as `text (url)`, and
`&lt; &gt; &amp;` are decoded last, so escaped text never turns into markup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

# Every shortcode in the bot's messages and the built-in playbook (tests/unit/test_terminal.py
# checks the sources for new ones).
EMOJI: Mapping[str, str] = {
    "alarm_clock": "⏰",
    "arrow_right": "➡️",
    "book": "📖",
    "bust_in_silhouette": "👤",
    "clipboard": "📋",
    "gear": "⚙️",
    "grey_question": "❔",
    "large_orange_circle": "🟠",
    "large_yellow_circle": "🟡",
    "memo": "📝",
    "no_bell": "🔕",
    "pushpin": "📌",
    "red_circle": "🔴",
    "repeat": "🔁",
    "rocket": "🚀",
    "rotating_light": "🚨",
    "test_tube": "🧪",
    "triangular_flag_on_post": "🚩",
    "warning": "⚠️",
    "white_check_mark": "✅",
    "white_circle": "⚪",
    "x": "❌",
}


@dataclass(frozen=True)
class Style:
    """What a style's start and end are printed as."""

    start: str
    end: str


ANSI_STYLES: Mapping[str, Style] = {
    "bold": Style("\x1b[1m", "\x1b[22m"),
    "italic": Style("\x1b[3m", "\x1b[23m"),
    "strike": Style("\x1b[9m", "\x1b[29m"),
    "code": Style("\x1b[36m", "\x1b[39m"),
}
PLAIN_STYLES: Mapping[str, Style] = {
    "bold": Style("", ""),
    "italic": Style("", ""),
    "strike": Style("~", "~"),
    "code": Style("", ""),
}
_DELIMITERS = {"bold": "*", "italic": "_", "strike": "~"}

# While a text is parsed, each code span and each `<…>` entity stands in it as one private-use
# character, and each style's start and end as another: none is a letter, a digit or a space, so
# the word-boundary rules treat them as punctuation, as Slack treats what they stand for. A
# private-use character already in the text is held the same way, so it is never taken for one.
_TOKEN_BASE = 0xF0000  # tokens: plane 15 onwards, room for every entity of the longest message
_MARK_BASE = 0xE000  # style marks: two a style
_STYLE_NAMES = ("bold", "italic", "strike", "code")
_TOKENS = re.compile(
    r"(?P<pre>```(?P<pre_body>(?s:.+?))```)"
    r"|(?P<code>`(?P<code_body>[^`\n]+)`)"
    r"|(?P<entity><(?P<entity_body>[^<>\n]+)>)"
    r"|(?P<private>[\ue000-\uf8ff\U000f0000-\U0010fffd])"
)
_HELD = re.compile(r"[\U000f0000-\U000ffffd]")
_EMOJI = re.compile(r":([a-z0-9_+'-]+)(?=:)")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def _style_pattern(delimiter: str) -> re.Pattern[str]:
    d = re.escape(delimiter)
    # Opens after a non-alphanumeric (or at the start) before a non-space; closes after a
    # non-space before a non-alphanumeric (or at the end); never across a line.
    return re.compile(rf"(?<![^\W_])(?<!{d}){d}([^\s{d}](?:[^\n{d}]*[^\s{d}])?){d}(?![^\W_])(?!{d})")


_STYLE_PATTERNS = {name: _style_pattern(d) for name, d in _DELIMITERS.items()}


def use_ansi(stream: TextIO) -> bool:
    """ANSI styles on a terminal, unless NO_COLOR is set (no-color.org) or TERM is `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


@dataclass(frozen=True)
class Terminal:
    """Renders Slack text for a terminal. `users` and `channels` map ids to names."""

    users: Mapping[str, str]
    channels: Mapping[str, str]
    ansi: bool = False

    @property
    def styles(self) -> Mapping[str, Style]:
        return ANSI_STYLES if self.ansi else PLAIN_STYLES

    def mrkdwn(self, text: str) -> str:
        """A mrkdwn text (a message's `text`, a `mrkdwn` text object) as Slack draws it."""
        tokens: list[str] = []

        def hold(match: re.Match[str]) -> str:
            tokens.append(self._token(match))
            return chr(_TOKEN_BASE + len(tokens) - 1)

        held = _emojize(_TOKENS.sub(hold, text))
        for index, name in enumerate(_STYLE_NAMES[:3]):
            held = _mark(_STYLE_PATTERNS[name], held, *_marks(index))
        shown = _decode(held)
        for index, name in enumerate(_STYLE_NAMES):
            start, end = _marks(index)
            style = self.styles[name]
            shown = shown.replace(start, style.start).replace(end, style.end)
        return _HELD.sub(lambda m: tokens[ord(m.group(0)) - _TOKEN_BASE], shown)

    def plain_text(self, text: str) -> str:
        """A `plain_text` object: Slack shows it as written, emoji shortcodes drawn."""
        return _emojize(text)

    def show(self, text: str, kind: str) -> str:
        """`mrkdwn` or `plain_text` text as Slack draws it (the stand-in transcript's hook)."""
        return self.mrkdwn(text) if kind == "mrkdwn" else self.plain_text(text)

    def _token(self, match: re.Match[str]) -> str:
        if match.group("private") is not None:
            return match.group(0)
        if match.group("entity") is not None:
            return self._entity(match.group("entity_body"))
        if match.group("pre") is not None:
            body = match.group("pre_body").removeprefix("\n").removesuffix("\n")
        else:
            body = match.group("code_body")
        code = self.styles["code"]
        # Inside code nothing is styled; entities (Slack's wire encoding) are still resolved.
        literal = _decode(_TOKENS.sub(lambda m: self._token(m) if m.group("entity") else m.group(0), body))
        return f"{code.start}{literal}{code.end}"

    def _entity(self, body: str) -> str:
        """`<@U123>`, `<#C123|name>`, `<!here>`, `<https://…|text>` as Slack shows them."""
        target, _, label = body.partition("|")
        label = _decode(label)
        if target.startswith("@"):
            return "@" + (self.users.get(target[1:]) or label or target[1:])
        if target.startswith("#"):
            return "#" + (self.channels.get(target[1:]) or label or target[1:])
        if target.startswith("!"):
            special = target[1:].split("^", 1)[0]
            if label:
                return label
            return f"@{special}" if special in ("here", "channel", "everyone") else f"<{body}>"
        url = _decode(target)
        if not label or label in (url, url.removeprefix("mailto:")):
            return label or url
        return f"{label} ({url})"


def _marks(index: int) -> tuple[str, str]:
    return chr(_MARK_BASE + 2 * index), chr(_MARK_BASE + 2 * index + 1)


def _mark(pattern: re.Pattern[str], text: str, start: str, end: str) -> str:
    """Each span `pattern` finds, its delimiters replaced by the marks `start` and `end`."""
    return pattern.sub(lambda m: f"{start}{m.group(1)}{end}", text)


def _emojize(text: str) -> str:
    """`:name:` as its character where `name` is in EMOJI; unknown shortcodes stay as written."""
    out: list[str] = []
    at = 0
    while (match := _EMOJI.search(text, at)) is not None:
        character = EMOJI.get(match.group(1))
        if character is None:
            # `:23:` in `14:23:05`: not a shortcode; its closing colon may open the next one.
            out.append(text[at : match.end()])
            at = match.end()
            continue
        out.append(text[at : match.start()] + character)
        at = match.end() + 1  # past the closing colon
    out.append(text[at:])
    return "".join(out)


def _decode(text: str) -> str:
    for entity, character in _ENTITIES:
        text = text.replace(entity, character)
    return text
