"""The incident timeline as plain lines, for people (the demo, later the postmortem)."""

from __future__ import annotations

from bot.models import EventKind, TimelineEvent


def timeline_lines(events: list[TimelineEvent], item_texts: dict[str, str]) -> list[str]:
    """`14:02:05 UTC  U0ALICE  ticked "How many users are affected?"` — one line per event."""
    lines = []
    for event in events:
        who = event.by or "incident-bot"
        what = event.text
        if event.kind in (EventKind.TICKED, EventKind.UNTICKED) and event.item:
            what = f'{event.kind.value} "{item_texts.get(event.item, event.item)}"'
        lines.append(f"{event.at.strftime('%H:%M:%S UTC')}  {who:<12} {what}")
    return lines
