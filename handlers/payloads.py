"""Typed views of the Slack payloads the listeners handle: parsed once, at the boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bot.ids import ItemRef


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SlashCommand(_Payload):
    user_id: str
    channel_id: str
    text: str = ""
    trigger_id: str = ""
    response_url: str = ""


class _Id(_Payload):
    id: str


class _Container(_Payload):
    type: str
    message_ts: str | None = None
    channel_id: str | None = None


class _SelectedOption(_Payload):
    value: str


class _CheckboxAction(_Payload):
    action_id: str
    block_id: str
    selected_options: list[_SelectedOption] = Field(default_factory=list)


class CheckboxClick(_Payload):
    """A click on one checklist item's checkboxes element in a message."""

    user: _Id
    channel: _Id
    container: _Container
    actions: list[_CheckboxAction] = Field(min_length=1)

    @property
    def action(self) -> _CheckboxAction:
        return self.actions[0]

    @property
    def message_ts(self) -> str:
        return self.container.message_ts or ""

    @property
    def item(self) -> ItemRef:
        return ItemRef.decode(self.action.block_id)

    @property
    def checked(self) -> bool:
        """Slack sends the element's whole selection; each element holds a single item."""
        ref = self.item
        return any(o.value == ref.k for o in self.action.selected_options)
