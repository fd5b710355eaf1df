"""Incident channel names, following Slack's rules: lowercase letters, digits, `-` and `_`, 80 max."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator

MAX_CHANNEL_NAME = 80
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")


def slugify(text: str) -> str:
    # Fold accents (`Ü` -> `u`) before dropping what Slack does not allow.
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _NOT_ALLOWED.sub("-", folded.lower())
    return _DASHES.sub("-", slug).strip("-_")


def channel_name(prefix: str, number: int, title: str) -> str:
    """`inc-42-checkout-requests-failing`, cut at a word boundary to fit 80 characters."""
    base = slugify(f"{prefix}-{number}") or f"inc-{number}"
    slug = slugify(title)
    if not slug:
        return base[:MAX_CHANNEL_NAME]
    name = f"{base}-{slug}"
    if len(name) > MAX_CHANNEL_NAME:
        cut = name[:MAX_CHANNEL_NAME]
        name = cut.rsplit("-", 1)[0] if "-" in cut[len(base) + 1 :] else cut
    return name.strip("-_")


def channel_name_candidates(name: str, attempts: int = 5) -> Iterator[str]:
    """The name, then `name-2` .. `name-N`, then a random suffix: for Slack's `name_taken`."""
    yield name
    for n in range(2, attempts + 1):
        suffix = f"-{n}"
        yield name[: MAX_CHANNEL_NAME - len(suffix)].rstrip("-_") + suffix
    suffix = f"-{secrets.token_hex(3)}"
    yield name[: MAX_CHANNEL_NAME - len(suffix)].rstrip("-_") + suffix
