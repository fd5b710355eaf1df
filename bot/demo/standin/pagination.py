"""Cursor pagination and timestamp arguments, read the way the Web API reads them.

https://docs.slack.dev/apis/web-api/pagination: a page ends with
`response_metadata.next_cursor`; an empty string (or no cursor) means there is nothing more.
Cursors are opaque base64 strings; Slack's own look like base64 of `next_ts:<ts>`
(conversations.history) and `team:<channel id>` (conversations.list), and so do these.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal, InvalidOperation


class BadArgument(ValueError):
    """An argument Slack would refuse; `error` is Slack's error code for it."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def encode_cursor(prefix: str, value: str) -> str:
    return base64.b64encode(f"{prefix}:{value}".encode()).decode()


def decode_cursor(cursor: str, prefix: str) -> str:
    """The value inside a cursor this stand-in issued with `prefix`; BadArgument otherwise."""
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadArgument("invalid_cursor", f"cursor {cursor!r} is not one Slack issued") from None
    found, separator, value = decoded.partition(":")
    if found != prefix or not separator or not value:
        raise BadArgument("invalid_cursor", f"cursor {cursor!r} is not one Slack issued")
    return value


def parse_limit(raw: object, *, default: int, maximum: int) -> int:
    """A page size: a positive integer; above `maximum` Slack serves `maximum` rather than refuse
    (clients ask conversations.list for limit=1000 and far more, and get a page)."""
    if raw is None or raw == "":
        return default
    try:
        limit = int(str(raw))
    except ValueError:
        raise BadArgument("invalid_limit", f"limit {raw!r} is not an integer") from None
    if limit < 1:
        raise BadArgument("invalid_limit", f"limit {limit} must be at least 1")
    return min(limit, maximum)


def parse_ts(raw: object, error: str) -> Decimal | None:
    """A message timestamp such as "1512085950.000216" (or "0"), compared exactly."""
    if raw is None or raw == "":
        return None
    try:
        ts = Decimal(str(raw))
    except InvalidOperation:
        raise BadArgument(error, f"{raw!r} is not a timestamp") from None
    if not ts.is_finite() or ts < 0:
        raise BadArgument(error, f"{raw!r} is not a timestamp")
    return ts
