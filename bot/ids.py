"""Identifiers that cross the Slack boundary: action ids, callback ids and typed values."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.models import HypothesisState, Severity


class ActionId(StrEnum):
    TICK = "checklist_tick"  # a prefix: each item's element is `checklist_tick.<item id>`
    OPEN_UPDATE = "open_update_modal"
    HYPOTHESIS = "hypothesis_state"  # a prefix: each button is `hypothesis_state.<number>.<state>`
    ALERT_DECLARE = "alert_declare"  # Declare SEVn on a triage message
    ALERT_DISMISS = "alert_dismiss"  # Dismiss on a triage message


def tick_action_id(item: str) -> str:
    """Unique per item, so every element of a checklist message has its own action id."""
    return f"{ActionId.TICK.value}.{item}"


TICK_ACTION_PATTERN = re.compile(rf"^{ActionId.TICK.value}\.")


def hypothesis_action_id(number: int, state: HypothesisState) -> str:
    """Unique per button of the Hypotheses message; what the click means is in its value."""
    return f"{ActionId.HYPOTHESIS.value}.{number}.{state.name.lower()}"


HYPOTHESIS_ACTION_PATTERN = re.compile(rf"^{ActionId.HYPOTHESIS.value}\.")


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
    ADD_TO_TIMELINE = "add_to_timeline"  # the message shortcut, as named in manifest.yml


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


class HypothesisRef(BaseModel):
    """The value of a hypothesis button: move hypothesis `number` of the incident to `state`.

    Short wire names (`{"i":"INC-7","u":"…","n":2,"s":"Confirmed"}`) keep it far below Slack's
    2000 characters. A button never moves a hypothesis back to Open, so no value can either.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    incident_id: str = Field(alias="i")
    uid: str = Field(default="", alias="u")  # the incident's unique id
    number: int = Field(alias="n", ge=1)
    state: HypothesisState = Field(alias="s")

    @field_validator("state")
    @classmethod
    def _not_back_to_open(cls, state: HypothesisState) -> HypothesisState:
        if state is HypothesisState.OPEN:
            raise ValueError("a button never moves a hypothesis back to Open")
        return state

    def encode(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def decode(cls, raw: str) -> HypothesisRef:
        return cls.model_validate_json(raw)


class AlertRef(BaseModel):
    """The value of a triage message's Declare and Dismiss buttons: alert group `g` as recorded
    under `u` (a record made afresh, after the old one expired, refuses it), in episode `e`;
    `s` is the severity the Declare button offered, which is what a click declares."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    group_id: str = Field(alias="g", min_length=1, max_length=64)
    uid: str = Field(alias="u", min_length=1, max_length=64)
    episode: int = Field(alias="e", ge=1)
    severity: Severity = Field(alias="s")

    def encode(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def decode(cls, raw: str) -> AlertRef:
        return cls.model_validate_json(raw)
