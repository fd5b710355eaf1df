"""Identifiers that cross the Slack boundary: action ids, callback ids and typed values."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ActionId(StrEnum):
    TICK = "checklist_tick"  # a prefix: each item's element is `checklist_tick.<item id>`
    OPEN_UPDATE = "open_update_modal"


def tick_action_id(item: str) -> str:
    """Unique per item, so every element of a checklist message has its own action id."""
    return f"{ActionId.TICK.value}.{item}"


TICK_ACTION_PATTERN = re.compile(rf"^{ActionId.TICK.value}\.")


class ItemRef(BaseModel):
    """The block_id of a checklist item: which incident, which item, and the render revision.

    The revision changes the block_id on every re-render, so Slack clients drop any local
    checkbox state and show the `initial_options` the bot sent.
    """

    model_config = ConfigDict(frozen=True)

    i: str  # incident id
    u: str = ""  # the incident's unique id
    k: str  # item id
    v: int = 0  # message revision

    def encode(self) -> str:
        return self.model_dump_json()

    @classmethod
    def decode(cls, block_id: str) -> ItemRef:
        return cls.model_validate_json(block_id)


class CallbackId(StrEnum):
    UPDATE = "status_update"


class UpdateField(StrEnum):
    """Block ids of the update modal's inputs (each input's action id is `value`)."""

    STATUS = "status"
    IMPACT = "impact"
    CURRENT_STATE = "current_state"
    NEXT_UPDATE = "next_update"


INPUT_ACTION = "value"


class IncidentRef(BaseModel):
    """The value of a "Post update" button and the private_metadata of the update modal."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    uid: str = ""  # the incident's unique id: a reference to a gone or renumbered incident is refused

    def encode(self) -> str:
        return self.model_dump_json()

    @classmethod
    def decode(cls, raw: str) -> IncidentRef:
        return cls.model_validate_json(raw)
