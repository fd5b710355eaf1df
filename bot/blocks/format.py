"""Small formatting helpers for mrkdwn: mentions, times, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.text import escape_mrkdwn

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


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
