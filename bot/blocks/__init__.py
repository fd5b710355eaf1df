"""Pure renderers: models in, Block Kit out. No I/O, no settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_sdk.models.blocks import Block

# Slack's limits that slack_sdk does not check for us.
MAX_BLOCKS_PER_MESSAGE = 50
MAX_SECTION_TEXT = 3000


@dataclass(frozen=True)
class Rendered:
    """A message ready to send: `text` is the notification fallback, `blocks` the body."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def block_dicts(self) -> list[dict[str, object]]:
        return [b.to_dict() for b in self.blocks]
