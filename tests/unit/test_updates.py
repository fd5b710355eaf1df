"""The Incident Update Template, the update modal and the messages around updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.blocks import updates
from bot.models import Incident, Severity, Status, StatusUpdate
from bot.playbook import load_playbook
from bot.service import UpdateDraft, validate_update

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
PLAYBOOK = load_playbook()
SEV2 = PLAYBOOK.severity(Severity.SEV2)


def incident(**changes: object) -> Incident:
    base = Incident(
        id="INC-7",
        number=7,
        severity=Severity.SEV2,
        title="Checkout requests failing",
        declared_by="U1",
        commander="U1",
        declared_at=T0,
        updated_at=T0,
        origin_channel="C0GENERAL",
        channel_id="C0INC",
        status_changed_at={Status.INVESTIGATING: T0},
        next_update_due=T0 + timedelta(minutes=30),
    )
    return base.model_copy(update=changes)


def update(**changes: object) -> StatusUpdate:
    base = StatusUpdate(
        status=Status.IDENTIFIED,
        impact="~5% of checkout requests failing",
        current_state="Identified database connection issue, deploying fix",
        next_update=timedelta(minutes=15),
        posted_by="U2",
        posted_at=T0 + timedelta(minutes=10),
    )
    return base.model_copy(update=changes)


def texts(rendered: updates.Rendered) -> str:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(rendered.block_dicts())
    return "\n".join(found)


def test_update_has_the_template_shape_in_order() -> None:
    body = texts(updates.status_update(incident(), SEV2, update()))
    assert "*INC-7 · SEV2 · Checkout requests failing*" in body
    lines = [line for line in body.splitlines() if line.startswith("*") and ":*" in line]
    assert lines == [
        "*Status:* Identified",
        "*Impact:* ~5% of checkout requests failing",
        "*Current state:* Identified database connection issue, deploying fix",
        "*Next update:* 15 minutes (at 14:25 UTC)",
    ]


def test_user_text_in_an_update_pings_nobody() -> None:
    rendered = updates.status_update(
        incident(title="<!here> & co"),
        SEV2,
        update(impact="<!channel> everyone", current_state="ask <@U123> & <#C1>"),
    )
    body = texts(rendered) + rendered.text
    for raw in ("<!channel>", "<@U123>", "<!here>", "<#C1>"):
        assert raw not in body
    assert "&lt;!channel&gt; everyone" in body
    assert "ask &lt;@U123&gt; &amp; &lt;#C1&gt;" in body


def test_a_resolved_update_promises_no_next_update() -> None:
    body = texts(updates.status_update(incident(), SEV2, update(status=Status.RESOLVED)))
    assert "*Next update:* none, the incident is resolved" in body


def test_validation_names_each_bad_field() -> None:
    assert (
        validate_update(UpdateDraft(status="Identified", impact="x", current_state="y", next_update="15m"))
        == {}
    )
    errors = validate_update(
        UpdateDraft(status="Fixed", impact="   ", current_state="y" * 1501, next_update="soon")
    )
    assert set(errors) == {"status", "impact", "current_state", "next_update"}
    assert "1501" in errors["current_state"]


def test_modal_offers_the_severity_cadence_even_when_unusual() -> None:
    spec = SEV2.model_copy(update={"update_every": timedelta(seconds=4)})
    view = updates.update_modal(incident(), spec)
    data = view.to_dict()
    next_block = next(b for b in data["blocks"] if b.get("block_id") == "next_update")
    values = [o["value"] for o in next_block["element"]["options"]]
    assert values[0] == "4s" and "15m" in values and "1h" in values
    assert next_block["element"]["initial_option"]["value"] == "4s"
    View(**data).validate_json()
    for block in data["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


def test_modal_is_prefilled_from_the_previous_update() -> None:
    view = updates.update_modal(incident(status=Status.IDENTIFIED, last_update=update()), SEV2).to_dict()
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id["status"]["element"]["initial_option"]["value"] == "Identified"
    assert by_id["impact"]["element"]["initial_value"] == "~5% of checkout requests failing"
    assert by_id["next_update"]["element"]["initial_option"]["value"] == "30m"


def test_status_reply_says_how_overdue() -> None:
    now = T0 + timedelta(minutes=42)
    reply = updates.status_reply(incident(), SEV2, now)
    assert "overdue by 12m" in reply
    assert "Open for* 42m" in reply
    assert "<@U1>" in reply


def test_resolution_gives_durations_and_open_verification_items() -> None:
    resolved = incident(
        status=Status.RESOLVED,
        status_changed_at={
            Status.INVESTIGATING: T0,
            Status.IDENTIFIED: T0 + timedelta(minutes=12),
            Status.MONITORING: T0 + timedelta(minutes=45),
            Status.RESOLVED: T0 + timedelta(hours=2, minutes=5),
        },
    )
    body = texts(updates.resolution(resolved, SEV2, ["Latency normalized"]))
    assert "Time to identified: 12m · to monitoring: 45m · to resolved: 2h 5m" in body
    assert "Verification items still open:*\n• Latency normalized" in body
    never = texts(updates.resolution(resolved, SEV2, None))
    assert "never run" in never


def test_digest_lists_most_severe_first_and_flags_overdue() -> None:
    now = T0 + timedelta(hours=1)
    sev1 = incident(id="INC-9", severity=Severity.SEV1, next_update_due=now + timedelta(minutes=5))
    pairs = [(incident(), SEV2), (sev1, PLAYBOOK.severity(Severity.SEV1))]
    body = texts(updates.digest(pairs, now))
    assert body.index("INC-9") < body.index("INC-7")
    assert "overdue by 30m" in body and "in 5m" in body


def test_digest_of_many_incidents_stays_within_slack_limits() -> None:
    many = [(incident(id=f"INC-{n}", title="t" * 150), SEV2) for n in range(100)]
    rendered = updates.digest(many, T0)
    for block in rendered.block_dicts():
        assert len(block["text"]["text"]) <= 3000
    assert "…and 60 more." in texts(rendered)
