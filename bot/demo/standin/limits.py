"""What Slack would reject in a message or a modal view, with a reason that names it.

Two layers, because neither is complete alone:

1. slack_sdk's own models (`Block.parse(...)` + `.validate_json()`), applied to every block,
   element and option. They catch a long tail of per-field rules, but `validate_json()` does
   not descend into children, treats unknown keys as a log line, and misses several limits.
2. The checks below, for the limits slack_sdk leaves out (block counts, checkbox option
   counts, option descriptions, text object types and sizes, section fields, id uniqueness,
   unknown block/element types and properties, message text size, modal fields).

Every limit is a named constant taken from Slack's Block Kit reference
(https://docs.slack.dev/reference/block-kit/...).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block, BlockElement, ImageElement, InteractiveElement, Option

JsonDict = dict[str, Any]
Surface = Literal["message", "modal"]

# https://docs.slack.dev/reference/block-kit/blocks
MAX_BLOCKS_PER_MESSAGE = 50
MAX_BLOCKS_PER_VIEW = 100
MAX_BLOCK_ID_CHARS = 255
# https://docs.slack.dev/reference/block-kit/composition-objects/text-object
MAX_TEXT_OBJECT_CHARS = 3000
# https://docs.slack.dev/reference/block-kit/blocks/section-block
MAX_SECTION_TEXT_CHARS = 3000
MAX_SECTION_FIELDS = 10
MAX_SECTION_FIELD_CHARS = 2000
# https://docs.slack.dev/reference/block-kit/blocks/header-block
MAX_HEADER_CHARS = 150
# https://docs.slack.dev/reference/block-kit/blocks/actions-block
MAX_ACTIONS_ELEMENTS = 25
# https://docs.slack.dev/reference/block-kit/blocks/context-block
MAX_CONTEXT_ELEMENTS = 10
# https://docs.slack.dev/reference/block-kit/block-elements/checkboxes-element (and radio)
MAX_CHECKBOX_OPTIONS = 10
MAX_RADIO_OPTIONS = 10
MAX_ACTION_ID_CHARS = 255
# https://docs.slack.dev/reference/block-kit/composition-objects/option-object
MAX_OPTION_TEXT_CHARS = 75
MAX_OPTION_DESCRIPTION_CHARS = 75
MAX_OPTION_VALUE_CHARS = 150
# https://docs.slack.dev/reference/block-kit/block-elements/button-element
MAX_BUTTON_TEXT_CHARS = 75
# https://docs.slack.dev/reference/methods/chat.postMessage (longer text is msg_too_long)
MAX_MESSAGE_TEXT_CHARS = 40_000
# https://docs.slack.dev/reference/views/modal-views
MAX_VIEW_TITLE_CHARS = 24
MAX_VIEW_BUTTON_CHARS = 24
MAX_PRIVATE_METADATA_CHARS = 3000
MAX_CALLBACK_ID_CHARS = 255
MAX_EXTERNAL_ID_CHARS = 255

TEXT_TYPES = ("plain_text", "mrkdwn")
_TEXT_KEYS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}
_OPTION_KEYS = {"text", "value", "description", "url"}
_VIEW_KEYS = {
    "type",
    "title",
    "blocks",
    "close",
    "submit",
    "private_metadata",
    "callback_id",
    "clear_on_close",
    "notify_on_close",
    "external_id",
    "submit_disabled",
}
_SDK_ERRORS = (SlackObjectFormationError, TypeError, KeyError, ValueError, AttributeError)


@dataclass(frozen=True)
class Violation:
    """One reason for rejection, located like Slack does it (a JSON pointer)."""

    pointer: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reason} [json-pointer:{self.pointer}]"


class Rejection(BaseModel):
    """A Slack-shaped refusal: an error code plus the reasons behind it."""

    error: str
    reasons: list[str] = []

    def to_response(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error": self.error}
        if self.reasons:
            body["errors"] = list(self.reasons)
            body["response_metadata"] = {"messages": [f"[ERROR] {r}" for r in self.reasons]}
        return body


def _rejection(error: str, violations: list[Violation]) -> Rejection:
    return Rejection(error=error, reasons=[str(v) for v in violations])


# -- entry points ---------------------------------------------------------------------------


def parse_json_argument(value: object) -> object:
    """Form-encoded calls carry JSON arguments as strings; JSON bodies carry them as-is."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def check_message(
    *,
    text: object,
    blocks: object,
    attachments: object = None,
    content_required: bool = True,
) -> Rejection | None:
    """Checks a message's text and blocks the way chat.postMessage does."""
    if text is not None and not isinstance(text, str):
        return Rejection(error="invalid_arguments", reasons=["text must be a string"])
    has_content = bool(text) or bool(blocks) or bool(attachments)
    if content_required and not has_content:
        return Rejection(error="no_text", reasons=["a message needs text, blocks or attachments"])
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT_CHARS:
        return Rejection(
            error="msg_too_long",
            reasons=[f"text is {len(text)} characters; at most {MAX_MESSAGE_TEXT_CHARS} allowed"],
        )
    if blocks is not None:
        violations = check_blocks(blocks, surface="message")
        if violations:
            return _rejection("invalid_blocks", violations)
    return None


