"""Shared helpers for the stand-in tests: a controllable clock, Block Kit builders, and the
answer of a call Slack refuses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

START = 1_700_000_000.0


async def refused(call: Awaitable[Any]) -> dict[str, Any]:
    """Awaits a call that must fail and returns Slack's answer body."""
    with pytest.raises(SlackApiError) as caught:
        await call
    data = caught.value.response.data
    assert isinstance(data, dict)
    return data


class FakeClock:
    """Time that only moves when a test says so (trigger ids, response_urls, rate limits)."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- Block Kit builders shared by the tests ----------------------------------------------------


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def section(text: str = "Status: investigating", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text), **extra}


def option(
    text: str = "Page the on-call", value: str = "page", description: str | None = None
) -> dict[str, Any]:
    built: dict[str, Any] = {"text": mrkdwn(text), "value": value}
    if description is not None:
        built["description"] = plain(description)
    return built


def checkboxes(
    options: list[dict[str, Any]],
    action_id: str = "tick",
    initial: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "checkboxes", "action_id": action_id, "options": options}
    if initial:
        element["initial_options"] = initial
    return element


def button(label: str = "Resolve", action_id: str = "resolve", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": plain(label), "action_id": action_id, **extra}


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def modal(blocks: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "declare",
        "title": plain("Declare incident"),
        "submit": plain("Declare"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }
    view.update(overrides)
    return view


def title_input(block_id: str = "title") -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain("Title"),
        "element": {"type": "plain_text_input", "action_id": "value"},
    }
