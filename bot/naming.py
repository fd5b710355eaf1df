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
        return base[:MAX_CHANNEL_NAME].strip("-_")
    name = f"{base}-{slug}"
    if len(name) > MAX_CHANNEL_NAME:
        cut = name[:MAX_CHANNEL_NAME]
        ends_a_word = name[MAX_CHANNEL_NAME] == "-"
        if not ends_a_word and "-" in cut[len(base) + 1 :]:
            cut = cut.rsplit("-", 1)[0]
        name = cut
    return name.strip("-_")


def channel_name_candidates(name: str, attempts: int = 5) -> Iterator[str]:
    """The name, `attempts - 1` numbered variants (`name-2`, ...), then a random suffix: for
    Slack's `name_taken`. All distinct: a name cut to fit could otherwise come back as itself."""
    seen = {name}
    yield name
    n = 2
    while len(seen) < attempts:
        candidate = _with_suffix(name, f"-{n}")
        n += 1
        if candidate not in seen:
            seen.add(candidate)
            yield candidate
    while (candidate := _with_suffix(name, f"-{secrets.token_hex(3)}")) in seen:
        continue
    yield candidate


def _with_suffix(name: str, suffix: str) -> str:
    return name[: MAX_CHANNEL_NAME - len(suffix)].rstrip("-_") + suffix
