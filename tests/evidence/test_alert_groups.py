"""An alert group's record: its episodes, triage, dismissal, declaration and the notes its
incident is owed (pure transitions), and the triage message and header line drawn from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.alert_groups import (
    AlertView,
    GroupRecord,
    TriageMessage,
    TriageState,
    group_id,
)
from bot.alerts import BUILTIN_SEVERITY_MAP
from bot.blocks import MAX_SECTION_TEXT
from bot.blocks.triage import alert_line, triage_message
from bot.ids import ActionId, AlertRef
from bot.models import Incident, Severity
from tests.evidence.alert_payloads import GROUP_KEY, alert, group, resolved

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
UID = "0123456789abcdef"


def label(severity: Severity) -> str:
    return severity.value.upper()


def view(*alerts: dict[str, object]) -> AlertView:
    return AlertView.of(group(*alerts), BUILTIN_SEVERITY_MAP)


def first(*alerts: dict[str, object]) -> GroupRecord:
    return GroupRecord.first(GROUP_KEY, UID, view(*alerts), T0)


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_firing_group_is_kept_under_its_key_hash_and_wants_a_message() -> None:
    record = first()

    assert record.id == group_id(GROUP_KEY) and len(record.id) == 16
    assert (record.state, record.episode, record.revision, record.shown) == (TriageState.TRIAGE, 1, 1, 0)
    assert record.wants_message and record.needs_work
    assert record.message_key == f"alert/{UID}/1"
    assert record.alert.severity is Severity.SEV2 and record.alert.summary == "Checkout 5xx above 5%"


def test_a_group_first_heard_of_resolved_is_kept_but_not_posted() -> None:
    record = first(resolved())

    assert not record.wants_message and not record.needs_work
    assert record.resolved_at == T0


def test_repeats_update_the_episode_in_place() -> None:
    record = first()
    again = record.notified(view(alert(), alert(fingerprint="2")), later(1), False, label)

    assert (again.episode, again.revision, again.shown) == (1, 2, 0)
    assert again.alert.alerts == 2 and again.notified_at == later(1)


def test_a_group_in_triage_that_flaps_keeps_its_episode_and_message() -> None:
    message = TriageMessage(channel="C0TRIAGE", ts="1.1")
    posted = first().posted(1, message, 1)
    gone = posted.notified(view(resolved()), later(5), False, label)
    assert (gone.episode, gone.revision, gone.resolved_at) == (1, 2, later(5))
    assert gone.message == message  # its message shows it resolved, in place

    back = gone.notified(view(), later(9), False, label)
    again = back.notified(view(resolved()), later(12), False, label).notified(view(), later(15), False, label)

    # Nobody acted on it: the same message says it fired again, and its buttons still count.
    assert (back.episode, back.state, back.message) == (1, TriageState.TRIAGE, message)
    assert back.resolved_at is None
    assert back.revision == 3 and back.needs_work and back.flapping
    assert (back.firings, back.fired_at) == (2, later(9))
    assert (again.episode, again.message, again.firings, again.fired_at) == (1, message, 3, later(15))
    assert again.message_key == f"alert/{UID}/1"


def test_a_group_first_heard_of_resolved_is_posted_when_it_fires() -> None:
    fires = first(resolved()).notified(view(), later(1), False, label)

    assert (fires.episode, fires.firings, fires.fired_at) == (1, 1, later(1))
    assert fires.wants_message and fires.needs_work and not fires.flapping


def test_a_dismissed_group_stays_quiet_until_it_fires_anew() -> None:
    dismissed = first().posted(1, TriageMessage(channel="C0TRIAGE", ts="1.1"), 1).dismissed("U0BOB", later(1))
    assert dismissed.state is TriageState.DISMISSED and dismissed.needs_work  # the message says so

    quiet = dismissed.shown_up_to(dismissed.revision)
    repeated = quiet.notified(view(alert(), alert(fingerprint="2")), later(2), False, label)
    assert repeated.state is TriageState.DISMISSED and not repeated.needs_work
    gone = repeated.notified(view(resolved()), later(3), False, label)
    assert gone.state is TriageState.DISMISSED and not gone.needs_work

    anew = gone.notified(view(), later(4), False, label)

    assert (anew.state, anew.episode, anew.dismissed_by) == (TriageState.TRIAGE, 2, None)
    assert anew.wants_message


def test_declared_as_links_the_incident_and_owes_its_timeline_a_line() -> None:
    declared = first().declared_as("INC-3", "U0ALICE", later(1))

    assert (declared.state, declared.incident_id, declared.declared_by) == (
        TriageState.DECLARED,
        "INC-3",
        "U0ALICE",
    )
    (note,) = declared.notes
    assert note.text == "Alertmanager: 1 alert firing since 13:58 UTC" and note.say is None
    assert note.id == f"alert:{UID}:1:1"


def test_a_declared_group_tells_its_open_incident_only_what_changed() -> None:
    declared = first().declared_as("INC-3", "U0ALICE", later(1)).note_applied(f"alert:{UID}:1:1")

    same = declared.notified(view(), later(2), True, label)
    assert same.notes == () and same.notified_at == later(2)

    more = same.notified(
        view(alert(), alert(fingerprint="2", incident_severity="sev1")), later(3), True, label
    )
    (note,) = more.notes
    assert note.text == (
        "Alertmanager: still firing, 2 alerts firing (was 1 alert); it asks for SEV1 (was SEV2)"
    )
    assert note.say is None and note.id == f"alert:{UID}:1:2"


def test_a_declared_group_resolving_and_firing_again_is_said_in_the_incident_channel() -> None:
    declared = first().declared_as("INC-3", "U0ALICE", later(1)).note_applied(f"alert:{UID}:1:1")

    gone = declared.notified(view(resolved(ends="2026-11-25T14:10:00Z")), later(11), True, label)
    (note,) = gone.notes
    assert note.text == "Alertmanager: resolved (1 alert resolved) at 14:10 UTC"
    assert note.say == (
        ":white_check_mark: The alert *Checkout 5xx above 5%* resolved at 2026-11-25 14:10 UTC; "
        "the incident stays open until you resolve it."
    )
    assert gone.state is TriageState.DECLARED and gone.episode == 1  # it does not resolve anything

    back = gone.note_applied(note.id).notified(view(), later(12), True, label)
    (again,) = back.notes
    assert again.text == "Alertmanager: firing again, 1 alert firing"
    assert again.say is not None and "is firing again" in again.say
    assert back.episode == 1 and back.state is TriageState.DECLARED


def test_once_its_incident_is_resolved_a_firing_group_is_a_new_episode_in_triage() -> None:
    declared = first().declared_as("INC-3", "U0ALICE", later(1))

    anew = declared.notified(view(), later(30), False, label)

    assert (anew.state, anew.episode, anew.incident_id, anew.notes) == (TriageState.TRIAGE, 2, None, ())
    assert anew.wants_message
    # Resolved notifications of a group whose incident is over change nothing else.
    quiet = declared.notified(view(resolved()), later(30), False, label)
    assert quiet.state is TriageState.DECLARED and quiet.episode == 1


def test_the_loops_bookkeeping() -> None:
    record = first()
    attempting = record.attempting(later(1)).attempting(later(2))
    assert attempting.posting_since == later(1)  # the first attempt bounds the look-up

    message = TriageMessage(channel="C0TRIAGE", ts="1.1")
    posted = attempting.backing_off(later(3)).posted(1, message, 1)
    assert (posted.message, posted.posting_since, posted.shown, posted.attempts) == (message, None, 1, 0)
    assert posted.posted(1, TriageMessage(channel="C0TRIAGE", ts="2.2"), 1).message == message
    assert record.posted(2, message, 1).message is None  # another episode's post is not this one's

    refused = record.refused_for_good("channel_not_found", 1)
    assert (refused.shown, refused.refused, refused.needs_work) == (1, "channel_not_found", False)


def test_only_links_slack_can_show_are_kept() -> None:
    unsafe = alert()
    unsafe["generatorURL"] = "javascript:alert(1)"
    assert view(unsafe).link == ""
    piped = alert()
    piped["generatorURL"] = "http://x.example/a|<!channel>"
    assert view(piped).link == ""
    assert view().link == "http://prometheus.example:9090/graph?g0.expr=x&g0.tab=1"
    assert view().dashboard == "http://alertmanager.example:9093"


def test_labels_are_bounded() -> None:
    many = alert(**{f"label{i:02d}": "v" * 500 for i in range(40)})

    labels = view(many).labels

    assert len(labels) == 20 and all(len(v) <= 200 for v in labels.values())


# -- the triage message ---------------------------------------------------------------------


def blocks_of(record: GroupRecord, incident: Incident | None = None) -> list[dict[str, object]]:
    rendered = triage_message(record, label(record.alert.severity), incident)
    return rendered.block_dicts()


def buttons(blocks: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]  # type: ignore[attr-defined]


def test_a_group_in_triage_offers_declare_at_its_severity_and_dismiss() -> None:
    record = first()

    declare, dismiss = buttons(blocks_of(record))

    assert declare["action_id"] == ActionId.ALERT_DECLARE.value and declare["style"] == "primary"
    assert declare["text"]["text"] == "Declare SEV2"  # type: ignore[index]
    assert dismiss["action_id"] == ActionId.ALERT_DISMISS.value
    ref = AlertRef.decode(str(declare["value"]))
    assert (ref.group_id, ref.uid, ref.episode, ref.severity) == (record.id, UID, 1, Severity.SEV2)
    text = json.dumps(blocks_of(record))
    for shown in ("Checkout 5xx above 5%", "2026-11-25 13:58 UTC", "1 alert firing", "`service=checkout`"):
        assert shown in text
    assert "<http://prometheus.example:9090/graph?g0.expr=x&amp;g0.tab=1|Source>" in text


def test_alert_text_is_escaped_and_the_message_stays_within_slack_limits() -> None:
    noisy = alert(summary="<!channel> & friends " + "x" * 400, team="<@U0ALICE>" + "y" * 300)
    record = GroupRecord.first(
        GROUP_KEY, UID, view(noisy, *[alert(fingerprint=str(i)) for i in range(30)]), T0
    )

    blocks = blocks_of(record)
    text = json.dumps(blocks)

    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; friends" in text
    assert "<@U0ALICE>" not in text
    for block in blocks:
        for part in [block.get("text"), *(block.get("fields") or []), *(block.get("elements") or [])]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                assert len(part["text"]) <= MAX_SECTION_TEXT


def test_declared_and_dismissed_messages_say_so_without_buttons() -> None:
    declared = first().declared_as("INC-3", "U0ALICE", later(1))
    incident = Incident.model_validate(
        {
            "id": "INC-3",
            "number": 3,
            "severity": "sev2",
            "title": "Checkout 5xx above 5%",
            "declared_by": "U0ALICE",
            "commander": "U0ALICE",
            "declared_at": later(1),
            "updated_at": later(1),
            "origin_channel": "C0TRIAGE",
            "channel_id": "C0INC3",
        }
    )
    shown = json.dumps(blocks_of(declared, incident))
    assert buttons(blocks_of(declared, incident)) == []
    assert "Declared as *INC-3* by <@U0ALICE>: <#C0INC3>" in shown

    dismissed = json.dumps(blocks_of(first().dismissed("U0BOB", later(2))))
    assert "Dismissed by <@U0BOB> at 14:02 UTC" in dismissed and "alert_declare" not in dismissed


def test_a_flapping_group_says_it_fired_again_on_its_one_message() -> None:
    gone = first().notified(view(resolved(ends="2026-11-25T14:05:00Z")), later(6), False, label)
    back = gone.notified(view(), later(9), False, label)

    firing = json.dumps(blocks_of(back))
    resolved_again = json.dumps(
        blocks_of(back.notified(view(resolved(ends="2026-11-25T14:12:00Z")), later(13), False, label))
    )

    assert "*Checkout 5xx above 5%* (firing again since 14:09 UTC)" in firing
    assert ":repeat: It has fired 2 times since 2026-11-25 14:00 UTC, resolving in between." in firing
    declare, _ = buttons(blocks_of(back))
    assert AlertRef.decode(str(declare["value"])).episode == 1  # the buttons already shown still work
    assert "(resolved at 14:12 UTC)" in resolved_again and "It has fired 2 times" in resolved_again
    assert "It has fired" not in json.dumps(blocks_of(first()))


def test_a_resolved_group_in_triage_says_when() -> None:
    record = first().notified(view(resolved(ends="2026-11-25T14:10:00Z")), later(11), False, label)

    rendered = triage_message(record, "SEV2")

    assert rendered.text.startswith("[RESOLVED] Checkout 5xx above 5%")
    assert "(resolved at 14:10 UTC)" in json.dumps(rendered.block_dicts())


def test_the_header_line_names_and_links_the_alert_within_a_limit() -> None:
    note = view(alert(summary="Checkout <b> errors")).note(GROUP_KEY)

    line = alert_line(note)
    short = alert_line(note, limit=80)

    assert line.startswith(
        ":rotating_light: *Declared from the alert* "
        "<http://prometheus.example:9090/graph?g0.expr=x&amp;g0.tab=1|Checkout &lt;b&gt; errors>"
    )
    assert "service checkout" in line and "since 2026-11-25 13:58 UTC" in line
    assert "`severity=critical`" in line
    assert len(short) <= 80 and short.count("<") == short.count(">")  # never cut inside a link
