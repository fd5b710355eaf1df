"""Incident channel names follow Slack's rules for any title a user can type."""

from __future__ import annotations

import random
import re

import pytest

from bot.naming import MAX_CHANNEL_NAME, channel_name, channel_name_candidates

# Slack: lowercase letters, digits, `-` and `_`; at most 80; no leading or trailing punctuation.
SLACK_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?")


def assert_slack_name(name: str) -> None:
    assert len(name) <= MAX_CHANNEL_NAME, name
    assert SLACK_NAME.fullmatch(name), name
    assert "--" not in name, name


def _fuzz_titles(count: int, seed: int = 20261125) -> list[str]:
    """Deterministic random titles mixing ASCII, accents, scripts, emoji, markup and whitespace."""
    rng = random.Random(seed)
    alphabet = (
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        "      -_-_.,:;!?&<>@#*/\\'\"()[]{}|~`^%$+="
        "àéîõüßÆØÅçñÜÖÄ"
        "日本語中文한국어العربيةрусский"
        "🔥🚨💥👩‍💻✅"
        "\t\n\u00a0\u200b\u2028"
        "\uff21\uff22\uff23\uff44\uff45\uff46\uff11\uff12\uff13\ufb01\ufb02\u216b"  # fullwidth, ligatures
    )
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(count)]


HAND_TITLES = [
    "",
    " ",
    "Checkout requests failing",
    "CHECKOUT Requests FAILING!!!",
    "Ünïcödé façade: Zürich café",
    "日本語のタイトル",
    "🔥🔥🔥",
    "🔥 DB on fire 🔥",
    "<!channel>",
    "<!channel> <@U123> <#C123|general> & <https://x.example|link>",
    "---",
    "___",
    "-_-",
    "__init__ failing",
    "api_v2 - _ - 500s",
    "a" * 300,
    "word " * 40,
    "supercalifragilistic " * 10,
    "x" * 74 + " tail",
    "trailing punctuation!?.",
    "--leading dashes",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp",
    # "FULLWIDTH letters" in fullwidth forms
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff4c\uff45\uff54\uff54\uff45\uff52\uff53",
    "ﬁle ﬂow Ⅻ",
    "İstanbul DNS",
    "ǅemal's outage",
    "100% of requests 5xx",
]
FUZZ_TITLES = _fuzz_titles(300)
TITLES = [
    *(pytest.param(t, id=f"hand-{n}") for n, t in enumerate(HAND_TITLES)),
    *(pytest.param(t, id=f"fuzz-{n}") for n, t in enumerate(FUZZ_TITLES)),
]


@pytest.mark.parametrize("number", [1, 42, 99999])
@pytest.mark.parametrize("title", TITLES)
def test_channel_name_follows_slack_rules(title: str, number: int) -> None:
    name = channel_name("inc", number, title)
    assert_slack_name(name)
    assert name == f"inc-{number}" or name.startswith(f"inc-{number}-")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Checkout requests failing", "inc-42-checkout-requests-failing"),
        ("CHECKOUT Requests FAILING!!!", "inc-42-checkout-requests-failing"),
        ("Ünïcödé façade", "inc-42-unicode-facade"),
        ("<!channel>", "inc-42-channel"),
        ("🔥 DB on fire 🔥", "inc-42-db-on-fire"),
        ("api_v2 down", "inc-42-api_v2-down"),
        ("", "inc-42"),
        ("🔥🔥", "inc-42"),
        ("日本語", "inc-42"),
        ("-_-", "inc-42"),
    ],
)
def test_channel_name_examples(title: str, expected: str) -> None:
    assert channel_name("inc", 42, title) == expected


def test_long_title_is_cut_at_a_word_boundary() -> None:
    title = " ".join(f"word{n}" for n in range(40))
    name = channel_name("inc", 42, title)
    full = "inc-42-" + "-".join(f"word{n}" for n in range(40))
    assert full.startswith(name + "-")  # whole words only
    assert MAX_CHANNEL_NAME - len("-word10-word11") < len(name) <= MAX_CHANNEL_NAME


def test_long_title_keeps_a_word_that_ends_exactly_at_the_limit() -> None:
    # `inc-42-word0-...-word11` is exactly 80 characters: nothing needs cutting up to there.
    name = channel_name("inc", 42, " ".join(f"word{n}" for n in range(40)))
    assert name == "inc-42-" + "-".join(f"word{n}" for n in range(12))


def test_long_single_word_is_cut_hard() -> None:
    name = channel_name("inc", 42, "a" * 300)
    assert name == "inc-42-" + "a" * (MAX_CHANNEL_NAME - len("inc-42-"))


@pytest.mark.parametrize("prefix", ["INC", "Incident!", "ops_inc", "ü"])
def test_prefix_is_slugified_too(prefix: str) -> None:
    name = channel_name(prefix, 7, "Checkout down")
    assert_slack_name(name)
    assert name.endswith("-7-checkout-down")


def test_long_prefix_and_empty_title_still_follow_slack_rules() -> None:
    assert_slack_name(channel_name("x" * 79, 1, ""))


@pytest.mark.parametrize("title", TITLES)
def test_candidates_follow_slack_rules(title: str) -> None:
    name = channel_name("inc", 42, title)
    candidates = list(channel_name_candidates(name))
    assert candidates[0] == name
    assert len(candidates) == 6
    for candidate in candidates:
        assert_slack_name(candidate)


@pytest.mark.parametrize("title", HAND_TITLES, ids=[f"hand-{n}" for n in range(len(HAND_TITLES))])
def test_candidates_are_distinct(title: str) -> None:
    candidates = list(channel_name_candidates(channel_name("inc", 42, title)))
    assert len(set(candidates)) == len(candidates), candidates


def test_candidates_are_distinct_for_fuzzed_titles() -> None:
    # The fuzz found it: one title slugs to a name of 80 characters ending in `-3`.
    repeated = []
    for title in FUZZ_TITLES:
        candidates = list(channel_name_candidates(channel_name("inc", 42, title)))
        if len(set(candidates)) != len(candidates):
            repeated.append(candidates)
    assert repeated == []


def test_candidates_number_then_randomise() -> None:
    candidates = list(channel_name_candidates("inc-42-db-down", attempts=3))
    assert candidates[:3] == ["inc-42-db-down", "inc-42-db-down-2", "inc-42-db-down-3"]
    assert re.fullmatch(r"inc-42-db-down-[0-9a-f]{6}", candidates[3])
    assert len(candidates) == 4


def test_candidates_of_a_name_at_the_limit_stay_within_it() -> None:
    name = channel_name("inc", 42, "a" * 300)
    assert len(name) == MAX_CHANNEL_NAME
    candidates = list(channel_name_candidates(name))
    assert len(set(candidates)) == len(candidates)
    for candidate in candidates:
        assert_slack_name(candidate)


@pytest.mark.parametrize("title", ["a" * 72 + " 2", "a" * 71 + " 2", "b" * 72 + " 3"])
def test_candidates_of_a_full_name_ending_in_a_number_are_distinct(title: str) -> None:
    name = channel_name("inc", 1, title)
    assert len(name) >= MAX_CHANNEL_NAME - 1
    candidates = list(channel_name_candidates(name))
    assert len(set(candidates)) == len(candidates), candidates
