"""The incident timeline: the trace view for Slack, the postmortem and the demo, and the trace view
split into Slack messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks import MAX_BLOCKS_PER_MESSAGE, MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.models import EventKind, TimelineEvent
from bot.text import escape_mrkdwn, truncate, user_text

BOT_NAME = "incident-bot"  # who an event without a person (`by` None) shows as
COLUMN = " │ "
EVIDENCE_MAX_CHARS = 200  # of the message added as evidence, before any escaping
# Slack allows 50 blocks a message; keep a margin.
TIMELINE_MAX_BLOCKS = MAX_BLOCKS_PER_MESSAGE - 10
# Slack documents no limit on the text of all blocks together, but refuses messages above
# about 13,000 characters with `msg_blocks_too_long` (slackapi/bolt-js#2509).
TIMELINE_MAX_CHARS = 12_000
_FIXED_BLOCKS = 2  # the heading, and the context line of the first part
_FIXED_CHARS = 300  # room kept for their text
_PERMALINK = re.compile(r"https://[^\s<>|()]+")


def trace_lines(
    events: list[TimelineEvent],
    item_texts: dict[str, str],
    who: Callable[[str | None], str],
    *,
    plain: bool = False,
) -> list[str]:
    """The seed's trace view, one event a line: `14:23:01 │ @alice │ ticked "Rollback to previous version"`.

    Times are UTC, `HH:MM:SS`, or `MM-DD HH:MM:SS` on every line when the events span several
    days, so the first column keeps one width. People are shown by `who(user id)`; with
    `plain=True` (a monospaced code block) they are padded to the widest so the columns line
    up, while Slack draws a mention as a display name of its own width, so padding there would
    only add gaps. An event by the bot itself (`by` None) shows as `incident-bot`: `who` is
    called only with user ids.

    For Slack (`plain=False`), every line is safe mrkdwn, provided `who` returns safe mrkdwn
    (`fmt.user` does). Events store their text either as typed (the declared title, update
    fields) or already made safe with `user_text` (notes, evidence, hypotheses, follow-ups);
    every text goes through `user_text` here, which escapes the first kind and leaves the
    second unchanged (it is idempotent), so nothing pings and nothing is escaped twice.
    Checklist item texts (from the playbook) are escaped. With `plain=True` (a Markdown code
    block), texts are plain instead: entities decoded, user mentions shown by `who`.

    Ticks and unticks show the item's text (its id when `item_texts` lacks it); evidence shows
    the start of the message, its author and its link; every other event shows its text. Line
    breaks become spaces: one event, one line.
    """
    people = [who(event.by) if event.by else BOT_NAME for event in events]
    width = max((len(p) for p in people), default=0) if plain else 0
    days = {_utc(event.at).date() for event in events}
    clock = "%m-%d %H:%M:%S" if len(days) > 1 else "%H:%M:%S"

    def text(stored: str) -> str:
        return fmt.one_line(fmt.plain(stored, who) if plain else user_text(stored))

    lines = []
    for event, person in zip(events, people, strict=True):
        what = text(event.text)
        if event.kind in (EventKind.TICKED, EventKind.UNTICKED) and event.item:
            item = item_texts.get(event.item, event.item)
            what = f'{event.kind.value} "{fmt.one_line(item if plain else escape_mrkdwn(item))}"'
        elif event.kind is EventKind.EVIDENCE:
            what = _evidence(event, who, plain)
        lines.append(f"{_utc(event.at).strftime(clock)}{COLUMN}{person:<{width}}{COLUMN}{what}")
    return lines


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at


def _evidence(event: TimelineEvent, who: Callable[[str | None], str], plain: bool) -> str:
    """`added evidence: "ERROR: connection refused…" (from @bob, message link)`."""
    if plain:
        quoted = truncate(fmt.one_line(fmt.plain(event.text, who)), EVIDENCE_MAX_CHARS)
    else:
        # Cut the plain text, then escape it: a cut never breaks an entity or a mention.
        raw = fmt.plain(event.text, fmt.kept_mention)
        quoted = fmt.mrkdwn(truncate(fmt.one_line(raw), EVIDENCE_MAX_CHARS))
    source = []
    if event.author:
        source.append(f"from {who(event.author)}")
    link = event.link if event.link and _PERMALINK.fullmatch(event.link) else None
    if link is not None:
        source.append(link if plain else f"<{link}|message>")
    return f'added evidence: "{quoted}"' + (f" ({', '.join(source)})" if source else "")


def timeline_messages(lines: list[str], title: str) -> list[Rendered]:
    """`lines` (safe mrkdwn, one event each) as Slack messages, in order and within Slack's limits.

    Each part starts with a heading, `title` numbered when there are several parts
    (`Timeline of INC-7 (2/3)`), then sections of newline-joined lines: plain lines rather than
    a code block, since mentions do not render inside code. A section holds at most 3000
    characters, a message at most `TIMELINE_MAX_BLOCKS` blocks and `TIMELINE_MAX_CHARS`
    characters. A line is never split across sections; one longer than a section is cut with
    `…`. The notification `text` is a short summary (`events 41 to 80 of 120`), far below Slack's
    40,000 characters.
    """
    total = len(lines)
    parts = _pack([fmt.clip(fmt.one_line(line), MAX_SECTION_TEXT) for line in lines])
    rendered = []
    first = 1
    for number, sections in enumerate(parts, start=1):
        heading = title if len(parts) == 1 else f"{title} ({number}/{len(parts)})"
        blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=truncate(heading, 150)))]
        if number == 1:
            count = "1 event" if total == 1 else f"{total} events"
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"{count} · times in UTC")]))
        blocks += [SectionBlock(text=MarkdownTextObject(text="\n".join(s))) for s in sections]
        shown = sum(len(s) for s in sections)
        if total == 0:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="No events yet.")))
            summary = f"{escape_mrkdwn(heading)}: no events yet"
        else:
            summary = f"{escape_mrkdwn(heading)}: events {first} to {first + shown - 1} of {total}"
        rendered.append(Rendered(text=truncate(summary, 300), blocks=blocks))
        first += shown
    return rendered


def _pack(lines: list[str]) -> list[list[list[str]]]:
    """Lines into messages of sections: each section within 3000 characters, each message
    within the block and character budgets. Lines stay whole and in order."""
    messages: list[list[list[str]]] = [[]]
    used = _FIXED_CHARS  # characters of the current message
    section_chars = 0  # of the current section, newlines included
    for line in lines:
        sections = messages[-1]
        fits_section = section_chars + 1 + len(line) <= MAX_SECTION_TEXT
        if sections and fits_section and used + 1 + len(line) <= TIMELINE_MAX_CHARS:
            sections[-1].append(line)
            section_chars += 1 + len(line)
            used += 1 + len(line)
            continue
        if len(sections) + _FIXED_BLOCKS >= TIMELINE_MAX_BLOCKS or used + len(line) > TIMELINE_MAX_CHARS:
            messages.append([])
            sections = messages[-1]
            used = _FIXED_CHARS
        sections.append([line])
        section_chars = len(line)
        used += len(line)
    return messages