def check_view(view: object) -> Rejection | None:
    """Checks a modal view the way views.open / views.update / views.push do."""
    violations = _ViewChecker().check(view)
    if violations:
        return _rejection("invalid_arguments", violations)
    return None


def check_blocks(blocks: object, *, surface: Surface, pointer: str = "/blocks") -> list[Violation]:
    return _BlockChecker(surface).check_all(blocks, pointer)


# -- the checkers ---------------------------------------------------------------------------


class _ViewChecker:
    def check(self, view: object) -> list[Violation]:
        found: list[Violation] = []
        if not isinstance(view, dict):
            return [Violation("/view", "view must be an object")]
        if view.get("type") != "modal":
            found.append(Violation("/view/type", "view type must be 'modal'"))
        for key in sorted(set(view) - _VIEW_KEYS):
            found.append(Violation(f"/view/{key}", f"unknown view property '{key}'"))

        title = view.get("title")
        if title is None:
            found.append(Violation("/view/title", "modal title is required"))
        else:
            found += _check_text(title, "/view/title", MAX_VIEW_TITLE_CHARS, "modal title", True)
        for button in ("submit", "close"):
            if view.get(button) is not None:
                found += _check_text(
                    view[button], f"/view/{button}", MAX_VIEW_BUTTON_CHARS, f"modal {button}", True
                )
        found += _check_string(view, "private_metadata", MAX_PRIVATE_METADATA_CHARS, "/view/private_metadata")
        found += _check_string(view, "callback_id", MAX_CALLBACK_ID_CHARS, "/view/callback_id")
        found += _check_string(view, "external_id", MAX_EXTERNAL_ID_CHARS, "/view/external_id")

        blocks = view.get("blocks")
        if blocks is None:
            found.append(Violation("/view/blocks", "modal blocks are required"))
        else:
            found += check_blocks(blocks, surface="modal", pointer="/view/blocks")
            has_input = isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
            )
            if has_input and view.get("submit") is None:
                found.append(Violation("/view/submit", "a modal with input blocks needs a submit button"))
        return found


def _check_string(container: JsonDict, key: str, limit: int, pointer: str) -> list[Violation]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, str):
        return [Violation(pointer, f"{key} must be a string")]
    if len(value) > limit:
        return [Violation(pointer, f"{key} is {len(value)} characters; at most {limit} allowed")]
    return []


def _check_text(
    obj: object, pointer: str, limit: int, what: str, plain_only: bool = False
) -> list[Violation]:
    """A text object: {type: plain_text|mrkdwn, text: 1..limit chars}, nothing else."""
    if not isinstance(obj, dict):
        return [Violation(pointer, f"{what} must be a text object")]
    kind = obj.get("type")
    if kind not in TEXT_TYPES:
        return [Violation(f"{pointer}/type", f"{what} type must be plain_text or mrkdwn")]
    found: list[Violation] = []
    if plain_only and kind != "plain_text":
        found.append(Violation(f"{pointer}/type", f"{what} must be a plain_text object"))
    for key in sorted(set(obj) - _TEXT_KEYS[str(kind)]):
        found.append(Violation(f"{pointer}/{key}", f"unknown property '{key}' on a {kind} object"))
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        found.append(Violation(f"{pointer}/text", f"{what} must have at least 1 character"))
    elif len(text) > limit:
        found.append(Violation(f"{pointer}/text", f"{what} is {len(text)} characters; at most {limit}"))
    return found


