"""Change events: what `POST /events/change` accepts and refuses, the window of recent changes,
and the Recent changes message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.blocks import MAX_SECTION_TEXT
from bot.blocks.changes import change_line, recent_changes_message
from bot.changes import (
    ChangeEvent,
    ChangeKind,
    InvalidChange,
    ReceivedChange,
    parse_change,
    read_change,
    recent_changes,
)

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def body(**fields: Any) -> bytes:
    return json.dumps({"service": "checkout", "kind": "deploy", **fields}).encode()


def change(minutes_ago: float, service: str = "checkout", **fields: Any) -> ChangeEvent:
    return ChangeEvent(
        service=service, kind=ChangeKind.DEPLOY, at=NOW - timedelta(minutes=minutes_ago), **fields
    )


def refused(raw: bytes) -> str:
    result = parse_change(raw, now=NOW)
    assert isinstance(result, InvalidChange), result
    return result.message


def test_a_full_change_is_read() -> None:
    result = parse_change(
        body(
            version="v2.3.1",
            description="Bump the pool size",
            by="ci",
            at="2026-11-25T15:02:00+02:00",
            url="https://ci.example.com/runs/42?a=1&b=2",
        ),
        now=NOW,
    )
    assert result == ChangeEvent(
        service="checkout",
        kind=ChangeKind.DEPLOY,
        version="v2.3.1",
        description="Bump the pool size",
        by="ci",
        at=datetime(2026, 11, 25, 13, 2, tzinfo=UTC),
        url="https://ci.example.com/runs/42?a=1&b=2",
    )
    assert isinstance(result, ChangeEvent)
    assert result.at.utcoffset() == timedelta(0)  # kept in UTC, whatever offset was sent
    assert result.label == "v2.3.1"


def test_at_defaults_to_now_and_blanks_to_none() -> None:
    result = parse_change(body(kind=" Flag ", version="  ", at=None, extra="ignored"), now=NOW)
    assert isinstance(result, ChangeEvent)
    assert result.at == NOW and result.kind is ChangeKind.FLAG
    assert result.version is None and result.label == "flag"


def test_stored_json_is_the_same_for_the_same_event() -> None:
    a = parse_change(body(at="2026-11-25T13:00:00Z", version="v1"), now=NOW)
    b = parse_change(
        b' {"version": "v1", "at": "2026-11-25T14:00:00+01:00", "kind": "deploy", "service": "checkout"}',
        now=NOW,
    )
    assert isinstance(a, ChangeEvent) and isinstance(b, ChangeEvent)
    assert (
        a.stored()
        == b.stored()
        == '{"at":"2026-11-25T13:00:00Z","kind":"deploy","service":"checkout","version":"v1"}'
    )
    assert ChangeEvent.model_validate_json(a.stored()) == a


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"deployed v2", 'the body is not JSON: send {"service": "…", "kind": "deploy", …}'),
        (b"", 'the body is not JSON: send {"service": "…", "kind": "deploy", …}'),
        (b'["checkout"]', "the body must be a JSON object"),
        (b'{"kind": "deploy"}', "missing service"),
        (b'{"service": "checkout"}', "missing kind"),
        (b"{}", "missing service; missing kind"),
        (body(service="  "), "service is empty"),
        (body(service=42), "service must be a string"),
        (
            body(service="check out"),
            "service must use letters, digits, '.', '_' and '-', starting with a letter or digit",
        ),
        (body(kind="rollout"), "kind must be one of deploy, config, flag"),
        (body(at="yesterday"), "at must be an ISO 8601 time with a timezone, like 2026-11-25T14:02:00Z"),
        (body(at="2026-11-25T13:00:00"), "at has no timezone: add Z or an offset such as +02:00"),
        (body(at="2026-11-25T14:06:00Z"), "at: 2026-11-25T14:06:00+00:00 is in the future"),
        (
            body(at="2026-11-18T13:59:59Z"),
            "at: 2026-11-18T13:59:59+00:00 is older than the 7 days change events are kept",
        ),
        (body(version="v" * 101), "version is longer than 100 characters"),
        (body(description="d" * 501), "description is longer than 500 characters"),
        (
            body(url="javascript:alert(1)"),
            "url must be an http:// or https:// link without spaces, '<', '>' or '|'",
        ),
        (
            body(url="https://x.example/<!channel>"),
            "url must be an http:// or https:// link without spaces, '<', '>' or '|'",
        ),
        (body(by=["ci"]), "by must be a string"),
        (b"x" * 20000, "the body is larger than 16384 bytes"),
    ],
)
def test_a_bad_body_gets_a_message_saying_what_is_wrong(raw: bytes, message: str) -> None:
    assert refused(raw) == message


def test_a_little_clock_skew_is_allowed_and_the_oldest_moment_kept() -> None:
    assert isinstance(parse_change(body(at="2026-11-25T14:04:59Z"), now=NOW), ChangeEvent)
    assert isinstance(parse_change(body(at="2026-11-18T14:00:00Z"), now=NOW), ChangeEvent)


def test_a_change_without_at_has_a_retry_key_that_its_retries_share() -> None:
    def retry_key(raw: bytes, now: datetime = NOW) -> str | None:
        received = read_change(raw, now=now)
        assert isinstance(received, ReceivedChange), received
        return received.retry_key

    key = retry_key(body(version="v1", by="ci"))
    assert key is not None and len(key) == 32
    # A retry arrives later, perhaps written otherwise: the same key.
    assert retry_key(body(version="v1", by="ci", at=None), NOW + timedelta(minutes=3)) == key
    assert retry_key(b'{"by": "ci", "kind": " Deploy", "version": "v1", "service": "checkout"}') == key
    # Another change has another key; one sent with `at` is its own key.
    assert retry_key(body(version="v2", by="ci")) != key
    assert retry_key(body(version="v1", by="ci", at="2026-11-25T13:00:00Z")) is None


def test_the_window_is_two_hours_before_the_moment_newest_first() -> None:
    changes = [change(121), change(120, version="edge"), change(5), change(60), change(-1, version="after")]
    chosen = recent_changes(changes, before=NOW)
    assert [NOW - c.at for c in chosen] == [timedelta(minutes=m) for m in (5, 60, 120)]


def test_the_given_service_comes_first() -> None:
    changes = [change(10, "search"), change(50, "checkout"), change(30, "payments"), change(90, "checkout")]
    chosen = recent_changes(changes, before=NOW, service="checkout")
    assert [(c.service, int((NOW - c.at).total_seconds() // 60)) for c in chosen] == [
        ("checkout", 50),
        ("checkout", 90),
        ("search", 10),
        ("payments", 30),
    ]
    assert recent_changes(changes, before=NOW, window=timedelta(minutes=40)) == [changes[0], changes[2]]


def text_of(rendered: Any) -> str:
    return (
        "\n".join(b.to_dict().get("text", {}).get("text", "") for b in rendered.blocks)
        + "\n"
        + "\n".join(e["text"] for b in rendered.blocks for e in b.to_dict().get("elements", []))
    )


def test_no_changes_says_so() -> None:
    rendered = recent_changes_message([], before=NOW)
    assert "No changes were recorded in the 2h before 2026-11-25 14:00 UTC." in text_of(rendered)
    assert rendered.text == "Recent changes: none in the 2h before 14:00 UTC"


def test_each_change_shows_version_who_and_link_escaped() -> None:
    changes = [
        change(
            5,
            version="v2.3.1",
            by="U0ALICE1",
            url="https://ci.example.com/r?a=1&b=2",
            description="Pool <!channel>\nsize",
        ),
        change(30, "search", version="v`9`", by="WEBHOOK"),
    ]
    rendered = recent_changes_message(changes, before=NOW, service="checkout")
    text = text_of(rendered)
    assert "*Recent changes* (2h before 2026-11-25 14:00 UTC, checkout first)" in text
    assert (
        "• 13:55 UTC · :rocket: *checkout* deploy `v2.3.1` by <@U0ALICE1>: Pool &lt;!channel&gt; size "
        "(<https://ci.example.com/r?a=1&amp;b=2|link>)"
    ) in text
    assert "• 13:30 UTC · :rocket: *search* deploy `v'9'` by WEBHOOK" in text
    assert rendered.text == "Recent changes: 2 changes in the 2h before 14:00 UTC"


def test_dates_are_shown_when_the_changes_span_days() -> None:
    assert change_line(change(5), dated=True).startswith("• 11-25 13:55 UTC")
    rendered = recent_changes_message([change(5), change(60 * 24)], before=NOW, window=timedelta(days=2))
    assert "11-24 14:00 UTC" in text_of(rendered)


def test_many_changes_fit_slack_and_the_rest_are_counted() -> None:
    changes = [change(i, description="d" * 500, version="v" * 100) for i in range(40)]
    rendered = recent_changes_message(changes, before=NOW)
    sections = [b.to_dict()["text"]["text"] for b in rendered.blocks if b.to_dict()["type"] == "section"]
    assert all(len(s) <= MAX_SECTION_TEXT for s in sections)
    assert sum(s.count("• ") for s in sections) == 30
    assert "…and 10 more." in text_of(rendered)
