"""Every Block Kit / message / modal limit, checked in both directions.

Each case gives the payload right at the limit (must pass) and one step over it (must be
rejected with the right error code and a reason that names the violation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.demo.standin.limits import (
    Rejection,
    check_blocks,
    check_message,
    check_view,
    parse_json_argument,
)

from .builders import (
    actions,
    button,
    checkboxes,
    modal,
    mrkdwn,
    option,
    plain,
    section,
    title_input,
)

Blocks = list[dict[str, Any]]


def options(count: int) -> list[dict[str, Any]]:
    return [option(f"Step {i}", f"step-{i}") for i in range(count)]


def fields(count: int, chars: int = 10) -> dict[str, Any]:
    return {"type": "section", "fields": [mrkdwn("f" * chars) for _ in range(count)]}


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


def context(count: int, chars: int = 5) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn("c" * chars) for _ in range(count)]}


@dataclass(frozen=True)
class MessageCase:
    name: str
    at_limit: Callable[[], Blocks]
    over_limit: Callable[[], Blocks]
    reason: str


MESSAGE_CASES = [
    MessageCase(
        "50 blocks per message",
        lambda: [section() for _ in range(50)],
        lambda: [section() for _ in range(51)],
        "51 blocks in one message; at most 50",
    ),
    MessageCase(
        "10 checkbox options",
        lambda: [actions(checkboxes(options(10)))],
        lambda: [actions(checkboxes(options(11)))],
        "checkboxes element has 11 options; at most 10",
    ),
    MessageCase(
        "option text 75 chars",
        lambda: [actions(checkboxes([option("t" * 75)]))],
        lambda: [actions(checkboxes([option("t" * 76)]))],
        "option text is 76 characters; at most 75",
    ),
    MessageCase(
        "option description 75 chars",
        lambda: [actions(checkboxes([option(description="d" * 75)]))],
        lambda: [actions(checkboxes([option(description="d" * 76)]))],
        "option description is 76 characters; at most 75",
    ),
    MessageCase(
        "option value 150 chars",
        lambda: [actions(checkboxes([option(value="v" * 150)]))],
        lambda: [actions(checkboxes([option(value="v" * 151)]))],
        "option value is 151 characters; at most 150",
    ),
    MessageCase(
        "section text 3000 chars",
        lambda: [section("s" * 3000)],
        lambda: [section("s" * 3001)],
        "section text is 3001 characters; at most 3000",
    ),
    MessageCase(
        "section field 2000 chars",
        lambda: [fields(1, chars=2000)],
        lambda: [fields(1, chars=2001)],
        "section field is 2001 characters; at most 2000",
    ),
    MessageCase(
        "10 section fields",
        lambda: [fields(10)],
        lambda: [fields(11)],
        "section has 11 fields; at most 10",
    ),
    MessageCase(
        "header text 150 chars",
        lambda: [header("h" * 150)],
        lambda: [header("h" * 151)],
        "header text is 151 characters; at most 150",
    ),
    MessageCase(
        "header is plain_text only",
        lambda: [header("Incident")],
        lambda: [header("Incident", kind="mrkdwn")],
        "header text must be a plain_text object",
    ),
    MessageCase(
        "context text 3000 chars",
        lambda: [context(1, chars=3000)],
        lambda: [context(1, chars=3001)],
        "context text is 3001 characters; at most 3000",
    ),
    MessageCase(
        "10 context elements",
        lambda: [context(10)],
        lambda: [context(11)],
        "context block has 11 elements; at most 10",
    ),
    MessageCase(
        "25 actions elements",
        lambda: [actions(*[button(action_id=f"b{i}") for i in range(25)])],
        lambda: [actions(*[button(action_id=f"b{i}") for i in range(26)])],
        "actions block has 26 elements; at most 25",
    ),
    MessageCase(
        "action_id 255 chars",
        lambda: [actions(button(action_id="a" * 255))],
        lambda: [actions(button(action_id="a" * 256))],
        "action_id is 256 characters; at most 255",
    ),
    MessageCase(
        "block_id 255 chars",
        lambda: [section(block_id="b" * 255)],
        lambda: [section(block_id="b" * 256)],
        "block_id is 256 characters; at most 255",
    ),
    MessageCase(
        "block_ids unique in a message",
        lambda: [section(block_id="one"), section(block_id="two")],
        lambda: [section(block_id="one"), section(block_id="one")],
        "duplicate block_id 'one'",
    ),
    MessageCase(
        "action_ids unique in a block",
        lambda: [actions(button(action_id="x"), button(action_id="y"))],
        lambda: [actions(button(action_id="x"), button(action_id="x"))],
        "duplicate action_id 'x' in block",
    ),
    MessageCase(
        "button label 75 chars",
        lambda: [actions(button("b" * 75))],
        lambda: [actions(button("b" * 76))],
        "button text is 76 characters; at most 75",
    ),
    MessageCase(
        "unknown block type",
        lambda: [{"type": "divider"}],
        lambda: [{"type": "checklist"}],
        "unknown block type 'checklist'",
    ),
    MessageCase(
        "unknown element type",
        lambda: [actions(button())],
        lambda: [actions({"type": "toggle", "action_id": "t"})],
        "unknown element type 'toggle'",
    ),
    MessageCase(
        "unknown block property",
        lambda: [section()],
        lambda: [section(colour="red")],
        "unknown property 'colour' on a section block",
    ),
    MessageCase(
        "mrkdwn text has no emoji flag",
        lambda: [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "verbatim": True}}],
        lambda: [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "emoji": True}}],
        "unknown property 'emoji' on a mrkdwn object",
    ),
    MessageCase(
        "text objects are not empty",
        lambda: [section("x")],
        lambda: [section("")],
        "section text must have at least 1 character",
    ),
    MessageCase(
        "initial options come from the options",
        lambda: [actions(checkboxes([option()], initial=[option()]))],
        lambda: [actions(checkboxes([option()], initial=[option("Other", "other")]))],
        "initial option does not exactly match any of the options",
    ),
    MessageCase(
        "text objects in actions are refused",
        lambda: [actions(button())],
        lambda: [actions(plain("just words"))],
        "'plain_text' is not allowed in actions blocks",
    ),
    # Delegated to slack_sdk's validators, which this layer runs on every element.
    MessageCase(
        "button value 2000 chars (slack_sdk)",
        lambda: [actions(button(value="v" * 2000))],
        lambda: [actions(button(value="v" * 2001))],
        "value attribute cannot exceed 2000 characters",
    ),
    MessageCase(
        "button style (slack_sdk)",
        lambda: [actions(button(style="danger"))],
        lambda: [actions(button(style="loud"))],
        "style attribute must be one of the following values",
    ),
]


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=lambda c: c.name)
def test_message_limit_in_both_directions(case: MessageCase) -> None:
    assert check_message(text="fallback", blocks=case.at_limit()) is None

    rejection = check_message(text="fallback", blocks=case.over_limit())

    assert rejection is not None
    assert rejection.error == "invalid_blocks"
    assert any(case.reason in reason for reason in rejection.reasons), rejection.reasons


def test_reasons_carry_a_json_pointer_to_the_offending_field() -> None:
    blocks = [section(), actions(checkboxes([option(value="v" * 151)]))]

    rejection = check_message(text="x", blocks=blocks)

    assert rejection is not None
    assert rejection.reasons == [
        "option value is 151 characters; at most 150 [json-pointer:/blocks/1/elements/0/options/0/value]"
    ]


def test_message_text_limit_is_msg_too_long() -> None:
    assert check_message(text="t" * 40_000, blocks=None) is None

    rejection = check_message(text="t" * 40_001, blocks=None)

    assert rejection is not None
    assert rejection.error == "msg_too_long"
    assert "40001 characters" in rejection.reasons[0]


@pytest.mark.parametrize(("text", "blocks"), [(None, None), ("", None), ("", []), (None, [])], ids=repr)
def test_a_message_needs_text_or_blocks(text: str | None, blocks: Blocks | None) -> None:
    rejection = check_message(text=text, blocks=blocks)

    assert rejection is not None
    assert rejection.error == "no_text"


def test_blocks_alone_are_enough_content() -> None:
    assert check_message(text=None, blocks=[section()]) is None


def test_blocks_must_be_an_array() -> None:
    assert [str(v) for v in check_blocks({"type": "section"}, surface="message")] == [
        "blocks must be an array [json-pointer:/blocks]"
    ]


def test_rejection_answers_in_slacks_shape() -> None:
    rejection = Rejection(error="invalid_blocks", reasons=["bad [json-pointer:/blocks/0]"])

    assert rejection.to_response() == {
        "ok": False,
        "error": "invalid_blocks",
        "errors": ["bad [json-pointer:/blocks/0]"],
        "response_metadata": {"messages": ["[ERROR] bad [json-pointer:/blocks/0]"]},
    }


def test_json_arguments_arrive_as_strings_or_structures() -> None:
    assert parse_json_argument('[{"type": "divider"}]') == [{"type": "divider"}]
    assert parse_json_argument([{"type": "divider"}]) == [{"type": "divider"}]


# -- modal views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewCase:
    name: str
    at_limit: Callable[[], dict[str, Any]]
    over_limit: Callable[[], dict[str, Any]]
    reason: str


VIEW_CASES = [
    ViewCase(
        "100 blocks per modal",
        lambda: modal([section() for _ in range(100)]),
        lambda: modal([section() for _ in range(101)]),
        "101 blocks in one modal; at most 100",
    ),
    ViewCase(
        "title 24 chars",
        lambda: modal([section()], title=plain("t" * 24)),
        lambda: modal([section()], title=plain("t" * 25)),
        "modal title is 25 characters; at most 24",
    ),
    ViewCase(
        "submit 24 chars",
        lambda: modal([section()], submit=plain("s" * 24)),
        lambda: modal([section()], submit=plain("s" * 25)),
        "modal submit is 25 characters; at most 24",
    ),
    ViewCase(
        "close 24 chars",
        lambda: modal([section()], close=plain("c" * 24)),
        lambda: modal([section()], close=plain("c" * 25)),
        "modal close is 25 characters; at most 24",
    ),
    ViewCase(
        "private_metadata 3000 chars",
        lambda: modal([section()], private_metadata="m" * 3000),
        lambda: modal([section()], private_metadata="m" * 3001),
        "private_metadata is 3001 characters; at most 3000",
    ),
    ViewCase(
        "callback_id 255 chars",
        lambda: modal([section()], callback_id="c" * 255),
        lambda: modal([section()], callback_id="c" * 256),
        "callback_id is 256 characters; at most 255",
    ),
    ViewCase(
        "title is plain_text",
        lambda: modal([section()]),
        lambda: modal([section()], title=mrkdwn("*Declare*")),
        "modal title must be a plain_text object",
    ),
    ViewCase(
        "input blocks need a submit button",
        lambda: modal([title_input()]),
        lambda: {k: v for k, v in modal([title_input()]).items() if k != "submit"},
        "a modal with input blocks needs a submit button",
    ),
    ViewCase(
        "only modals open",
        lambda: modal([section()]),
        lambda: modal([section()], type="home"),
        "view type must be 'modal'",
    ),
    ViewCase(
        "blocks inside the view are checked",
        lambda: modal([actions(checkboxes(options(10)))]),
        lambda: modal([actions(checkboxes(options(11)))]),
        "checkboxes element has 11 options; at most 10 allowed "
        "[json-pointer:/view/blocks/0/elements/0/options]",
    ),
]


@pytest.mark.parametrize("case", VIEW_CASES, ids=lambda c: c.name)
def test_view_limit_in_both_directions(case: ViewCase) -> None:
    assert check_view(case.at_limit()) is None

    rejection = check_view(case.over_limit())

    assert rejection is not None
    assert rejection.error == "invalid_arguments"
    assert any(case.reason in str(reason) for reason in rejection.reasons), rejection.reasons


def test_a_view_must_be_an_object() -> None:
    rejection = check_view("modal")

    assert rejection is not None
    assert rejection.reasons == ["view must be an object [json-pointer:/view]"]