class _BlockChecker:
    """Walks a list of blocks, collecting every violation with its JSON pointer."""

    def __init__(self, surface: Surface) -> None:
        self.surface = surface
        self.block_ids: dict[str, str] = {}

    def check_all(self, blocks: object, pointer: str) -> list[Violation]:
        if not isinstance(blocks, list):
            return [Violation(pointer, "blocks must be an array")]
        limit = MAX_BLOCKS_PER_MESSAGE if self.surface == "message" else MAX_BLOCKS_PER_VIEW
        found: list[Violation] = []
        if len(blocks) > limit:
            found.append(
                Violation(
                    pointer,
                    f"{len(blocks)} blocks in one {self.surface}; at most {limit} allowed",
                )
            )
        for index, block in enumerate(blocks):
            found += self.check_block(block, f"{pointer}/{index}")
        return found

    def check_block(self, block: object, ptr: str) -> list[Violation]:
        if not isinstance(block, dict):
            return [Violation(ptr, "block must be an object")]
        kind = block.get("type")
        if not isinstance(kind, str):
            return [Violation(f"{ptr}/type", "block is missing its type")]
        parsed = _sdk_parse(Block.parse, block)
        if parsed is None:
            return [Violation(f"{ptr}/type", f"unknown block type '{kind}'")]

        found = self._check_block_id(block, ptr)
        if isinstance(parsed, JsonObject):
            found += _unknown_keys(block, parsed, ptr, f"{kind} block")
        checker = self._per_type.get(kind)
        if checker is not None:
            found += checker(self, block, ptr)
        if not found:
            # Only when our own checks pass, so one mistake is not reported twice.
            found += _sdk_violations(parsed, ptr)
        return found

    def _check_block_id(self, block: JsonDict, ptr: str) -> list[Violation]:
        if "block_id" not in block:
            return []
        block_id = block["block_id"]
        if not isinstance(block_id, str) or not block_id:
            return [Violation(f"{ptr}/block_id", "block_id must be a non-empty string")]
        if len(block_id) > MAX_BLOCK_ID_CHARS:
            return [
                Violation(
                    f"{ptr}/block_id",
                    f"block_id is {len(block_id)} characters; at most {MAX_BLOCK_ID_CHARS}",
                )
            ]
        if block_id in self.block_ids:
            first = self.block_ids[block_id]
            return [Violation(f"{ptr}/block_id", f"duplicate block_id '{block_id}' (see {first})")]
        self.block_ids[block_id] = ptr
        return []

    # -- per block type -----------------------------------------------------------------

    def _section(self, block: JsonDict, ptr: str) -> list[Violation]:
        found: list[Violation] = []
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            found.append(Violation(ptr, "section block needs text or fields"))
        if text is not None:
            found += _check_text(text, f"{ptr}/text", MAX_SECTION_TEXT_CHARS, "section text")
        if fields is not None:
            if not isinstance(fields, list):
                found.append(Violation(f"{ptr}/fields", "section fields must be an array"))
            else:
                if len(fields) > MAX_SECTION_FIELDS:
                    found.append(
                        Violation(
                            f"{ptr}/fields",
                            f"section has {len(fields)} fields; at most {MAX_SECTION_FIELDS} allowed",
                        )
                    )
                for i, field in enumerate(fields):
                    found += _check_text(field, f"{ptr}/fields/{i}", MAX_SECTION_FIELD_CHARS, "section field")
        if block.get("accessory") is not None:
            found += self._element(block["accessory"], f"{ptr}/accessory", "section", set())
        return found

    def _header(self, block: JsonDict, ptr: str) -> list[Violation]:
        if block.get("text") is None:
            return [Violation(f"{ptr}/text", "header block needs text")]
        return _check_text(block["text"], f"{ptr}/text", MAX_HEADER_CHARS, "header text", True)

    def _context(self, block: JsonDict, ptr: str) -> list[Violation]:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            return [Violation(f"{ptr}/elements", "context block needs at least 1 element")]
        found: list[Violation] = []
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            found.append(
                Violation(
                    f"{ptr}/elements",
                    f"context block has {len(elements)} elements; at most {MAX_CONTEXT_ELEMENTS} allowed",
                )
            )
        for i, element in enumerate(elements):
            found += self._element(element, f"{ptr}/elements/{i}", "context", set())
        return found

    def _actions(self, block: JsonDict, ptr: str) -> list[Violation]:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            return [Violation(f"{ptr}/elements", "actions block needs at least 1 element")]
        found: list[Violation] = []
        if len(elements) > MAX_ACTIONS_ELEMENTS:
            found.append(
                Violation(
                    f"{ptr}/elements",
                    f"actions block has {len(elements)} elements; at most {MAX_ACTIONS_ELEMENTS} allowed",
                )
            )
        action_ids: set[str] = set()
        for i, element in enumerate(elements):
            found += self._element(element, f"{ptr}/elements/{i}", "actions", action_ids)
        return found

    def _input(self, block: JsonDict, ptr: str) -> list[Violation]:
        found: list[Violation] = []
        if block.get("label") is None:
            found.append(Violation(f"{ptr}/label", "input block needs a label"))
        else:
            found += _check_text(block["label"], f"{ptr}/label", 2000, "input label", True)
        if block.get("hint") is not None:
            found += _check_text(block["hint"], f"{ptr}/hint", 2000, "input hint", True)
        if block.get("element") is None:
            found.append(Violation(f"{ptr}/element", "input block needs an element"))
        else:
            found += self._element(block["element"], f"{ptr}/element", "input", set())
        return found

    _per_type: ClassVar[dict[str, Callable[[_BlockChecker, JsonDict, str], list[Violation]]]] = {
        "section": _section,
        "header": _header,
        "context": _context,
        "actions": _actions,
        "input": _input,
    }

    # -- elements -----------------------------------------------------------------------

    def _element(self, element: object, ptr: str, place: str, action_ids: set[str]) -> list[Violation]:
        if not isinstance(element, dict):
            return [Violation(ptr, "element must be an object")]
        kind = element.get("type")
        if not isinstance(kind, str):
            return [Violation(f"{ptr}/type", "element is missing its type")]
        if place == "context":
            if kind in TEXT_TYPES:
                return _check_text(element, ptr, MAX_TEXT_OBJECT_CHARS, "context text")
            if kind != "image":
                return [Violation(f"{ptr}/type", f"'{kind}' is not allowed in context blocks")]
        parsed = _sdk_parse(BlockElement.parse, element)
        if parsed is None:
            return [Violation(f"{ptr}/type", f"unknown element type '{kind}'")]
        allowed_here = isinstance(parsed, InteractiveElement) or (
            place in ("section", "context") and isinstance(parsed, ImageElement)
        )
        if isinstance(parsed, JsonObject) and not allowed_here:
            return [Violation(f"{ptr}/type", f"'{kind}' is not allowed in {place} blocks")]

        found: list[Violation] = []
        if isinstance(parsed, JsonObject):
            found += _unknown_keys(element, parsed, ptr, f"{kind} element")
        found += self._check_action_id(element, ptr, action_ids)
        if kind == "button" and element.get("text") is not None:
            found += _check_text(element["text"], f"{ptr}/text", MAX_BUTTON_TEXT_CHARS, "button text", True)
        if "options" in element:
            found += self._options(element, ptr, kind)
        if not found:
            found += _sdk_violations(parsed, ptr)
        return found

    def _check_action_id(self, element: JsonDict, ptr: str, seen: set[str]) -> list[Violation]:
        if "action_id" not in element:
            return []
        action_id = element["action_id"]
        if not isinstance(action_id, str) or not action_id:
            return [Violation(f"{ptr}/action_id", "action_id must be a non-empty string")]
        if len(action_id) > MAX_ACTION_ID_CHARS:
            return [
                Violation(
                    f"{ptr}/action_id",
                    f"action_id is {len(action_id)} characters; at most {MAX_ACTION_ID_CHARS}",
                )
            ]
        if action_id in seen:
            return [Violation(f"{ptr}/action_id", f"duplicate action_id '{action_id}' in block")]
        seen.add(action_id)
        return []

    def _options(self, element: JsonDict, ptr: str, kind: str) -> list[Violation]:
        options = element["options"]
        if not isinstance(options, list) or not options:
            return [Violation(f"{ptr}/options", f"{kind} element needs at least 1 option")]
        found: list[Violation] = []
        limit = {"checkboxes": MAX_CHECKBOX_OPTIONS, "radio_buttons": MAX_RADIO_OPTIONS}.get(kind)
        if limit is not None and len(options) > limit:
            found.append(
                Violation(
                    f"{ptr}/options",
                    f"{kind} element has {len(options)} options; at most {limit} allowed",
                )
            )
        plain_only = kind not in ("checkboxes", "radio_buttons")
        for i, option in enumerate(options):
            found += _check_option(option, f"{ptr}/options/{i}", plain_only)

        initial = element.get("initial_options")
        if isinstance(initial, list):
            for i, chosen in enumerate(initial):
                if chosen not in options:
                    found.append(
                        Violation(
                            f"{ptr}/initial_options/{i}",
                            "initial option does not exactly match any of the options",
                        )
                    )
        return found


