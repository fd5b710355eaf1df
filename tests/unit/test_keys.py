"""bot/keys.py: every key the bot writes has a pattern, so the demo can delete what it wrote."""

from __future__ import annotations

import inspect
from fnmatch import fnmatchcase

from bot import keys

NOT_KEYS = {"PREFIX", "DIGEST", "ONCE_PATTERN", "DEMO_MARKER"}  # parts, members, the demo's own


def _every_key() -> list[str]:
    names: list[str] = []
    for name, value in vars(keys).items():
        if name.startswith("_") or name in NOT_KEYS or name == "PATTERNS":
            continue
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names += value
        elif inspect.isfunction(value) and value.__module__ == keys.__name__:
            made = value(*["INC-7"] * len(inspect.signature(value).parameters))
            names += made if isinstance(made, list) else [made]
    return names


def test_every_key_the_bot_writes_matches_a_pattern() -> None:
    found = [*_every_key(), "once:{modal:cmd:1.2.3}"]  # IncidentStore.first_request
    assert keys.incident("INC-7") in found and keys.SEQUENCE in found
    unmatched = [name for name in found if not any(fnmatchcase(name, p) for p in keys.PATTERNS)]
    assert unmatched == [], "add these to keys.PATTERNS, or the demo leaves them behind"


def test_the_demo_marker_and_other_apps_keys_match_no_pattern() -> None:
    for name in (keys.DEMO_MARKER, "other-app:session:42", "incident", "incidents", "inc:{INC-1}"):
        assert not any(fnmatchcase(name, p) for p in keys.PATTERNS), name
