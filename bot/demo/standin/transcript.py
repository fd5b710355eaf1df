"""Render a channel as a person reads it, in plain text.

When a message has blocks, Slack shows the blocks (the `text` is only the notification
fallback), so the blocks are what gets rendered. Checkboxes show as `[x] text — description`
when the option is in `initial_options`, `[ ] text` otherwise; buttons as `[ Label ]`; a shared
file as `[file: Title]`.

Texts are shown as sent, mentions by name and entities decoded, unless a `shown` hook draws
them (the demo's terminal renderer, which turns mrkdwn into styles and emoji).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from .workspace import EphemeralMessage, JsonDict, Message

if TYPE_CHECKING:
    from .server import SlackStandIn

INDENT = "    "

TextKind = Literal["mrkdwn", "plain_text"]
# Draws one text as a person sees it: a message's `text` and `mrkdwn` objects are "mrkdwn".
Shown = Callable[[str, TextKind], str]


def render_channel(
    standin: SlackStandIn, channel_id: str, *, viewer: str | None = None, shown: Shown | None = None
) -> str:
    """The channel's messages in order, thread replies indented under their parent.

    With `viewer`, that user's ephemeral messages are shown too, marked as only theirs. With
    `shown`, every text is drawn by it; without, mentions show by name, markup as sent.
    """
    names = {uid: user.name for uid, user in standin.workspace.users.items()}
    messages = standin.messages(channel_id)
    ephemerals = [e for e in standin.ephemerals(viewer) if e.channel == channel_id] if viewer else []
    top_level = [m for m in messages if m.thread_ts is None or m.thread_ts == m.ts]
    entries: list[Message | EphemeralMessage] = sorted([*top_level, *ephemerals], key=lambda m: _ts_key(m.ts))
    lines: list[str] = []
    draw = _drawn_by(shown) if shown is not None else _as_sent
    for entry in entries:
        if isinstance(entry, EphemeralMessage):
            lines += render_message_lines("only visible to you", *draw(entry.text, entry.blocks), indent="")
            continue
        author = names.get(entry.user, entry.user)
        lines += render_message_lines(author, *draw(entry.text, entry.blocks), files=entry.files)
        replies = [m for m in messages if m.thread_ts == entry.ts and m.ts != entry.ts]
        for reply in replies:
            author = names.get(reply.user, reply.user)
            lines += render_message_lines(
                author, *draw(reply.text, reply.blocks), indent=INDENT, files=reply.files
            )
    if shown is not None:
        return "\n".join(lines)
    channels = {cid: channel.name for cid, channel in standin.workspace.channels.items()}
    return _as_read(("\n".join(lines)), names, channels)


Drawn = Callable[[str, list[JsonDict]], tuple[str, list[JsonDict]]]


def _as_sent(text: str, blocks: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    return text, blocks


def _drawn_by(shown: Shown) -> Drawn:
    """A message's text and blocks with every text object's `text` replaced by `shown` of it."""

    def draw(text: str, blocks: list[JsonDict]) -> tuple[str, list[JsonDict]]:
        return shown(text, "mrkdwn"), [_draw_texts(block, shown) for block in blocks]

    return draw


def _draw_texts(node: JsonDict, shown: Shown) -> JsonDict:
    drawn = copy.deepcopy(node)
    stack: list[object] = [drawn]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        elif isinstance(item, dict):
            kind = item.get("type")
            if kind in ("mrkdwn", "plain_text") and isinstance(item.get("text"), str):
                item["text"] = shown(item["text"], "mrkdwn" if kind == "mrkdwn" else "plain_text")
            stack += item.values()
    return drawn


_MENTION = re.compile(r"<([@#])([A-Z0-9]+)(?:\|([^>]*))?>")


def _as_read(text: str, users: dict[str, str], channels: dict[str, str]) -> str:
    """Mentions as Slack displays them (`@alice`, `#general`), then entities unescaped."""

    def name(match: re.Match[str]) -> str:
        sigil, ident, label = match.groups()
        known = users if sigil == "@" else channels
        return f"{sigil}{label or known.get(ident, ident)}"

    shown = _MENTION.sub(name, text)
    return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_message_lines(
    author: str,
    text: str,
    blocks: list[JsonDict],
    *,
    indent: str = "",
    files: list[JsonDict] | None = None,
) -> list[str]:
    body = render_blocks(blocks) if blocks else text.splitlines()
    body += [f"[file: {f.get('title') or f.get('name')}]" for f in files or []]
    body = body or [""]
    return [f"{indent}{author}:", *(f"{indent}{INDENT}{line}" for line in body)]


def render_blocks(blocks: list[JsonDict]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        lines += _render_block(block)
    return lines


def _render_block(block: JsonDict) -> list[str]:
    kind = block.get("type")
    if kind in ("header", "section"):
        lines = _text_lines(block.get("text"))
        for field in block.get("fields") or []:
            lines += _text_lines(field)
        if isinstance(block.get("accessory"), dict):
            lines += _render_element(block["accessory"])
        return lines
    if kind == "context":
        parts = [_element_text(e) for e in block.get("elements") or [] if isinstance(e, dict)]
        return [" · ".join(p for p in parts if p)]
    if kind == "actions":
        # Buttons sit side by side; other elements take their own lines, in order.
        lines = []
        buttons: list[str] = []
        for element in block.get("elements") or []:
            if not isinstance(element, dict):
                continue
            if element.get("type") == "button":
                buttons.append(_button(element))
                continue
            if buttons:
                lines.append(" ".join(buttons))
                buttons = []
            lines += _render_element(element)
        if buttons:
            lines.append(" ".join(buttons))
        return lines
    if kind == "divider":
        return ["---"]
    if kind == "input":
        return _text_lines(block.get("label"))
    if kind == "rich_text":
        return _rich_text(block).splitlines()
    return []


def _render_element(element: JsonDict) -> list[str]:
    kind = element.get("type")
    if kind == "button":
        return [_button(element)]
    if kind in ("checkboxes", "radio_buttons"):
        chosen = {o.get("value") for o in element.get("initial_options") or []}
        if isinstance(element.get("initial_option"), dict):
            chosen.add(element["initial_option"].get("value"))
        return [_option_line(o, o.get("value") in chosen) for o in element.get("options") or []]
    return []


def _option_line(option: JsonDict, checked: bool) -> str:
    line = f"[{'x' if checked else ' '}] {_plain(option.get('text'))}"
    description = _plain(option.get("description"))
    return f"{line} — {description}" if description else line


def _button(element: JsonDict) -> str:
    return f"[ {_plain(element.get('text'))} ]"


def _element_text(element: JsonDict) -> str:
    if element.get("type") == "image":
        return str(element.get("alt_text", ""))
    return _plain(element)


def _text_lines(obj: object) -> list[str]:
    text = _plain(obj)
    return text.splitlines() if text else []


def _plain(obj: object) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return str(obj) if obj is not None else ""


def _rich_text(node: JsonDict) -> str:
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "link":
        return str(node.get("text") or node.get("url", ""))
    children = node.get("elements") or []
    return "".join(_rich_text(c) for c in children if isinstance(c, dict))


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)
