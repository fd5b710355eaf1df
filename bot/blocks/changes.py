"""Recent changes: the deploys, config changes and flags around an incident, for its channel at
declaration and for `/incident changes`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks import MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.changes import RECENT_WINDOW, ChangeEvent
from bot.text import escape_mrkdwn, truncate

CHANGES_MAX_LINES = 30  # then "…and N more."
DESCRIPTION_SHOWN_CHARS = 150
VERSION_SHOWN_CHARS = 60
_USER_ID = re.compile(r"[UW](?=[A-Z0-9]*[0-9])[A-Z0-9]{6,}")
KIND_EMOJI = {"deploy": ":rocket:", "config": ":gear:", "flag": ":triangular_flag_on_post:"}


def recent_changes_message(
    changes: list[ChangeEvent],
    *,
    before: datetime,
    window: timedelta = RECENT_WINDOW,
    service: str | None = None,
    limit: int = CHANGES_MAX_LINES,
) -> Rendered:
    """The message listing `changes`, in the order given (`bot.changes.recent_changes` puts
    `service`'s first, newest first), or a line saying none were recorded in the window.

    Times are UTC, with the date when the list spans several days. Past `limit` lines the rest
    is counted, not shown."""
    since = f"{fmt.elapsed(window)} before {fmt.stamp(before)}"
    heading = f"*Recent changes* ({since}" + (f", {escape_mrkdwn(service)} first)" if service else ")")
    if not changes:
        line = f"No changes were recorded in the {fmt.elapsed(window)} before {fmt.stamp(before)}."
        blocks: list[Block] = [
            SectionBlock(text=MarkdownTextObject(text=f"*Recent changes*\n{line}")),
            ContextBlock(elements=[MarkdownTextObject(text=_how_to_report())]),
        ]
        return Rendered(
            text=f"Recent changes: none in the {fmt.elapsed(window)} before {fmt.clock(before)}",
            blocks=blocks,
        )
    dated = len({c.at.date() for c in changes}) > 1
    lines = [change_line(c, dated=dated) for c in changes[:limit]]
    blocks = [SectionBlock(text=MarkdownTextObject(text=heading))]
    blocks += [SectionBlock(text=MarkdownTextObject(text=text)) for text in _sections(lines)]
    if len(changes) > limit:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=more_changes(len(changes) - limit))]))
    count = "1 change" if len(changes) == 1 else f"{len(changes)} changes"
    return Rendered(
        text=f"Recent changes: {count} in the {fmt.elapsed(window)} before {fmt.clock(before)}", blocks=blocks
    )


def more_changes(more: int) -> str:
    """`…and 12 more.`: the changes past those listed (not always the oldest: the alert's
    service comes first), in the message and in the postmortem alike."""
    return f"…and {more} more."


def change_line(change: ChangeEvent, *, dated: bool = False) -> str:
    """`• 14:02 UTC · :rocket: *checkout* deploy `v2.3.1` by ci: Bump the pool size (<url|link>)`,
    every text from the event escaped."""
    when = change.at.strftime("%m-%d %H:%M UTC" if dated else "%H:%M UTC")
    parts = [
        f"• {when} · {KIND_EMOJI[change.kind.value]} *{escape_mrkdwn(change.service)}* {change.kind.value}"
    ]
    if change.version:
        # In a code span, where a backtick would end it early.
        version = escape_mrkdwn(truncate(change.version, VERSION_SHOWN_CHARS)).replace("`", "'")
        parts.append(f"`{version}`")
    if change.by:
        parts.append(f"by {_who(change.by)}")
    line = " ".join(parts)
    if change.description:
        line += f": {escape_mrkdwn(truncate(fmt.one_line(change.description), DESCRIPTION_SHOWN_CHARS))}"
    if change.url:
        # The model admits only http(s) links without blanks, `<`, `>` or `|`; `&` is escaped.
        line += f" (<{escape_mrkdwn(change.url)}|link>)"
    return line


def _who(by: str) -> str:
    """A Slack user id (`U0ALICE1`, `<@U0ALICE1>`) as a mention, anything else (`ci`, `WEBHOOK`)
    as escaped text: an id has a digit, so a shouted name is not taken for one."""
    user_id = by.removeprefix("<@").removesuffix(">")
    if _USER_ID.fullmatch(user_id):
        return fmt.user(user_id)
    return escape_mrkdwn(by)


def _sections(lines: list[str]) -> list[str]:
    """Newline-joined lines, each section within Slack's 3000 characters, no line split."""
    sections: list[list[str]] = [[]]
    size = 0
    for line in (fmt.clip(line, MAX_SECTION_TEXT) for line in lines):
        if sections[-1] and size + 1 + len(line) > MAX_SECTION_TEXT:
            sections.append([])
            size = 0
        size += len(line) + (1 if sections[-1] else 0)
        sections[-1].append(line)
    return ["\n".join(section) for section in sections]


def _how_to_report() -> str:
    return "CI pipelines report changes with `POST /events/change`."
