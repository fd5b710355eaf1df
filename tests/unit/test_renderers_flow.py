"""Renderers of the incident flow: the trace view and its Slack messages, the Hypotheses
message, `/incident list` and the postmortem draft."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.blocks import MAX_BLOCKS_PER_MESSAGE, MAX_SECTION_TEXT, Rendered
from bot.blocks import format as fmt
from bot.blocks.hypotheses import hypotheses_message
from bot.blocks.incident import LIST_MAX_CHARS, incident_list
from bot.blocks.timeline import (
    EVIDENCE_MAX_CHARS,
    TIMELINE_MAX_BLOCKS,
    TIMELINE_MAX_CHARS,
    timeline_messages,
    trace_lines,
)
from bot.ids import HYPOTHESIS_ACTION_PATTERN, HypothesisRef
from bot.models import (
    ChecklistItem,
    ChecklistMessage,
    ChecklistSection,
    EventKind,
    HypothesisState,
    Incident,
    Phase,
    Severity,
    Status,
    StatusUpdate,
    Tick,
    TimelineEvent,
    item_id,
)
from bot.playbook import Playbook, SeveritySpec, load_playbook
from bot.postmortem import SECTIONS, postmortem_markdown
from bot.text import user_text

T0 = datetime(2026, 11, 25, 14, 0, 0, tzinfo=UTC)
NAMES = {"UALICE": "Alice", "UBOB": "Bob", "UCAROL": "Carol", "UDANA": "Dana"}
ROLE_LABELS = {"commander": "Incident commander", "comms": "Communications lead"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def mention(user: str | None) -> str:
    return "incident-bot" if user is None else fmt.user(user)


def name(user: str | None) -> str:
    return "incident-bot" if user is None else NAMES.get(user, user)


def make_incident(**changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "INC-7",
        "uid": "0f3c9a2b",
        "number": 7,
        "severity": Severity.SEV2,
        "title": "Checkout requests failing",
        "declared_by": "UDANA",
        "commander": "UALICE",
        "declared_at": T0,
        "updated_at": T0,
        "origin_channel": "CORIGIN",
        "channel_id": "CINCIDENT",
    }
    fields.update(changes)
    return Incident(**fields)


def event(minutes: float, kind: EventKind, text: str, by: str | None = "UALICE", **kw: Any) -> TimelineEvent:
    return TimelineEvent(at=at(minutes), kind=kind, by=by, text=text, **kw)


def assert_valid_block_kit(rendered: Rendered) -> list[dict[str, Any]]:
    dicts = rendered.block_dicts()
    assert 0 < len(dicts) <= MAX_BLOCKS_PER_MESSAGE
    for d in dicts:
        parsed = Block.parse(d)
        assert parsed is not None, d
        parsed.validate_json()
    assert rendered.text
    return dicts


def mrkdwn_texts(dicts: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dicts)
    return found


# -- trace_lines -------------------------------------------------------------------------------


def test_trace_line_has_the_seed_layout() -> None:
    rollback = item_id("Rollback", "Rollback to previous version")
    events = [event(23.0167, EventKind.TICKED, "ticked", item=rollback)]
    [line] = trace_lines(events, {rollback: "Rollback to previous version"}, mention)
    assert line == '14:23:01 │ <@UALICE> │ ticked "Rollback to previous version"'


def test_trace_lines_name_the_item_the_bot_and_fall_back_to_the_id() -> None:
    events = [
        event(1, EventKind.DECLARED, "Declared SEV2: Checkout requests failing", by="UDANA"),
        event(2, EventKind.UNTICKED, "unticked", item="abc123"),
        event(3, EventKind.REMINDER, "Reminder 1 sent", by=None),
    ]
    lines = trace_lines(events, {}, name, plain=True)
    assert lines == [
        "14:01:00 │ Dana         │ Declared SEV2: Checkout requests failing",
        '14:02:00 │ Alice        │ unticked "abc123"',
        "14:03:00 │ incident-bot │ Reminder 1 sent",
    ]


def test_trace_for_slack_does_not_pad_mentions() -> None:
    events = [event(0, EventKind.NOTE, "a", by="UBOB"), event(1, EventKind.NOTE, "b", by=None)]
    assert trace_lines(events, {}, mention) == ["14:00:00 │ <@UBOB> │ a", "14:01:00 │ incident-bot │ b"]


def test_trace_columns_line_up_and_days_show_when_the_events_span_several() -> None:
    events = [
        event(0, EventKind.NOTE, "first", by="UBOB"),
        event(60 * 24 + 5, EventKind.NOTE, "next day", by=None),
    ]
    lines = trace_lines(events, {}, name, plain=True)
    assert lines[0].startswith("11-25 14:00:00 │ Bob          │ ")
    assert lines[1].startswith("11-26 14:05:00 │ incident-bot │ ")
    assert len({line.index("│", 16) for line in lines}) == 1


def test_trace_escapes_raw_text_once_and_keeps_safe_text_as_it_is() -> None:
    raw_title = "Declared SEV1: <!channel> R&D down"  # titles are stored as typed
    note = user_text("a &lt; b, ask &lt;@UBOB|bob&gt;")  # notes are stored safe
    events = [event(0, EventKind.DECLARED, raw_title), event(1, EventKind.NOTE, note)]
    declared, noted = trace_lines(events, {}, mention)
    assert declared.endswith("Declared SEV1: &lt;!channel&gt; R&amp;D down")
    assert noted.endswith("a &lt; b, ask <@UBOB>")
    assert "&amp;lt;" not in noted


def test_trace_in_plain_text_decodes_entities_and_names_mentions() -> None:
    note = user_text("a &lt; b &amp; ask &lt;@UBOB&gt;")
    [line] = trace_lines([event(0, EventKind.NOTE, note)], {}, name, plain=True)
    assert line.endswith("│ a < b & ask Bob")


def test_trace_keeps_one_event_on_one_line() -> None:
    [line] = trace_lines([event(0, EventKind.NOTE, "first line\n\nsecond line")], {}, mention)
    assert line.endswith("│ first line second line")


def test_trace_item_text_is_escaped_for_slack() -> None:
    ticked = event(0, EventKind.TICKED, "ticked", item="i1")
    [line] = trace_lines([ticked], {"i1": "Page <!here> & wait"}, mention)
    assert line.endswith('ticked "Page &lt;!here&gt; &amp; wait"')


def test_evidence_shows_the_start_of_the_message_its_author_and_link() -> None:
    link = "https://acme.slack.com/archives/C1/p1764079380000100"
    long_text = user_text("ERROR inventory: connection refused &lt;!channel&gt; " + "x" * 400)
    added = event(5, EventKind.EVIDENCE, long_text, author="UBOB", link=link)
    [slack] = trace_lines([added], {}, mention)
    assert f"(from <@UBOB>, <{link}|message>)" in slack
    quoted = slack.split('"')[1]
    assert quoted.startswith("ERROR inventory: connection refused &lt;!channel&gt; xxx")
    assert quoted.endswith("…")
    assert len(quoted.replace("&lt;", "<").replace("&gt;", ">")) == EVIDENCE_MAX_CHARS
    [markdown] = trace_lines([added], {}, name, plain=True)
    assert markdown.endswith(f"…\" (from Bob, {link})")
    assert "<!channel>" in markdown  # plain text, for a code block


def test_evidence_cut_never_leaves_half_an_entity_or_mention() -> None:
    text = user_text("y" * (EVIDENCE_MAX_CHARS - 5) + " &lt;@UBOB&gt; &amp;&amp;&amp;")
    [line] = trace_lines([event(0, EventKind.EVIDENCE, text)], {}, mention)
    quoted = line.split('"')[1]
    assert quoted.endswith("…")
    assert "<@UBOB" not in quoted  # cut inside the mention: shown escaped, never parsed
    assert not re.search(r"&(?!amp;|lt;|gt;)", quoted)


def test_evidence_with_a_suspicious_link_shows_no_link() -> None:
    bad = event(0, EventKind.EVIDENCE, "msg", author="UBOB", link="https://evil.example|click>")
    [line] = trace_lines([bad], {}, mention)
    assert line.endswith('added evidence: "msg" (from <@UBOB>)')


# -- timeline_messages -------------------------------------------------------------------------


def test_a_short_timeline_is_one_message_with_the_title_and_the_lines() -> None:
    lines = ["14:00:00 │ <@UALICE> │ declared", "14:01:00 │ incident-bot │ opened #inc-7"]
    [message] = timeline_messages(lines, "Timeline of INC-7")
    dicts = assert_valid_block_kit(message)
    assert dicts[0]["text"]["text"] == "Timeline of INC-7"
    assert "2 events" in dicts[1]["elements"][0]["text"]
    assert dicts[2] == {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    assert message.text == "Timeline of INC-7: events 1 to 2 of 2"


def test_an_empty_timeline_says_so() -> None:
    [message] = timeline_messages([], "Timeline of INC-7")
    assert "No events yet." in mrkdwn_texts(assert_valid_block_kit(message))


@pytest.mark.parametrize("count, width", [(2000, 60), (300, 1400), (45, 2990), (130, 120)])
def test_a_long_timeline_is_split_within_slack_limits_keeping_lines_whole(count: int, width: int) -> None:
    lines = [f"{n:05d} " + "x" * (width - 6) for n in range(count)]
    messages = timeline_messages(lines, "Timeline of INC-7")
    assert len(messages) > 1
    seen: list[str] = []
    for number, message in enumerate(messages, start=1):
        dicts = assert_valid_block_kit(message)
        assert len(dicts) <= TIMELINE_MAX_BLOCKS
        assert dicts[0]["text"]["text"] == f"Timeline of INC-7 ({number}/{len(messages)})"
        assert len(message.text) <= 300
        sections = [d["text"]["text"] for d in dicts if d["type"] == "section"]
        assert all(len(s) <= MAX_SECTION_TEXT for s in sections)
        assert sum(len(t) for t in mrkdwn_texts(dicts)) <= TIMELINE_MAX_CHARS
        for section in sections:
            seen += section.split("\n")
    assert seen == lines
    assert messages[-1].text.endswith(f"of {count}")


def test_a_line_longer_than_a_section_is_cut_and_the_next_lines_follow() -> None:
    lines = ["a" * 5000, "short"]
    [message] = timeline_messages(lines, "Timeline of INC-7")
    sections = [d["text"]["text"] for d in assert_valid_block_kit(message) if d["type"] == "section"]
    assert sections[0].startswith("aaa")
    assert sections[0].endswith("…")
    assert len(sections[0]) == MAX_SECTION_TEXT
    assert sections[-1].endswith("short")


def test_a_cut_line_keeps_its_markup_whole() -> None:
    line = "x" * (MAX_SECTION_TEXT - 4) + "<@UBOB> &amp;"
    [message] = timeline_messages([line], "T")
    dicts: list[dict[str, Any]] = message.block_dicts()
    section = next(d["text"]["text"] for d in dicts if d["type"] == "section")
    assert section == "x" * (MAX_SECTION_TEXT - 4) + "…"


# -- hypotheses --------------------------------------------------------------------------------


def with_hypotheses(*states: HypothesisState) -> Incident:
    incident = make_incident()
    for number, state in enumerate(states, start=1):
        incident = incident.with_hypothesis(f"cause number {number}", "UBOB", at(number))
        if state is not HypothesisState.OPEN:
            incident = incident.with_hypothesis_state(number, state, "UCAROL", at(number + 0.5))
    return incident


def buttons_by_label(dicts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for d in dicts:
        if d["type"] == "actions":
            found[d["block_id"]] = d["elements"]
    return found


def test_no_hypotheses_says_how_to_propose_one() -> None:
    rendered = hypotheses_message(make_incident())
    texts = mrkdwn_texts(assert_valid_block_kit(rendered))
    assert any("No hypotheses yet" in t and "`/incident hypothesis &lt;text&gt;`" in t for t in texts)
    assert not [d for d in rendered.block_dicts() if d["type"] == "actions"]


def test_open_hypotheses_have_the_three_buttons_and_testing_ones_two() -> None:
    incident = with_hypotheses(HypothesisState.OPEN, HypothesisState.TESTING)
    dicts = assert_valid_block_kit(hypotheses_message(incident))
    actions = buttons_by_label(dicts)
    assert [b["text"]["text"] for b in actions["hypothesis.1"]] == ["Testing", "Confirmed", "Ruled out"]
    assert [b["text"]["text"] for b in actions["hypothesis.2"]] == ["Confirmed", "Ruled out"]
    for number, buttons in ((1, actions["hypothesis.1"]), (2, actions["hypothesis.2"])):
        for button in buttons:
            ref = HypothesisRef.decode(button["value"])
            state = HypothesisState(button["text"]["text"])
            assert ref == HypothesisRef(incident_id="INC-7", uid="0f3c9a2b", number=number, state=state)
            assert HYPOTHESIS_ACTION_PATTERN.match(button["action_id"])
            assert len(button["action_id"]) <= 255
            assert len(button["value"]) <= 2000
    all_ids = [b["action_id"] for buttons in actions.values() for b in buttons]
    assert len(all_ids) == len(set(all_ids))
    settling = [b for b in actions["hypothesis.1"] if b["text"]["text"] != "Testing"]
    assert all("confirm" in b for b in settling)


def test_each_hypothesis_shows_state_text_and_who_proposed_and_changed_it() -> None:
    incident = with_hypotheses(HypothesisState.TESTING, HypothesisState.RULED_OUT, HypothesisState.CONFIRMED)
    rendered = hypotheses_message(incident)
    dicts = assert_valid_block_kit(rendered)
    text = "\n".join(mrkdwn_texts(dicts))
    assert "*H1* · Testing\ncause number 1" in text
    assert "proposed by <@UBOB> at 14:01 UTC; set to Testing by <@UCAROL> at 14:01 UTC" in text
    assert (
        "*H2* · Ruled out: cause number 2 (proposed by <@UBOB> at 14:02 UTC; ruled out by <@UCAROL>" in text
    )
    assert "*H3* · Confirmed: cause number 3" in text
    assert set(buttons_by_label(dicts)) == {"hypothesis.1"}  # settled ones have no buttons
    assert rendered.text == "Hypotheses of INC-7: 1 open · 1 confirmed · 1 ruled out"


def test_hypothesis_text_is_escaped_once() -> None:
    incident = make_incident().with_hypothesis(user_text("&lt;!channel&gt; pool &amp; cache"), "UBOB", at(1))
    text = "\n".join(mrkdwn_texts(hypotheses_message(incident).block_dicts()))
    assert "&lt;!channel&gt; pool &amp; cache" in text
    assert "<!channel>" not in text
    assert "&amp;lt;" not in text


@pytest.mark.parametrize("open_count, settled_count", [(24, 0), (40, 40), (3, 200), (0, 200)])
def test_many_hypotheses_stay_within_slack_limits(open_count: int, settled_count: int) -> None:
    long_text = user_text("&lt;&amp;&gt;" * 600)  # 1800 typed, 7800 escaped
    incident = make_incident()
    for number in range(1, open_count + settled_count + 1):
        incident = incident.with_hypothesis(long_text, "UBOB", at(number))
        if number > open_count:
            incident = incident.with_hypothesis_state(number, HypothesisState.RULED_OUT, "UCAROL", at(number))
    dicts = assert_valid_block_kit(hypotheses_message(incident))
    for text in mrkdwn_texts(dicts):
        assert len(text) <= MAX_SECTION_TEXT
    with_buttons = {int(block_id.split(".")[1]) for block_id in buttons_by_label(dicts)}
    assert with_buttons == set(range(1, len(with_buttons) + 1))  # the first open ones, in order
    everything = "\n".join(mrkdwn_texts(dicts))
    unbuttoned = [n for n in range(len(with_buttons) + 1, open_count + 1) if f"*H{n}* · Open" in everything]
    assert unbuttoned == list(range(len(with_buttons) + 1, len(with_buttons) + len(unbuttoned) + 1))
    more = re.findall(r"…and (\d+) more open\.", everything)
    assert len(with_buttons) + len(unbuttoned) + int(more[0] if more else 0) == open_count
    if open_count > 20:
        assert len(with_buttons) >= 20
    if settled_count > 100:
        assert "more settled." in everything


def test_hypothesis_ref_refuses_open_and_garbage() -> None:
    ref = HypothesisRef(incident_id="INC-7", uid="u", number=3, state=HypothesisState.CONFIRMED)
    assert ref.encode() == '{"i":"INC-7","u":"u","n":3,"s":"Confirmed"}'
    with pytest.raises(ValueError):
        HypothesisRef.decode('{"i":"INC-7","u":"u","n":3,"s":"Open"}')
    with pytest.raises(ValueError):
        HypothesisRef.decode('{"i":"INC-7","u":"u","n":0,"s":"Testing"}')


# -- /incident list ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return load_playbook()


def listed(playbook: Playbook, *incidents: Incident) -> list[tuple[Incident, SeveritySpec]]:
    return [(i, playbook.severity(i.severity)) for i in incidents]


def test_incident_list_shows_the_newest_first_with_everything_a_responder_asks(playbook: Playbook) -> None:
    now = at(90)
    older = make_incident(
        id="INC-6", number=6, severity=Severity.SEV1, declared_at=at(-30), next_update_due=at(87),
        phase=Phase.INVESTIGATE, status=Status.IDENTIFIED, commander="UBOB",
    )
    newer = make_incident(title="Search <!here> slow", next_update_due=at(102))
    text = incident_list(listed(playbook, older, newer), now)
    lines = text.split("\n")
    assert lines[0] == "*Open incidents: 2* (newest first)"
    assert lines[1] == (
        "• :large_orange_circle: *INC-7* · SEV2 · Search &lt;!here&gt; slow · Investigating · 1. Assess"
        " · commander <@UALICE> · open 1h 30m · next update in 12m"
    )
    assert lines[2] == (
        "• :red_circle: *INC-6* · SEV1 · Checkout requests failing · Identified · 3. Investigate"
        " · commander <@UBOB> · open 2h · update overdue by 3m"
    )


def test_incident_list_with_nothing_open_says_so(playbook: Playbook) -> None:
    assert incident_list([], at(0)) == "No open incidents. All quiet."


def test_incident_list_past_the_limit_says_how_many_more(playbook: Playbook) -> None:
    incidents = [make_incident(id=f"INC-{n}", number=n, declared_at=at(n)) for n in range(1, 31)]
    text = incident_list(listed(playbook, *incidents), at(60), limit=5)
    lines = text.split("\n")
    assert [line.split("*")[1] for line in lines[1:6]] == ["INC-30", "INC-29", "INC-28", "INC-27", "INC-26"]
    assert lines[6] == "…and 25 more."
    assert len(lines) == 7


def test_incident_list_stays_within_the_ephemeral_limit_by_listing_fewer(playbook: Playbook) -> None:
    title = "&" * 150  # escapes to five times its length, before the list shortens it
    incidents = [make_incident(id=f"INC-{n}", number=n, title=title, declared_at=at(n)) for n in range(40)]
    text = incident_list(listed(playbook, *incidents), at(60))
    assert len(text) <= LIST_MAX_CHARS
    more = int(re.findall(r"…and (\d+) more\.", text)[0])
    assert text.count("\n• ") + more == 40
    assert more > 20


# -- postmortem --------------------------------------------------------------------------------

MITIGATE = ChecklistSection(
    title="Rollback",
    items=(
        ChecklistItem(id="rb1", text="Rollback to previous version"),
        ChecklistItem(id="rb2", text="Revert recent config change"),
    ),
)
MITIGATE_MORE = ChecklistSection(
    title="Rollback (continued)", items=(ChecklistItem(id="rb3", text="Restore from database backup"),)
)
ASSESS = ChecklistSection(title="Impact Assessment", items=(ChecklistItem(id="as1", text="How many users?"),))
VERIFY = ChecklistSection(
    title="Verification",
    items=(
        ChecklistItem(id="v1", text="Error rate decreased"),
        ChecklistItem(id="v2", text="Latency normalized"),
    ),
)
MESSAGES = [
    ChecklistMessage(channel="C1", ts="1.1", phase=Phase.ASSESS, sections=(ASSESS,)),
    ChecklistMessage(channel="C1", ts="1.2", phase=Phase.MITIGATE, sections=(MITIGATE,)),
    ChecklistMessage(channel="C1", ts="1.3", phase=Phase.MITIGATE, part=2, sections=(MITIGATE_MORE,)),
    ChecklistMessage(channel="C1", ts="1.4", phase=Phase.VERIFY, sections=(VERIFY,)),
]
TICKS = {
    "as1": Tick(by="UBOB", at=at(3)),
    "rb1": Tick(by="UALICE", at=at(12)),
    "rb3": Tick(by="UCAROL", at=at(14)),
    "v1": Tick(by="UBOB", at=at(40)),
}
LINK = "https://acme.slack.com/archives/C1/p1764079380000100"


def update(status: Status, minutes: float, impact: str) -> StatusUpdate:
    return StatusUpdate(
        status=status, impact=impact, current_state="working", next_update="15m",
        posted_by="UALICE", posted_at=at(minutes),
    )


def recorded() -> tuple[Incident, list[TimelineEvent]]:
    """An incident worked from declaration to resolution, with every kind of event."""
    incident = make_incident(title="Checkout *down* | R&D")
    incident = incident.with_role("comms", "UBOB", at(1))
    incident = incident.with_severity(Severity.SEV1, at(2), timedelta(minutes=15))
    incident = incident.with_hypothesis(user_text("Deploy exhausts the DB pool"), "UBOB", at(8))
    incident = incident.with_hypothesis(user_text("Inventory service unreachable"), "UCAROL", at(9))
    incident = incident.with_hypothesis_state(1, HypothesisState.RULED_OUT, "UALICE", at(15))
    incident = incident.with_hypothesis_state(2, HypothesisState.TESTING, "UCAROL", at(16))
    incident = incident.with_hypothesis_state(2, HypothesisState.CONFIRMED, "UCAROL", at(18))
    incident = incident.moved_to(Status.IDENTIFIED, at(20), update(Status.IDENTIFIED, 20, "5% failing"))
    monitoring = update(Status.MONITORING, 35, "~5% of checkouts failing")
    incident = incident.moved_to(Status.MONITORING, at(35), monitoring)
    incident = incident.with_followup(user_text("Alert on pool usage &gt; 80%"), "UCAROL", at(45))
    incident = incident.resolved(at(50))
    events = [
        event(0, EventKind.DECLARED, "Declared SEV2: Checkout *down* | R&D", by="UDANA"),
        event(0.5, EventKind.CHANNEL, "Opened #inc-7-checkout", by=None),
        event(1, EventKind.ROLE, "made <@UBOB> Communications lead"),
        event(2, EventKind.SEVERITY_CHANGED, "Severity changed to SEV1"),
        event(3, EventKind.TICKED, "ticked", by="UBOB", item="as1"),
        event(5, EventKind.NOTE, user_text("Error rate up since 13:58 ```x``` &lt;@UCAROL&gt; check")),
        event(6, EventKind.EVIDENCE, user_text("inventory: connection refused"), by="UCAROL",
              author="UBOB", link=LINK),
        event(7, EventKind.PHASE, "moved to 4. Hypothesize"),
        event(8, EventKind.HYPOTHESIS, user_text("proposed H1: Deploy exhausts the DB pool"), by="UBOB"),
        event(9, EventKind.HYPOTHESIS, user_text("proposed H2: Inventory service unreachable"), by="UCAROL"),
        event(12, EventKind.TICKED, "ticked", item="rb1"),
        event(13, EventKind.UNTICKED, "unticked", item="rb2"),
        event(14, EventKind.TICKED, "ticked", by="UCAROL", item="rb3"),
        event(15, EventKind.HYPOTHESIS_STATE, "set H1 to Ruled out"),
        event(16, EventKind.HYPOTHESIS_STATE, "set H2 to Testing", by="UCAROL"),
        event(18, EventKind.HYPOTHESIS_STATE, "set H2 to Confirmed", by="UCAROL"),
        event(20, EventKind.STATUS_UPDATE, "Status: Identified. Impact: 5% failing. Current state: working"),
        event(35, EventKind.STATUS_UPDATE, "Status: Monitoring. Impact: ~5% of checkouts failing."),
        event(40, EventKind.TICKED, "ticked", by="UBOB", item="v1"),
        event(45, EventKind.FOLLOWUP, user_text("follow-up: Alert on pool usage &gt; 80%"), by="UCAROL"),
        event(50, EventKind.RESOLVED, "Resolved"),
    ]
    return incident, events


def draft(incident: Incident, events: list[TimelineEvent], **kw: Any) -> str:
    return postmortem_markdown(
        incident,
        lambda severity: severity.value.upper(),
        events,
        kw.get("messages", MESSAGES),
        kw.get("ticks", TICKS),
        name,
        ROLE_LABELS,
    )


def sections_of(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def test_postmortem_has_every_section_in_order() -> None:
    markdown = draft(*recorded())
    assert markdown.startswith("# INC-7 postmortem: Checkout \\*down\\* \\| R\\&D\n\n## Summary\n")
    assert re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE) == list(SECTIONS)
    assert list(SECTIONS) == [
        "Summary", "Impact", "Timeline", "Evidence", "Hypotheses", "Root cause",
        "Mitigations and checklist items done", "Verification", "Follow-ups",
        "What went well", "What went wrong",
    ]
    assert markdown.endswith("## What went well\n\n## What went wrong\n")


def test_postmortem_is_the_same_for_the_same_record() -> None:
    incident, events = recorded()
    assert draft(incident, events) == draft(incident, list(events))


def test_postmortem_summary() -> None:
    summary = sections_of(draft(*recorded()))["Summary"]
    assert summary.split("\n") == [
        "- **Title:** Checkout \\*down\\* \\| R\\&D",
        "- **Severity:** SEV1, changed 1 time:",
        "  - Alice, 14:02 UTC: Severity changed to SEV1",
        "- **Roles:** Incident commander: Alice; Communications lead: Bob",
        "- **Status:** Resolved · **Phase:** 8. Postmortem",
        "- **Declared:** 2026-11-25 14:00 UTC by Dana",
        "- **Identified:** 2026-11-25 14:18 UTC (H2 confirmed), 18m after declared",
        "- **Mitigated:** 2026-11-25 14:35 UTC (status Monitoring), 17m after identified",
        "- **Resolved:** 2026-11-25 14:50 UTC (status Resolved), 15m after mitigated",
        "- **Declared to resolved:** 50m",
    ]


def test_identified_is_the_status_when_it_came_before_any_confirmation() -> None:
    incident = make_incident().moved_to(Status.IDENTIFIED, at(5), update(Status.IDENTIFIED, 5, "x"))
    incident = incident.with_hypothesis("h", "UBOB", at(6)).with_hypothesis_state(
        1, HypothesisState.CONFIRMED, "UBOB", at(7)
    )
    summary = sections_of(draft(incident, []))["Summary"]
    assert "- **Identified:** 2026-11-25 14:05 UTC (status Identified), 5m after declared" in summary


def test_milestones_not_reached_say_so() -> None:
    markdown = draft(make_incident(), [], messages=[], ticks={})
    summary = sections_of(markdown)
    assert "- **Severity:** SEV2 (unchanged since declared)" in summary["Summary"]
    for milestone in ("Identified", "Mitigated", "Resolved"):
        assert f"- **{milestone}:** not reached" in summary["Summary"]
    assert "Declared to resolved" not in summary["Summary"]
    assert summary["Impact"] == "No update was posted."
    assert summary["Timeline"] == "No events were recorded."
    assert summary["Evidence"] == "### Notes\n\nNone.\n\n### Messages added to the timeline\n\nNone."
    assert summary["Hypotheses"] == "None were proposed."
    assert summary["Root cause"] == "Not determined."
    assert summary["Mitigations and checklist items done"] == "No checklist items were ticked."
    assert summary["Verification"] == "No Verification checklist was posted."
    assert summary["Follow-ups"] == "None recorded."


def test_postmortem_impact_is_the_last_update() -> None:
    impact = sections_of(draft(*recorded()))["Impact"]
    assert impact == "\\~5% of checkouts failing\n\n_As of the last update (Monitoring), Alice, 14:35 UTC._"


def test_postmortem_timeline_is_the_trace_view_in_a_fence_no_line_can_close() -> None:
    incident, events = recorded()
    timeline = sections_of(draft(incident, events))["Timeline"]
    fence, *lines, closing = timeline.split("\n")[2:]
    assert fence == "````text" and closing == "````"  # the note holds a run of three backticks
    assert lines == trace_lines(events, {i.id: i.text for m in MESSAGES for s in m.sections for i in s.items},
                                name, plain=True)
    assert lines[0] == "14:00:00 │ Dana         │ Declared SEV2: Checkout *down* | R&D"
    assert lines[4] == '14:03:00 │ Bob          │ ticked "How many users?"'
    assert lines[5] == "14:05:00 │ Alice        │ Error rate up since 13:58 ```x``` Carol check"
    assert lines[6] == (
        f'14:06:00 │ Carol        │ added evidence: "inventory: connection refused" (from Bob, {LINK})'
    )
    assert lines[-1] == "14:50:00 │ Alice        │ Resolved"
    assert len(lines) == len(events)


def test_postmortem_evidence_lists_notes_and_added_messages() -> None:
    evidence = sections_of(draft(*recorded()))["Evidence"]
    assert evidence == (
        "### Notes\n\n"
        "- Alice, 14:05 UTC: Error rate up since 13:58 \\`\\`\\`x\\`\\`\\` Carol check\n\n"
        "### Messages added to the timeline\n\n"
        f"- Carol, 14:06 UTC, added: “inventory: connection refused” (written by Bob, [message]({LINK}))"
    )


def test_postmortem_hypotheses_and_root_cause() -> None:
    sections = sections_of(draft(*recorded()))
    assert sections["Hypotheses"].split("\n") == [
        "- **H1** (Ruled out): Deploy exhausts the DB pool "
        "(proposed by Bob, 14:08 UTC; ruled out by Alice, 14:15 UTC)",
        "- **H2** (Confirmed): Inventory service unreachable "
        "(proposed by Carol, 14:09 UTC; confirmed by Carol, 14:18 UTC)",
    ]
    assert sections["Root cause"] == "**H2**: Inventory service unreachable (confirmed by Carol, 14:18 UTC)"


def test_postmortem_lists_ticked_items_by_section_and_verification_done_and_open() -> None:
    sections = sections_of(draft(*recorded()))
    assert sections["Mitigations and checklist items done"] == (
        "### Impact Assessment\n\n"
        "- [x] How many users? (Bob, 14:03 UTC)\n\n"
        "### Rollback\n\n"
        "- [x] Rollback to previous version (Alice, 14:12 UTC)\n"
        "- [x] Restore from database backup (Carol, 14:14 UTC)"
    )
    assert sections["Verification"] == (
        "1 done, 1 still open.\n\n"
        "- [x] Error rate decreased (Bob, 14:40 UTC)\n"
        "- [ ] Latency normalized"
    )


def test_postmortem_follow_ups() -> None:
    followups = sections_of(draft(*recorded()))["Follow-ups"]
    assert followups == "- Alert on pool usage \\> 80% (Carol, 14:45 UTC)"


def test_postmortem_dates_times_on_another_day() -> None:
    incident, events = recorded()
    incident = incident.with_followup("later", "UBOB", at(60 * 24))
    followups = sections_of(draft(incident, events))["Follow-ups"]
    assert followups.endswith("- later (Bob, 2026-11-26 14:00 UTC)")
