"""Small formatting helpers for mrkdwn: mentions, times, durations."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.text import escape_mrkdwn

_USER_ID = re.compile(r"[UW][A-Z0-9]+")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_LINE_BREAKS = re.compile(r"\s*\n\s*")


def user(user_id: str) -> str:
    """A mention of a Slack user id; anything that is not an id is shown escaped, never parsed."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape_mrkdwn(user_id)


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if _CHANNEL_ID.fullmatch(channel_id) else escape_mrkdwn(channel_id)


def clock(at: datetime) -> str:
    """`14:23 UTC`."""
    return at.strftime("%H:%M UTC")


def stamp(at: datetime) -> str:
    """`2026-11-25 14:23 UTC`."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


def elapsed(delta: timedelta) -> str:
    """`2h 5m`, `45s`: a human duration, at most two units."""
    seconds = max(0, int(delta.total_seconds()))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts = []
    for name, size in units:
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{name}")
    return " ".join(parts[:2]) or "0s"


def spoken(delta: timedelta) -> str:
    """`15 minutes`, `1 hour 30 minutes`, `4 seconds`: a duration as the template says it."""
    seconds = int(delta.total_seconds())
    words = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            words.append(f"{n} {name}" + ("" if n == 1 else "s"))
    return " ".join(words) or "0 seconds"


def due(at: datetime | None, now: datetime) -> str:
    """`14:45 UTC (in 12m)` or `14:45 UTC (overdue by 3m)`."""
    if at is None:
        return "none"
    if at >= now:
        return f"{clock(at)} (in {elapsed(at - now)})"
    return f"{clock(at)} (overdue by {elapsed(now - at)})"


def one_line(text: str) -> str:
    """Line breaks (and the blanks around them) as single spaces."""
    return _LINE_BREAKS.sub(" ", text.strip())


def clip(mrkdwn: str, limit: int) -> str:
    """Safe mrkdwn cut to at most `limit` characters, ending in `…`. The cut never falls inside
    an entity (`&amp;`) or a `<…>` mention or link, so what is left is still safe mrkdwn."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = mrkdwn[: limit - 1]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    return cut + "…"


def plain(text: str, who: Callable[[str], str]) -> str:
    """Stored text (safe mrkdwn, or as typed) as plain text: entities decoded, user mentions
    shown by `who(user id)`. For Markdown files, where Slack mentions mean nothing."""
    parts = _MENTION.split(text)  # text, user id, text, user id, ..., text
    shown = []
    for index, part in enumerate(parts):
        if index % 2:
            shown.append(who(part))
            continue
        for entity, character in _ENTITIES:
            part = part.replace(entity, character)
        shown.append(part)
    return "".join(shown)


def kept_mention(user_id: str) -> str:
    """For `plain`: keep user mentions as mentions."""
    return f"<@{user_id}>"


def mrkdwn(text: str) -> str:
    """Plain text (from `plain(text, kept_mention)`) as safe mrkdwn: everything escaped but
    whole user mentions, so a mention cut in half is shown, never parsed."""
    parts = _MENTION.split(text)
    return "".join(kept_mention(p) if index % 2 else escape_mrkdwn(p) for index, p in enumerate(parts))