def _check_option(option: object, ptr: str, plain_only: bool) -> list[Violation]:
    if not isinstance(option, dict):
        return [Violation(ptr, "option must be an object")]
    found: list[Violation] = []
    for key in sorted(set(option) - _OPTION_KEYS):
        found.append(Violation(f"{ptr}/{key}", f"unknown property '{key}' on an option"))
    if option.get("text") is None:
        found.append(Violation(f"{ptr}/text", "option needs text"))
    else:
        found += _check_text(option["text"], f"{ptr}/text", MAX_OPTION_TEXT_CHARS, "option text")
        text = option["text"]
        if plain_only and isinstance(text, dict) and text.get("type") != "plain_text":
            found.append(Violation(f"{ptr}/text/type", "option text must be plain_text here"))
    if option.get("description") is not None:
        found += _check_text(
            option["description"],
            f"{ptr}/description",
            MAX_OPTION_DESCRIPTION_CHARS,
            "option description",
        )
    value = option.get("value")
    if not isinstance(value, str) or not value:
        found.append(Violation(f"{ptr}/value", "option value must be a non-empty string"))
    elif len(value) > MAX_OPTION_VALUE_CHARS:
        found.append(
            Violation(
                f"{ptr}/value",
                f"option value is {len(value)} characters; at most {MAX_OPTION_VALUE_CHARS}",
            )
        )
    if not found:
        parsed = _sdk_parse(lambda d: Option(**d), option)
        if isinstance(parsed, Option):
            found += _sdk_violations(parsed, ptr)
        else:
            found.append(Violation(ptr, "option is malformed"))
    return found


# -- slack_sdk glue -------------------------------------------------------------------------


def _sdk_parse(parse: Callable[[JsonDict], object], raw: JsonDict) -> object:
    """Runs a slack_sdk parser on a copy (the parsers mutate and raise plain Python errors)."""
    try:
        return parse(copy.deepcopy(raw))
    except _SDK_ERRORS as error:
        return error


def _sdk_violations(parsed: object, ptr: str) -> list[Violation]:
    if isinstance(parsed, Exception):
        return [Violation(ptr, f"malformed: {parsed}")]
    if not isinstance(parsed, JsonObject):
        return []
    try:
        parsed.validate_json()
    except _SDK_ERRORS as error:
        return [Violation(ptr, str(error))]
    return []


def _unknown_keys(raw: JsonDict, parsed: JsonObject, ptr: str, what: str) -> list[Violation]:
    known = set(parsed.attributes) | {"type"}
    return [
        Violation(f"{ptr}/{key}", f"unknown property '{key}' on a {what}") for key in sorted(set(raw) - known)
    ]
