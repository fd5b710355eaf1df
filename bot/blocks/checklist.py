"""Checklist messages: one checkboxes element per item, so every click names exactly one item."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    CheckboxesElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks import MAX_BLOCKS_PER_MESSAGE, Rendered
from bot.blocks import format as fmt
from bot.ids import ItemRef, tick_action_id
from bot.models import PHASE_GUIDE, ChecklistItem, ChecklistSection, MessageState, Phase, Tick
from bot.text import escape_mrkdwn

# Blocks every checklist message spends before its items: header and context.
_FIXED_BLOCKS = 2


def phase_heading(phase: Phase) -> str:
    name, question = PHASE_GUIDE[phase]
    return f"{name}: {question}"


def split_sections(
    sections: list[ChecklistSection], budget: int = MAX_BLOCKS_PER_MESSAGE
) -> list[tuple[ChecklistSection, ...]]:
    """Group sections into messages of at most `budget` blocks, splitting a long section."""
    per_message = budget - _FIXED_BLOCKS
    parts: list[list[ChecklistSection]] = [[]]
    used = 0
    for section in sections:
        items = list(section.items)
        title = section.title
        while items:
            room = per_message - used - 1  # one block for the section title
            if room < 1:
                parts.append([])
                used = 0
                continue
            chunk, items = items[:room], items[room:]
            parts[-1].append(ChecklistSection(title=title, items=tuple(chunk)))
            used += 1 + len(chunk)
            title = f"{section.title} (continued)"
    return [tuple(p) for p in parts if p]


def _option(item: ChecklistItem, tick: Tick | None) -> Option:
    description = None
    if tick is not None:
        description = MarkdownTextObject(text=f"{fmt.user(tick.by)} · {fmt.clock(tick.at)}")
    return Option(
        value=item.id,
        text=MarkdownTextObject(text=escape_mrkdwn(item.text)),
        description=description,
    )


def item_block(
    incident_id: str, uid: str, item: ChecklistItem, tick: Tick | None, rev: int
) -> ActionsBlock:
    option = _option(item, tick)
    return ActionsBlock(
        block_id=ItemRef(i=incident_id, u=uid, k=item.id, v=rev).encode(),
        elements=[
            CheckboxesElement(
                action_id=tick_action_id(item.id),
                options=[option],
                initial_options=[option] if tick is not None else None,
            )
        ],
    )


def checklist_message(state: MessageState) -> Rendered:
    message = state.message
    heading = phase_heading(message.phase)
    if message.part > 1:
        heading += f" (part {message.part})"
    total = len(message.item_ids())
    done = sum(1 for i in message.item_ids() if i in state.ticks)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=heading[:150])),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{state.incident_id} · {done}/{total} done · ticks are shared with the channel"
                )
            ]
        ),
    ]
    for section in message.sections:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*{escape_mrkdwn(section.title)}*")))
        for item in section.items:
            blocks.append(item_block(
                    state.incident_id, message.incident_uid, item, state.ticks.get(item.id), state.rev
                ))
    return Rendered(text=f"{state.incident_id} checklist: {heading} ({done}/{total} done)", blocks=blocks)
