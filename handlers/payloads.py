"""Typed views of the Slack payloads the listeners handle: parsed once, at the boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bot.ids import INPUT_ACTION, AlertRef, HypothesisRef, IncidentRef, ItemRef, UpdateField


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


class _ButtonAction(_Payload):
    action_id: str
    value: str


class ButtonClick(_Payload):
    user: _Id
    trigger_id: str
    actions: list[_ButtonAction] = Field(min_length=1)
    channel: _Id | None = None  # where the message with the button is (absent in a modal)

    @property
    def incident(self) -> IncidentRef:
        return IncidentRef.decode(self.actions[0].value)

    @property
    def hypothesis(self) -> HypothesisRef:
        return HypothesisRef.decode(self.actions[0].value)

    @property
    def alert(self) -> AlertRef:
        return AlertRef.decode(self.actions[0].value)


class _InputValue(_Payload):
    type: str
    value: str | None = None
    selected_option: _SelectedOption | None = None

    def text(self) -> str | None:
        if self.selected_option is not None:
            return self.selected_option.value
        return self.value


class _ViewState(_Payload):
    values: dict[str, dict[str, _InputValue]] = Field(default_factory=dict)


class _View(_Payload):
    id: str
    hash: str = ""
    callback_id: str
    private_metadata: str
    state: _ViewState


class ViewSubmission(_Payload):
    user: _Id
    view: _View

    @property
    def incident(self) -> IncidentRef:
        return IncidentRef.decode(self.view.private_metadata)

    def field(self, name: UpdateField) -> str | None:
        value = self.view.state.values.get(name.value, {}).get(INPUT_ACTION)
        return value.text() if value is not None else None


class _ShortcutMessage(_Payload):
    ts: str
    text: str = ""
    user: str | None = None  # None for a bot's message (it has bot_id instead)
    bot_id: str | None = None


class MessageShortcut(_Payload):
    """A message shortcut used on a message (`type: message_action`)."""

    callback_id: str
    user: _Id
    channel: _Id
    message_ts: str
    message: _ShortcutMessage
