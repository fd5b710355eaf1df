"""The one live Hypotheses message of an incident channel: every hypothesis, with buttons to
move the open ones along (Testing, Confirmed, Ruled out)."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks import MAX_BLOCKS_PER_MESSAGE, MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.ids import HypothesisRef, hypothesis_action_id
from bot.models import Hypothesis, HypothesisState, Incident
from bot.text import truncate, user_text

STATE_EMOJI = {
    HypothesisState.OPEN: ":grey_question:",
    HypothesisState.TESTING: ":test_tube:",
    HypothesisState.CONFIRMED: ":white_check_mark:",
    HypothesisState.RULED_OUT: ":x:",
}
# How a change to each state is told: `ruled out by @b`.
CHANGED_VERB = {
    HypothesisState.OPEN: "reopened",
    HypothesisState.TESTING: "set to Testing",
    HypothesisState.CONFIRMED: "confirmed",
    HypothesisState.RULED_OUT: "ruled out",
}
BUTTON_STATES = (HypothesisState.TESTING, HypothesisState.CONFIRMED, HypothesisState.RULED_OUT)
HYPOTHESIS_MAX_CHARS = 2500  # of an open hypothesis's text, so its section stays within 3000
SETTLED_MAX_CHARS = 300  # settled hypotheses are listed compactly
SETTLED_MAX_BLOCKS = 6
UNBUTTONED_MAX_CHARS = 100  # open hypotheses past the block budget, listed without buttons
UNBUTTONED_MAX_BLOCKS = 2
_FIXED_BLOCKS = 2  # header and context
_PROPOSE = "Propose one with `/incident hypothesis &lt;text&gt;`"


def hypotheses_message(incident: Incident) -> Rendered:
    """Every hypothesis of the incident, in number order, open ones first.

    Each open one (Open or Testing) gets a section (state, text, who proposed it, who last
    changed it) and an actions block with a button for each state it can move to: `Testing`,
    `Confirmed`, `Ruled out`. A Testing hypothesis has no `Testing` button, since clicking it
    would change nothing. Confirmed and Ruled out ask for confirmation: a settled hypothesis
    stays settled. Settled ones follow, one line each, in as few sections as fit.

    Within Slack's 50 blocks: open hypotheses take two blocks each, so when there are more than
    fit, the last ones are listed without buttons (they get theirs as others settle); settled
    ones take at most `SETTLED_MAX_BLOCKS` sections, then `…and N more`.

    Hypothesis texts are stored safe (`user_text`); they go through `user_text` again, which
    leaves safe text unchanged and escapes any that is not.
    """
    hypotheses = sorted(incident.hypotheses, key=lambda h: h.number)
    open_ones = [h for h in hypotheses if not h.state.settled]
    settled = [h for h in hypotheses if h.state.settled]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(f"Hypotheses · {incident.id}", 150))),
        ContextBlock(elements=[MarkdownTextObject(text=_counts(hypotheses) + f" · {_PROPOSE}.")]),
    ]
    if not hypotheses:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"No hypotheses yet. What could cause this, based on the evidence? {_PROPOSE}."
                )
            )
        )
        return Rendered(text=f"Hypotheses of {incident.id}: none yet", blocks=blocks)

    settled_blocks = _listed(
        "*Settled*", [_line(h, SETTLED_MAX_CHARS) for h in settled], SETTLED_MAX_BLOCKS, "settled"
    )
    room = MAX_BLOCKS_PER_MESSAGE - _FIXED_BLOCKS - len(settled_blocks)
    fit = 2 * len(open_ones) <= room
    with_buttons = open_ones if fit else open_ones[: (room - UNBUTTONED_MAX_BLOCKS) // 2]
    for hypothesis in with_buttons:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_open_text(hypothesis))))
        blocks.append(_buttons(incident, hypothesis))
    rest = open_ones[len(with_buttons) :]
    if rest:
        heading = (
            f"*Also open* (buttons show for {len(with_buttons)} open hypotheses at a time; "
            "they appear here as others settle)"
        )
        lines = [_line(h, UNBUTTONED_MAX_CHARS) for h in rest]
        blocks += _listed(heading, lines, UNBUTTONED_MAX_BLOCKS, "open")
    blocks += settled_blocks
    return Rendered(text=f"Hypotheses of {incident.id}: {_counts(hypotheses)}", blocks=blocks)


def _counts(hypotheses: list[Hypothesis]) -> str:
    """`2 open · 1 confirmed · 1 ruled out`."""
    if not hypotheses:
        return "No hypotheses yet"
    open_count = sum(1 for h in hypotheses if not h.state.settled)
    parts = [f"{open_count} open"]
    for state in (HypothesisState.CONFIRMED, HypothesisState.RULED_OUT):
        count = sum(1 for h in hypotheses if h.state is state)
        if count:
            parts.append(f"{count} {state.value.lower()}")
    return " · ".join(parts)


def _changed(hypothesis: Hypothesis) -> str:
    """`proposed by @a at 14:05 UTC; ruled out by @b at 14:10 UTC`."""
    said = f"proposed by {fmt.user(hypothesis.proposed_by)} at {fmt.clock(hypothesis.proposed_at)}"
    if hypothesis.changed_by is not None:
        when = f" at {fmt.clock(hypothesis.changed_at)}" if hypothesis.changed_at else ""
        said += f"; {CHANGED_VERB[hypothesis.state]} by {fmt.user(hypothesis.changed_by)}{when}"
    return said


def _open_text(hypothesis: Hypothesis) -> str:
    text = fmt.clip(user_text(hypothesis.text), HYPOTHESIS_MAX_CHARS)
    head = f"{STATE_EMOJI[hypothesis.state]} *{hypothesis.label}* · {hypothesis.state.value}"
    return f"{head}\n{text}\n_{_changed(hypothesis)}_"


def _line(hypothesis: Hypothesis, max_chars: int) -> str:
    """One line: state, text (cut to `max_chars`), who proposed and changed it."""
    text = fmt.clip(fmt.one_line(user_text(hypothesis.text)), max_chars)
    return (
        f"{STATE_EMOJI[hypothesis.state]} *{hypothesis.label}* · {hypothesis.state.value}: {text} "
        f"({_changed(hypothesis)})"
    )


def _listed(heading: str, lines: list[str], max_blocks: int, what: str) -> list[Block]:
    """`lines` under `heading`, in at most `max_blocks` sections; what does not fit is counted."""
    if not lines:
        return []
    sections: list[list[str]] = [[heading]]
    for index, line in enumerate(lines):
        more = f"…and {len(lines) - index} more {what}."
        if len("\n".join([*sections[-1], line])) <= MAX_SECTION_TEXT - len(more) - 1:
            sections[-1].append(line)
        elif len(sections) < max_blocks:
            sections.append([line])
        else:
            sections[-1].append(more)
            break
    return [SectionBlock(text=MarkdownTextObject(text="\n".join(s))) for s in sections]


def _buttons(incident: Incident, hypothesis: Hypothesis) -> ActionsBlock:
    elements = []
    for state in BUTTON_STATES:
        if state is hypothesis.state:
            continue  # already there: the state is shown in the text
        ref = HypothesisRef(incident_id=incident.id, uid=incident.uid, number=hypothesis.number, state=state)
        elements.append(
            ButtonElement(
                text=PlainTextObject(text=state.value),
                action_id=hypothesis_action_id(hypothesis.number, state),
                value=ref.encode(),
                style="primary" if state is HypothesisState.CONFIRMED else None,
                confirm=_confirm(hypothesis, state) if state.settled else None,
            )
        )
    return ActionsBlock(block_id=f"hypothesis.{hypothesis.number}", elements=elements)


def _confirm(hypothesis: Hypothesis, state: HypothesisState) -> ConfirmObject:
    return ConfirmObject(
        title=PlainTextObject(text=f"{state.value}: {hypothesis.label}?"),
        text=PlainTextObject(
            text=f"{hypothesis.label} will be marked {state.value}. A settled hypothesis cannot be reopened."
        ),
        confirm=PlainTextObject(text=state.value),
        deny=PlainTextObject(text="Cancel"),
    )
