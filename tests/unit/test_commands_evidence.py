"""Parsing `/incident changes [service] [window]` and `/incident metrics <service> [window]`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.commands import USAGE, Help, ShowChanges, ShowMetrics, parse_command

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics checkout", ShowMetrics(service="checkout", window=HOUR)),
        ("METRICS checkout 30m", ShowMetrics(service="checkout", window=30 * MINUTE)),
        ("metrics checkout 1h30m", ShowMetrics(service="checkout", window=90 * MINUTE)),
        ("metrics checkout 5m", ShowMetrics(service="checkout", window=5 * MINUTE)),
        ("metrics checkout 7d", ShowMetrics(service="checkout", window=7 * 24 * HOUR)),
        ("metrics checkout 2H", ShowMetrics(service="checkout", window=2 * HOUR)),
        ("metrics api.v2_eu-west 6h", ShowMetrics(service="api.v2_eu-west", window=6 * HOUR)),
    ],
)
def test_metrics_takes_a_service_and_a_window_defaulting_to_an_hour(text: str, expected: ShowMetrics) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("metrics", "`/incident metrics` needs a service, then a window if not 1h"),
        ("metrics 30m", "`/incident metrics` needs a service, then a window if not 1h"),
        ("metrics checkout 30m extra", "`/incident metrics` needs a service"),
        ("metrics checkout 4m", "The window of `/incident metrics` is from 5m to 7d (not 4m)."),
        ("metrics checkout 59s", "The window of `/incident metrics` is from 5m to 7d (not 59s)."),
        ("metrics checkout 8d", "The window of `/incident metrics` is from 5m to 7d (not 8d)."),
        ("metrics checkout soon", "`soon` is not a time window: use a number and a unit, like 30m"),
        ("metrics checkout 0m", "The window of `/incident metrics` is from 5m to 7d (not 0m)."),
        ("metrics checkout 9999999999d", "is from 5m to 7d (not 9999999999d)."),
        (f"metrics checkout {'9' * 5000}m", "is from 5m to 7d (not 9999999999999999999…)."),
        ("metrics <!channel>", "`&lt;!channel&gt;` is not a service name, as in `/incident metrics"),
        ("metrics -checkout", "`-checkout` is not a service name"),
        (f"metrics {'s' * 65}", "is not a service name"),
    ],
)
def test_metrics_says_what_is_wrong(text: str, says: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, Help)
    assert parsed.problem is not None and says in parsed.problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("changes", ShowChanges(service=None, window=2 * HOUR)),
        ("changes checkout", ShowChanges(service="checkout", window=2 * HOUR)),
        ("changes 6h", ShowChanges(service=None, window=6 * HOUR)),
        ("changes checkout 6h", ShowChanges(service="checkout", window=6 * HOUR)),
        ("changes 6h checkout", ShowChanges(service="checkout", window=6 * HOUR)),
        ("changes checkout 1m", ShowChanges(service="checkout", window=MINUTE)),
        ("changes 7d", ShowChanges(service=None, window=7 * 24 * HOUR)),
    ],
)
def test_changes_takes_a_service_and_a_window_in_either_order(text: str, expected: ShowChanges) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("changes 8d", "The window of `/incident changes` is from 1m to 7d (not 8d)."),
        ("changes 30s", "The window of `/incident changes` is from 1m to 7d (not 30s)."),
        ("changes 0m", "The window of `/incident changes` is from 1m to 7d (not 0m)."),
        ("changes 99999999999d", "The window of `/incident changes` is from 1m to 7d (not 99999999999d)."),
        ("changes checkout 1h99999999999999d", "is from 1m to 7d (not 1h99999999999999d)."),
        ("changes checkout payments", "`/incident changes` takes one service"),
        ("changes 1h 2h", "`/incident changes` takes one window"),
        ("changes a b c", "`/incident changes` takes a service and a window at most"),
        ("changes check|out", "`check|out` is not a service name"),
    ],
)
def test_changes_says_what_is_wrong(text: str, says: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, Help)
    assert parsed.problem is not None and says in parsed.problem


def test_both_are_in_the_help_text() -> None:
    assert "`/incident changes [service] [window]`" in USAGE
    assert "`/incident metrics <service> [window]`" in USAGE
