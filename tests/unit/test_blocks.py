"""Renderers produce valid Block Kit within Slack's limits, and user text never becomes markup."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.blocks import MAX_BLOCKS_PER_MESSAGE, Rendered
from bot.blocks import format as fmt
from bot.blocks.checklist import checklist_message, phase_heading, split_sections
from bot.blocks.incident import announcement, header
from bot.ids import ActionId, ItemRef, tick_action_id
from bot.models import (
    ChecklistItem,
    ChecklistMessage,
    ChecklistSection,
    Incident,
    MessageState,
    Phase,
    Severity,
    Status,
    Tick,
    item_id,
)
from bot.playbook import ITEM_MAX_CHARS, Playbook, SeveritySpec, load_playbook

AT = datetime(2026, 11, 25, 14, 23, 45, tzinfo=UTC)
HOSTILE_TITLE = "<!channel> checkout down, ask <@U123> & R&D <#C999|ops> <https://evil.example|login>"


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return load_playbook()


def make_incident(**changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "INC-7",
        "number": 7,
        "severity": Severity.SEV1,
        "title": "Checkout requests failing",
        "declared_by": "UDECLARER",
        "commander": "UCOMMANDER",
        "declared_at": AT,
        "updated_at": AT,
        "origin_channel": "CORIGIN",
        "channel_id": "CINCIDENT",
        "channel_name": "inc-7-checkout-requests-failing",
        "dedicated_channel": True,
    }
    fields.update(changes)
    return Incident(**fields)


def make_section(title: str, count: int) -> ChecklistSection:
    texts = [f"{title} item {n}" for n in range(count)]
    return ChecklistSection(
        title=title, items=tuple(ChecklistItem(id=item_id(title, t), text=t) for t in texts)
    )


def state_for(
    sections: tuple[ChecklistSection, ...], phase: Phase = Phase.MITIGATE, **kw: Any
) -> MessageState:
    message = ChecklistMessage(channel="CINCIDENT", ts="1764079380.000100", phase=phase, sections=sections)
    return MessageState(incident_id="INC-7", message=message, ticks=kw.get("ticks", {}), rev=kw.get("rev", 0))


def assert_valid_block_kit(rendered: Rendered) -> list[dict[str, Any]]:
    dicts = rendered.block_dicts()
    assert 0 < len(dicts) <= MAX_BLOCKS_PER_MESSAGE
    for d in dicts:
        parsed = Block.parse(d)
        assert parsed is not None, d
        parsed.validate_json()
        assert parsed.to_dict() == d
    assert rendered.text
    return dicts


def text_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every text object (`{"type": "mrkdwn"|"plain_text", "text": ...}`) anywhere in rendered dicts."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from text_objects(value)


def checkboxes(dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for d in dicts if d["type"] == "actions" for e in d["elements"]]


def assert_no_raw_markup(text: str) -> None:
    for raw in ("<!channel>", "<!here>", "<@U123>", "<#C999", "<https://evil"):
        assert raw not in text, text
    without_entities = text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    assert "&" not in without_entities, text


# -- validity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", list(Severity))
@pytest.mark.parametrize("status", list(Status))
def test_incident_messages_are_valid_block_kit(
    playbook: Playbook, severity: Severity, status: Status
) -> None:
    incident = make_incident(severity=severity, status=status)
    spec = playbook.severity(severity)
    for rendered in (header(incident, spec), announcement(incident, spec, note="paged oncall")):
        assert_valid_block_kit(rendered)


@pytest.mark.parametrize("severity", list(Severity))
def test_every_playbook_checklist_renders_as_valid_block_kit(playbook: Playbook, severity: Severity) -> None:
    for phase, sections in playbook.severity(severity).sections_by_phase().items():
        dicts = assert_valid_block_kit(checklist_message(state_for(tuple(sections), phase=phase)))
        for element in checkboxes(dicts):
            for option in element["options"]:
                assert len(option["text"]["text"]) <= ITEM_MAX_CHARS  # Slack's limit; slack_sdk skips it


def test_verification_checklist_renders(playbook: Playbook) -> None:
    section = playbook.verification.section()
    dicts = assert_valid_block_kit(checklist_message(state_for((section,), phase=Phase.VERIFY)))
    assert [e["options"][0]["text"]["text"] for e in checkboxes(dicts)] == playbook.verification.items


def test_sev1_mitigate_checklist_has_one_checkbox_element_per_item(playbook: Playbook) -> None:
    sections = playbook.severity(Severity.SEV1).sections_by_phase()[Phase.MITIGATE]
    items = [item for s in sections for item in s.items]
    dicts = assert_valid_block_kit(checklist_message(state_for(tuple(sections))))

    assert len(dicts) == 2 + len(sections) + len(items)  # header, context, titles, items
    assert dicts[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": phase_heading(Phase.MITIGATE)},
    }
    assert [d["text"]["text"] for d in dicts if d["type"] == "section"] == [
        "*Traffic Management*",
        "*Rollback*",
        "*Circuit Breaking*",
        "*Scaling*",
    ]
    actions = [d for d in dicts if d["type"] == "actions"]
    assert len(actions) == len(items) == 12
    for block, item in zip(actions, items, strict=True):
        assert len(block["elements"]) == 1
        element = block["elements"][0]
        assert element["type"] == "checkboxes"
        assert element["action_id"] == tick_action_id(item.id)
        assert element["action_id"].startswith(ActionId.TICK.value)
        assert 1 <= len(element["options"]) <= 10
        assert element["options"][0]["value"] == item.id
        assert element["options"][0]["text"]["text"] == item.text


def test_progress_counts_only_ticks_on_this_message(playbook: Playbook) -> None:
    sections = tuple(playbook.severity(Severity.SEV1).sections_by_phase()[Phase.MITIGATE])
    first = sections[0].items[0].id
    ticks = {first: Tick(by="U1", at=AT), "someotheritem": Tick(by="U1", at=AT)}
    rendered = checklist_message(state_for(sections, ticks=ticks))
    context = rendered.block_dicts()[1]["elements"][0]["text"]
    assert "1/12 done" in context
    assert "(1/12 done)" in rendered.text


def test_later_parts_say_so_in_the_heading() -> None:
    message = ChecklistMessage(
        channel="C1", ts="1.2", phase=Phase.ASSESS, part=2, sections=(make_section("Impact", 3),)
    )
    rendered = checklist_message(MessageState(incident_id="INC-7", message=message, ticks={}, rev=0))
    assert rendered.block_dicts()[0]["text"]["text"] == phase_heading(Phase.ASSESS) + " (part 2)"


# -- splitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([120], id="one-section-of-120"),
        pytest.param([7, 45, 60, 8], id="mixed-120"),
        pytest.param([47], id="exactly-one-message"),
        pytest.param([48], id="one-over"),
        pytest.param([1] * 30, id="many-small-sections"),
    ],
)
def test_split_sections_keeps_every_item_once_in_order_within_the_block_limit(sizes: list[int]) -> None:
    sections = [make_section(f"S{n}", size) for n, size in enumerate(sizes)]
    original = [item for s in sections for item in s.items]

    parts = split_sections(sections)

    flattened = [item for part in parts for s in part for item in s.items]
    assert flattened == original
    assert len({item.id for item in flattened}) == len(original)
    for number, part in enumerate(parts, start=1):
        message = ChecklistMessage(channel="C1", ts="1.1", phase=Phase.MITIGATE, part=number, sections=part)
        dicts = assert_valid_block_kit(
            checklist_message(MessageState(incident_id="INC-7", message=message, ticks={}, rev=0))
        )
        assert len(dicts) <= MAX_BLOCKS_PER_MESSAGE
        for section in part:
            assert section.items  # no empty titles
            base = section.title.removesuffix(" (continued)")
            assert all(item.text.startswith(f"{base} item ") for item in section.items)


def test_split_sections_of_120_items_needs_several_full_messages() -> None:
    parts = split_sections([make_section("Big", 120)])
    assert len(parts) == 3
    block_counts = [2 + sum(1 + len(s.items) for s in part) for part in parts]
    assert block_counts[:2] == [MAX_BLOCKS_PER_MESSAGE, MAX_BLOCKS_PER_MESSAGE]
    assert [s.title for part in parts for s in part] == ["Big", "Big (continued)", "Big (continued)"]


def test_split_sections_leaves_a_small_checklist_whole(playbook: Playbook) -> None:
    sections = playbook.severity(Severity.SEV1).sections_by_phase()[Phase.MITIGATE]
    assert split_sections(sections) == [tuple(sections)]


# -- ticks and block ids -----------------------------------------------------------------------


def test_ticked_item_shows_who_and_when_in_initial_options(playbook: Playbook) -> None:
    sections = tuple(playbook.severity(Severity.SEV1).sections_by_phase()[Phase.MITIGATE])
    ticked = sections[1].items[2]
    dicts = checklist_message(
        state_for(sections, ticks={ticked.id: Tick(by="U123", at=AT)}, rev=5)
    ).block_dicts()

    elements = checkboxes(dicts)
    with_initial = [e for e in elements if "initial_options" in e]
    assert len(with_initial) == 1
    element = with_initial[0]
    assert element["options"][0]["value"] == ticked.id
    assert element["initial_options"] == element["options"]
    assert element["options"][0]["description"] == {"type": "mrkdwn", "text": "<@U123> · 14:23 UTC"}
    for other in elements:
        if other is not element:
            assert "initial_options" not in other
            assert "description" not in other["options"][0]


def test_block_id_decodes_to_the_item_and_revision(playbook: Playbook) -> None:
    sections = tuple(playbook.severity(Severity.SEV2).sections_by_phase()[Phase.ASSESS])
    items = [item for s in sections for item in s.items]
    dicts = checklist_message(state_for(sections, phase=Phase.ASSESS, rev=17)).block_dicts()

    refs = [ItemRef.decode(d["block_id"]) for d in dicts if d["type"] == "actions"]
    assert refs == [ItemRef(i="INC-7", k=item.id, v=17) for item in items]
    assert all(len(d["block_id"]) <= 255 for d in dicts if "block_id" in d)


def test_block_ids_change_with_the_revision(playbook: Playbook) -> None:
    sections = tuple(playbook.severity(Severity.SEV2).sections_by_phase()[Phase.ASSESS])
    before = {d.get("block_id") for d in checklist_message(state_for(sections, rev=1)).block_dicts()} - {None}
    after = {d.get("block_id") for d in checklist_message(state_for(sections, rev=2)).block_dicts()} - {None}
    assert before and after and before.isdisjoint(after)


# -- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", list(Severity))
def test_hostile_title_is_escaped_in_header_and_announcement(playbook: Playbook, severity: Severity) -> None:
    incident = make_incident(severity=severity, title=HOSTILE_TITLE)
    spec = playbook.severity(severity)
    for rendered in (header(incident, spec), announcement(incident, spec, note="<!here> & more")):
        texts = [t["text"] for t in text_objects(rendered.block_dicts())]
        mrkdwn = [t["text"] for t in text_objects(rendered.block_dicts()) if t["type"] == "mrkdwn"]
        assert any("&lt;!channel&gt;" in t for t in mrkdwn)  # the title is there, escaped
        for text in [*texts, rendered.text]:
            assert_no_raw_markup(text)


def _hostile_spec(playbook: Playbook) -> SeveritySpec:
    return playbook.severity(Severity.SEV2).model_copy(
        update={"label": "<!here>", "description": "R&D <@U123>", "response": "<!channel> now"}
    )


def test_hostile_playbook_text_is_escaped_in_mrkdwn_blocks(playbook: Playbook) -> None:
    spec = _hostile_spec(playbook)
    incident = make_incident(severity=Severity.SEV2)
    for rendered in (header(incident, spec), announcement(incident, spec)):
        for text in (t["text"] for t in text_objects(rendered.block_dicts()) if t["type"] == "mrkdwn"):
            assert_no_raw_markup(text)
    assert_no_raw_markup(announcement(incident, spec).text)


def test_hostile_playbook_label_is_escaped_in_the_header_fallback_text(playbook: Playbook) -> None:
    assert_no_raw_markup(header(make_incident(severity=Severity.SEV2), _hostile_spec(playbook)).text)


def test_non_id_declarer_and_commander_are_not_mentions(playbook: Playbook) -> None:
    incident = make_incident(declared_by="<!channel>", commander="@here")
    spec = playbook.severity(Severity.SEV1)
    for rendered in (header(incident, spec), announcement(incident, spec)):
        for text in [*(t["text"] for t in text_objects(rendered.block_dicts())), rendered.text]:
            assert_no_raw_markup(text)
            assert "<@" not in text


def test_hostile_checklist_text_is_escaped() -> None:
    title = "<!channel> & co"
    texts = ["<!here> now", "ask <@U123> & R&D"]
    section = ChecklistSection(
        title=title, items=tuple(ChecklistItem(id=item_id(title, t), text=t) for t in texts)
    )
    ticks = {section.items[0].id: Tick(by="<!channel>", at=AT)}
    rendered = checklist_message(state_for((section,), ticks=ticks))
    assert_valid_block_kit(rendered)
    for text in [*(t["text"] for t in text_objects(rendered.block_dicts())), rendered.text]:
        assert_no_raw_markup(text)


def test_announcement_points_to_the_dedicated_channel_only(playbook: Playbook) -> None:
    spec = playbook.severity(Severity.SEV2)
    dedicated = announcement(make_incident(), spec)
    borrowed = announcement(make_incident(dedicated_channel=False), spec)
    assert "Join <#CINCIDENT>." in dedicated.text
    assert "Join" not in borrowed.text
    assert "<@UDECLARER> declared *INC-7*" in dedicated.text


# -- format helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["U123", "W0ABCDEF", "U01ABCDEFGH"])
def test_user_ids_become_mentions(user_id: str) -> None:
    assert fmt.user(user_id) == f"<@{user_id}>"


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        "",
        "u123",
        "U123 ",
        " U123",
        "U123\n",
        "U123>",
        "<@U123>",
        "<!channel>",
        "@here",
        "U123|alice",
        "C123",
        "U12-3",
        "Ü123",
    ],
)
def test_user_never_mentions_a_non_id(text: str) -> None:
    shown = fmt.user(text)
    assert "<" not in shown
    assert ">" not in shown
    assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_clock_is_hours_and_minutes_utc() -> None:
    assert fmt.clock(AT) == "14:23 UTC"
    assert fmt.stamp(AT) == "2026-11-25 14:23 UTC"
