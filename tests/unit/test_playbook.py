"""The built-in playbook matches the production-debugging seed; user files merge over it or fail clearly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.models import Phase, Severity, format_duration, parse_duration
from bot.playbook import ITEM_MAX_CHARS, Playbook, PlaybookError, load_playbook

# Verbatim from the production-debugging playbook (the seed of the built-in playbook).
SEED_IMPACT_ASSESSMENT = [
    "How many users are affected?",
    "What percentage of requests are failing?",
    "Is the problem getting worse?",
    "What's the business impact? (revenue, reputation)",
    "Which features/services are affected?",
    "When did it start? (correlate with events)",
]
SEED_QUICK_MITIGATIONS = {
    "Traffic Management": [
        "Route traffic away from failing service",
        "Enable maintenance page",
        "Reduce traffic via feature flag",
    ],
    "Rollback": [
        "Rollback to previous version",
        "Revert recent config change",
        "Restore from database backup",
    ],
    "Circuit Breaking": [
        "Disable failing feature",
        "Return cached/stale data",
        "Failover to backup system",
    ],
    "Scaling": [
        "Scale up resources",
        "Add capacity",
        "Clear caches",
    ],
}
SEED_SEVERITY_TABLE = {
    Severity.SEV1: ("SEV1", "Complete outage, all users affected", "All hands, immediate escalation"),
    Severity.SEV2: ("SEV2", "Major feature broken, many users", "Dedicated team, page oncall"),
    Severity.SEV3: ("SEV3", "Partial impact, workaround exists", "Normal priority investigation"),
    Severity.SEV4: ("SEV4", "Minor issue, few users affected", "Standard bug process"),
}
SEED_VERIFICATION = [
    "Error rate decreased",
    "Latency normalized",
    "User reports stopped",
    "Metrics match baseline",
    "No new issues introduced",
]
SEED_CHECKLISTS = [
    ("Impact Assessment", Phase.ASSESS, SEED_IMPACT_ASSESSMENT),
    *((title, Phase.MITIGATE, items) for title, items in SEED_QUICK_MITIGATIONS.items()),
]


@pytest.fixture(scope="module")
def builtin() -> Playbook:
    return load_playbook()


def _checklists(playbook: Playbook, severity: Severity) -> list[tuple[str, Phase, list[str]]]:
    return [(c.title, c.phase, list(c.items)) for c in playbook.severity(severity).checklists]


def _item_count(playbook: Playbook, severity: Severity) -> int:
    return sum(len(c.items) for c in playbook.severity(severity).checklists)


# -- the built-in playbook -------------------------------------------------------------------


@pytest.mark.parametrize("severity", [Severity.SEV1, Severity.SEV2])
def test_sev1_and_sev2_carry_the_whole_seed_checklist(builtin: Playbook, severity: Severity) -> None:
    assert _checklists(builtin, severity) == SEED_CHECKLISTS
    assert _item_count(builtin, severity) == 6 + 12


@pytest.mark.parametrize("severity", [Severity.SEV1, Severity.SEV2])
def test_sev1_and_sev2_group_the_mitigations_in_seed_order(builtin: Playbook, severity: Severity) -> None:
    sections = builtin.severity(severity).sections_by_phase()
    assert list(sections) == [Phase.ASSESS, Phase.MITIGATE]
    assert [s.title for s in sections[Phase.ASSESS]] == ["Impact Assessment"]
    assert [s.title for s in sections[Phase.MITIGATE]] == list(SEED_QUICK_MITIGATIONS)
    assert {s.title: [i.text for i in s.items] for s in sections[Phase.MITIGATE]} == SEED_QUICK_MITIGATIONS


@pytest.mark.parametrize("severity", list(Severity))
def test_severity_table_is_verbatim_from_the_seed(builtin: Playbook, severity: Severity) -> None:
    spec = builtin.severity(severity)
    assert (spec.label, spec.description, spec.response) == SEED_SEVERITY_TABLE[severity]


def test_verification_has_the_five_seed_items(builtin: Playbook) -> None:
    assert builtin.verification.title == "Verification"
    assert builtin.verification.phase is Phase.VERIFY
    assert builtin.verification.items == SEED_VERIFICATION


@pytest.mark.parametrize("severity", [Severity.SEV3, Severity.SEV4])
def test_lower_severities_have_shorter_lists_taken_from_the_seed(
    builtin: Playbook, severity: Severity
) -> None:
    count = _item_count(builtin, severity)
    assert 0 < count < _item_count(builtin, Severity.SEV2)
    seed_by_title = {title: items for title, _, items in SEED_CHECKLISTS}
    seed_phase = {title: phase for title, phase, _ in SEED_CHECKLISTS}
    for title, phase, items in _checklists(builtin, severity):
        assert items, title
        assert phase is seed_phase[title]
        assert set(items) <= set(seed_by_title[title]), title


def test_sev3_and_sev4_lists_differ(builtin: Playbook) -> None:
    assert _checklists(builtin, Severity.SEV3) != _checklists(builtin, Severity.SEV4)


def test_default_update_cadence(builtin: Playbook) -> None:
    every = {s: builtin.severity(s).update_every for s in Severity}
    assert every == {
        Severity.SEV1: timedelta(minutes=15),
        Severity.SEV2: timedelta(minutes=30),
        Severity.SEV3: timedelta(hours=1),
        Severity.SEV4: timedelta(hours=4),
    }
    assert builtin.digest_every == timedelta(hours=1)


def test_every_builtin_item_fits_a_slack_option(builtin: Playbook) -> None:
    specs = [builtin.verification] + [c for s in Severity for c in builtin.severity(s).checklists]
    assert all(0 < len(text) <= ITEM_MAX_CHARS for spec in specs for text in spec.items)


def test_items_keep_the_same_id_across_severities(builtin: Playbook) -> None:
    ids = {}
    for severity in Severity:
        for section in builtin.severity(severity).sections_by_phase().values():
            for s in section:
                for item in s.items:
                    assert ids.setdefault((s.title, item.text), item.id) == item.id


# -- user overrides ----------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_override_changes_only_the_given_key(tmp_path: Path, builtin: Playbook) -> None:
    loaded = load_playbook(_write(tmp_path, "severities:\n  sev2:\n    update_every: 4s\n"))

    assert loaded.severity(Severity.SEV2).update_every == timedelta(seconds=4)
    expected = builtin.model_dump()
    expected["severities"]["sev2"]["update_every"] = "4s"  # Duration dumps as text
    assert loaded.model_dump() == expected


def test_override_replaces_a_severitys_checklists(tmp_path: Path, builtin: Playbook) -> None:
    path = _write(
        tmp_path,
        "severities:\n  sev4:\n    checklists:\n      - title: Triage\n        items: [Open a ticket]\n",
    )
    loaded = load_playbook(path)

    assert _checklists(loaded, Severity.SEV4) == [("Triage", Phase.ASSESS, ["Open a ticket"])]
    for severity in (Severity.SEV1, Severity.SEV2, Severity.SEV3):
        assert loaded.severity(severity) == builtin.severity(severity)


def test_an_empty_user_file_leaves_the_builtin_playbook(tmp_path: Path, builtin: Playbook) -> None:
    assert load_playbook(_write(tmp_path, "")) == builtin


def test_an_item_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    item = "x" * ITEM_MAX_CHARS
    path = _write(
        tmp_path, f"severities:\n  sev2:\n    checklists:\n      - title: T\n        items: ['{item}']\n"
    )
    assert load_playbook(path).severity(Severity.SEV2).checklists[0].items == [item]


_LONG_ITEM = "x" * (ITEM_MAX_CHARS + 1)
# 75 characters as typed, 79 once `&` is escaped to `&amp;`.
_AMP_ITEM = "Q&A " + "x" * (ITEM_MAX_CHARS - 4)
assert len(_AMP_ITEM) == ITEM_MAX_CHARS


def _one_checklist(items: str) -> str:
    return f"severities:\n  sev2:\n    checklists:\n      - title: T\n        items: {items}\n"


INVALID_PLAYBOOKS = [
    pytest.param(
        "severities:\n  sev9:\n    update_every: 5m\n",
        "severities.sev9",
        "unknown severity",
        id="unknown-severity",
    ),
    pytest.param(
        "severities:\n  sev2:\n    update_every: 4x\n",
        "severities.sev2.update_every",
        "invalid duration",
        id="bad-duration",
    ),
    pytest.param(
        "severities:\n  sev2:\n    update_every: 0s\n",
        "severities.sev2.update_every",
        "longer than zero",
        id="zero-duration",
    ),
    pytest.param(
        "severities:\n  sev2:\n    update_every: 0\n",
        "severities.sev2.update_every",
        "longer than zero",
        id="zero-seconds",
    ),
    pytest.param(
        _one_checklist("[]"), "severities.sev2.checklists.0.items", "at least 1 item", id="empty-items"
    ),
    pytest.param(
        _one_checklist(f"['{_LONG_ITEM}']"),
        "severities.sev2.checklists.0.items",
        "longer than Slack allows",
        id="item-too-long",
    ),
    pytest.param(
        _one_checklist(f"['{_AMP_ITEM}']"),
        "severities.sev2.checklists.0.items",
        "longer than Slack allows",
        id="item-too-long-once-escaped",
    ),
    pytest.param(
        _one_checklist("[ok, ok]"), "severities.sev2.checklists.0.items", "listed twice", id="duplicate-item"
    ),
    pytest.param(
        "verification:\n  title: V\n  items: []\n",
        "verification.items",
        "at least 1 item",
        id="empty-verification",
    ),
    pytest.param(
        "severities:\n  sev2:\n    colour: red\n", "severities.sev2.colour", "unknown key", id="unknown-key"
    ),
    pytest.param("digest_evry: 1h\n", "digest_evry", "unknown key", id="unknown-top-level-key"),
    pytest.param("severities: [sev1]\n", "severities", "must be a mapping", id="severities-not-a-mapping"),
    pytest.param(
        "severities:\n  sev2: 5\n", "severities.sev2", "must be a mapping", id="severity-not-a-mapping"
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), INVALID_PLAYBOOKS)
def test_invalid_playbook_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert f": {key}: " in message
    assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("- sev1\n- sev2\n", "must be a mapping", id="list"),
        pytest.param("just words\n", "must be a mapping", id="scalar"),
        pytest.param("severities: {sev2: [\n", "not valid YAML", id="broken-yaml"),
    ],
)
def test_unusable_file_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_missing_file_names_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "playbook.yml"
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "cannot read" in str(caught.value)


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
    ],
)
def test_duration_round_trip(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == text
    assert parse_duration(format_duration(expected)) == expected


def test_duration_formats_normalised() -> None:
    assert format_duration(parse_duration("90m")) == "1h30m"
    assert parse_duration(" 15M ") == timedelta(minutes=15)
    assert parse_duration(45) == timedelta(seconds=45)


@pytest.mark.parametrize(
    "bad", ["4x", "", "m", "1.5h", "1h 30m", "-5m", "0s", "0m0s", 0, -1, 1.5, True, None]
)
def test_invalid_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)
