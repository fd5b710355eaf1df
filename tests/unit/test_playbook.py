"""The built-in playbook matches the production-debugging seed; user files merge over it or fail clearly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.models import Phase, Severity, format_duration, item_id, parse_duration
from bot.playbook import (
    ITEM_MAX_CHARS,
    Permission,
    Playbook,
    PlaybookError,
    RunbookSpec,
    load_playbook,
    merge_playbook,
)
from bot.text import escape_mrkdwn

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
# Evidence Gathering: the metrics to check, verbatim.
SEED_METRICS = {
    "Request Metrics": [
        "Request rate (is traffic unusual?)",
        "Error rate (4xx, 5xx)",
        "Latency percentiles (p50, p95, p99)",
    ],
    "Resource Metrics": ["CPU usage", "Memory usage", "Disk I/O", "Network I/O"],
    "Application Metrics": [
        "Queue depths",
        "Connection pool usage",
        "Cache hit rates",
        "Database query times",
    ],
    "Correlation": [
        "Plot metrics vs. deployment times",
        "Plot metrics vs. traffic changes",
        "Compare healthy vs. unhealthy instances",
    ],
}
# Common Production Issues: symptoms and investigation steps, verbatim but for the backticks.
SEED_RUNBOOKS = {
    "memory": (
        ["OOM kills", "Increasing memory over time", "GC pauses"],
        [
            "Check memory metrics trend",
            "Take heap dump (if safe)",
            "Analyze object retention",
            "Check for missing cleanup",
        ],
    ),
    "connections": (
        ['"Connection refused" errors', "Timeouts", "Increasing latency"],
        [
            "Check connection pool metrics",
            "Count open connections: `netstat -an | grep ESTABLISHED | wc -l`",
            "Check for connection leaks",
            "Verify pool size vs load",
        ],
    ),
    "database": (
        ["Slow queries", "Timeouts", "Lock contention"],
        [
            "Check slow query log",
            "EXPLAIN problematic queries",
            "Check for table locks",
            "Monitor connection count",
            "Check replication lag",
        ],
    ),
    "external": (
        ["Timeout errors", "HTTP 5xx from dependency", "Partial failures"],
        [
            "Check dependency status page",
            "Test direct connectivity",
            "Check SSL certificate expiry",
            "Verify credentials still valid",
            "Check rate limits",
        ],
    ),
}


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
    texts = [text for spec in specs for text in spec.items]
    texts += [i.text for phase in Phase for s in builtin.phase_sections(phase) for i in s.items]
    texts += [step for runbook in builtin.runbooks.values() for step in runbook.steps]
    assert len(texts) > 60
    assert all(0 < len(escape_mrkdwn(text)) <= ITEM_MAX_CHARS for text in texts)


def test_items_keep_the_same_id_across_severities(builtin: Playbook) -> None:
    ids = {}
    for severity in Severity:
        for section in builtin.severity(severity).sections_by_phase().values():
            for s in section:
                for item in s.items:
                    assert ids.setdefault((s.title, item.text), item.id) == item.id


def _texts(playbook: Playbook, phase: Phase) -> dict[str, list[str]]:
    return {s.title: [i.text for i in s.items] for s in playbook.phase_sections(phase)}


def test_investigate_carries_the_seeds_evidence_gathering(builtin: Playbook) -> None:
    checklists = _texts(builtin, Phase.INVESTIGATE)
    assert list(checklists) == [
        "Log Analysis",
        "Request Metrics",
        "Resource Metrics",
        "Application Metrics",
        "Correlation",
        "Trace Analysis",
    ]
    assert {title: checklists[title] for title in SEED_METRICS} == SEED_METRICS
    assert "Find the first occurrence of the error" in checklists["Log Analysis"]
    assert any("one failing request" in item for item in checklists["Trace Analysis"])


def test_validate_carries_the_seeds_safe_investigation_techniques(builtin: Playbook) -> None:
    checklists = _texts(builtin, Phase.VALIDATE)
    assert list(checklists) == ["Read-Only Operations", "Feature Flags for Debugging", "Canary Debugging"]
    read_only = " ".join(checklists["Read-Only Operations"])
    assert "read-only queries" in read_only
    for statement in ("UPDATE", "DELETE", "TRUNCATE", "DROP", "ALTER"):
        assert statement in read_only
    flags = checklists["Feature Flags for Debugging"]
    assert any("verbose logging" in i and "specific requests" in i for i in flags)
    assert any("Disable the suspected" in i for i in flags)
    assert any("1% of traffic" in i for i in checklists["Canary Debugging"])


def test_fix_is_a_minimal_fix_and_a_staged_rollout(builtin: Playbook) -> None:
    checklists = _texts(builtin, Phase.FIX)
    assert list(checklists) == ["Minimal Fix", "Staged Rollout"]
    assert "minimal fix" in checklists["Minimal Fix"][0]
    rollout = checklists["Staged Rollout"]
    assert "canary first" in rollout[0] and "Watch" in rollout[1] and "Widen" in rollout[2]


def test_phase_checklists_know_their_phase_and_other_phases_have_none(builtin: Playbook) -> None:
    assert list(builtin.phase_checklists) == [Phase.INVESTIGATE, Phase.VALIDATE, Phase.FIX]
    for phase, specs in builtin.phase_checklists.items():
        assert all(spec.phase is phase for spec in specs)
    for phase in (Phase.ASSESS, Phase.MITIGATE, Phase.HYPOTHESIZE, Phase.VERIFY, Phase.POSTMORTEM):
        assert builtin.phase_sections(phase) == []


def test_phase_sections_carry_item_ids_from_title_and_text(builtin: Playbook) -> None:
    for section in builtin.phase_sections(Phase.VALIDATE):
        assert [i.id for i in section.items] == [item_id(section.title, i.text) for i in section.items]


def test_runbooks_are_the_seeds_common_production_issues(builtin: Playbook) -> None:
    assert {name: (r.symptoms, r.steps) for name, r in builtin.runbooks.items()} == SEED_RUNBOOKS
    titles = {name: r.title for name, r in builtin.runbooks.items()}
    assert titles == {
        "memory": "Memory leak",
        "connections": "Connection pool exhaustion",
        "database": "Database performance",
        "external": "External dependency failure",
    }


def test_a_runbook_is_found_by_name_and_posts_its_steps_as_one_section(builtin: Playbook) -> None:
    runbook = builtin.runbook("database")
    assert runbook is not None
    assert builtin.runbook(" Database ") == runbook
    assert builtin.runbook("dns") is None
    section = runbook.section()
    assert section.title == "Database performance"
    assert [i.text for i in section.items] == runbook.steps
    assert [i.id for i in section.items] == [item_id("Database performance", t) for t in runbook.steps]


def test_roles_and_permissions(builtin: Playbook) -> None:
    assert builtin.roles == {
        "commander": "Incident commander",
        "comms": "Communications lead",
        "scribe": "Scribe",
    }
    assert builtin.role_label("comms") == "Communications lead"
    assert builtin.role_label("Commander") == "Incident commander"
    assert builtin.role_label("owner") is None
    assert builtin.permissions.resolve is Permission.MEMBER
    assert builtin.permissions.lower_severity is Permission.MEMBER


def test_no_builtin_item_id_is_shared_outside_the_severities(builtin: Playbook) -> None:
    sections = [builtin.verification.section()]
    sections += [s for phase in Phase for s in builtin.phase_sections(phase)]
    sections += [r.section() for r in builtin.runbooks.values()]
    ids = [i.id for s in sections for i in s.items]
    severity_ids = {
        i.id for sev in Severity for c in builtin.severity(sev).checklists for i in c.section().items
    }
    assert len(set(ids)) == len(ids)
    assert not set(ids) & severity_ids


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


def _phase_checklist(phase: str, items: str, extra: str = "") -> str:
    more = f"      {extra}\n" if extra else ""
    return f"phase_checklists:\n  {phase}:\n    - title: T\n{more}      items: {items}\n"


def _runbook(name: str, symptoms: str = "[a]", steps: str = "[b]") -> str:
    return f"runbooks:\n  '{name}': {{title: T, symptoms: {symptoms}, steps: {steps}}}\n"


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
    pytest.param(
        _one_checklist("[a, b]") + "      - title: T\n        items: [b]\n",
        "severities.sev2.checklists.1.items",
        "'b' is also in severities.sev2.checklists.0.items under the title 'T'",
        id="same-item-twice-in-one-severity",
    ),
    # phase_checklists
    pytest.param(
        "phase_checklists:\n  triage: []\n",
        "phase_checklists.triage",
        "unknown phase (valid: assess, mitigate, investigate",
        id="unknown-phase",
    ),
    pytest.param(
        "phase_checklists: [fix]\n", "phase_checklists", "must be a mapping", id="phases-not-a-mapping"
    ),
    pytest.param(
        "phase_checklists:\n  fix: {title: T, items: [a]}\n",
        "phase_checklists.fix",
        "valid list",
        id="phase-not-a-list",
    ),
    pytest.param(
        _phase_checklist("fix", "[a]", "phase: validate"),
        "phase_checklists.fix.0.phase",
        "is validate but the checklist is listed under fix",
        id="phase-disagrees-with-key",
    ),
    pytest.param(
        _phase_checklist("fix", "[]"),
        "phase_checklists.fix.0.items",
        "at least 1 item",
        id="phase-empty-items",
    ),
    pytest.param(
        _phase_checklist("fix", f"['{_LONG_ITEM}']"),
        "phase_checklists.fix.0.items",
        "longer than Slack allows",
        id="phase-item-too-long",
    ),
    pytest.param(
        _phase_checklist("fix", "[ok, ok]"),
        "phase_checklists.fix.0.items",
        "listed twice",
        id="phase-duplicate",
    ),
    pytest.param(
        _phase_checklist("fix", "[a]", "colour: red"),
        "phase_checklists.fix.0.colour",
        "unknown key",
        id="phase-unknown-key",
    ),
    pytest.param(
        "phase_checklists:\n  fix:\n    - title: Canary Debugging\n"
        "      items: [Deploy a debug version (verbose logging) to about 1% of traffic]\n",
        "phase_checklists.fix.0.items",
        "is also in phase_checklists.validate.2.items under the title 'Canary Debugging'",
        id="same-item-in-two-phases",
    ),
    pytest.param(
        "phase_checklists:\n  mitigate:\n    - title: Rollback\n      items: [Revert recent config change]\n",
        "phase_checklists.mitigate.0.items",
        "is also in severities.sev1.checklists.2.items under the title 'Rollback'",
        id="phase-item-also-in-a-severity",
    ),
    # runbooks
    pytest.param(
        _runbook("Memory Leak"),
        "runbooks.Memory Leak",
        "a runbook name is lowercase letters, digits and '-', at most 30 characters",
        id="runbook-name-not-lowercase",
    ),
    pytest.param(
        _runbook("x" * 31), f"runbooks.{'x' * 31}", "at most 30 characters", id="runbook-name-too-long"
    ),
    pytest.param("runbooks: [memory]\n", "runbooks", "must be a mapping", id="runbooks-not-a-mapping"),
    pytest.param(
        "runbooks:\n  dns: {title: DNS, symptoms: [NXDOMAIN]}\n",
        "runbooks.dns.steps",
        "Field required",
        id="runbook-without-steps",
    ),
    pytest.param(_runbook("dns", steps="[]"), "runbooks.dns.steps", "at least 1 item", id="runbook-no-steps"),
    pytest.param(
        _runbook("dns", steps=f"['{_AMP_ITEM}']"),
        "runbooks.dns.steps",
        "step 1 is longer than Slack allows",
        id="runbook-step-too-long",
    ),
    pytest.param(
        _runbook("dns", steps="[a, a]"),
        "runbooks.dns.steps",
        "a step is listed twice",
        id="runbook-step-twice",
    ),
    pytest.param(
        _runbook("dns", symptoms="['', b]"), "runbooks.dns.symptoms", "symptom 1 is empty", id="empty-symptom"
    ),
    pytest.param(
        _runbook("dns", symptoms=f"['{_LONG_ITEM}']"),
        "runbooks.dns.symptoms",
        "symptom 1 is longer than 75 characters",
        id="symptom-too-long",
    ),
    pytest.param(
        "runbooks:\n  dns: {title: DNS, symptoms: [a], steps: [b], owner: me}\n",
        "runbooks.dns.owner",
        "unknown key",
        id="runbook-unknown-key",
    ),
    pytest.param(
        "runbooks:\n  verify: {title: Verification, symptoms: [a], steps: [Error rate decreased]}\n",
        "runbooks.verify.steps",
        "is also in verification.items under the title 'Verification'",
        id="runbook-step-also-in-verification",
    ),
    # roles
    pytest.param(
        "roles:\n  Comms: Lead\n", "roles.Comms", "a role key is a lowercase letter", id="role-key-case"
    ),
    pytest.param("roles:\n  1st: Lead\n", "roles.1st", "a role key", id="role-key-starts-with-a-digit"),
    pytest.param(
        "roles:\n  " + "r" * 21 + ": Lead\n", "roles." + "r" * 21, "at most 20", id="role-key-too-long"
    ),
    pytest.param("roles:\n  comms: '  '\n", "roles.comms", "at least 1 character", id="role-label-empty"),
    pytest.param(
        "roles:\n  comms: " + "L" * 41 + "\n",
        "roles.comms",
        "at most 40 characters",
        id="role-label-too-long",
    ),
    pytest.param("roles: [commander]\n", "roles", "must be a mapping", id="roles-not-a-mapping"),
    # permissions
    pytest.param(
        "permissions:\n  resolve: admin\n",
        "permissions.resolve",
        "'member' or 'commander'",
        id="permission-unknown-value",
    ),
    pytest.param(
        "permissions:\n  close: member\n", "permissions.close", "unknown key", id="permission-unknown"
    ),
    pytest.param(
        "permissions: commander\n", "permissions", "must be a mapping", id="permissions-not-a-mapping"
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


def test_each_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "roles:\n  Comms: Lead\n"
        "phase_checklists:\n  fix:\n    - {title: Rollback, items: [Revert recent config change]}\n"
        "    - {title: Rollback, items: [Rollback to previous version]}\n",
    )
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["roles.Comms"]
    # The id check runs once every key is valid: both repeats are named, one line each.
    with pytest.raises(PlaybookError) as caught:
        load_playbook(_write(tmp_path, "\n".join(path.read_text().splitlines()[2:]) + "\n"))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "phase_checklists.fix.0.items",
        "phase_checklists.fix.1.items",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_a_playbook_without_the_commander_role_is_refused(builtin: Playbook) -> None:
    data = builtin.model_dump(mode="json")
    data["roles"] = {"comms": "Communications lead"}
    with pytest.raises(ValidationError, match="must include the commander role"):
        Playbook.model_validate(data)


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


# -- merging the new keys ----------------------------------------------------------------------


def test_a_phase_list_replaces_that_phase_only(tmp_path: Path, builtin: Playbook) -> None:
    loaded = load_playbook(
        _write(tmp_path, "phase_checklists:\n  fix:\n    - title: Ship it\n      items: [Deploy the patch]\n")
    )
    assert _texts(loaded, Phase.FIX) == {"Ship it": ["Deploy the patch"]}
    assert loaded.phase_checklists[Phase.FIX][0].phase is Phase.FIX  # set from the key
    for phase in (Phase.INVESTIGATE, Phase.VALIDATE):
        assert loaded.phase_sections(phase) == builtin.phase_sections(phase)
    assert loaded.severities == builtin.severities


def test_an_empty_phase_list_turns_that_phases_checklists_off(tmp_path: Path, builtin: Playbook) -> None:
    loaded = load_playbook(_write(tmp_path, "phase_checklists:\n  investigate: []\n"))
    assert loaded.phase_sections(Phase.INVESTIGATE) == []
    assert loaded.phase_sections(Phase.VALIDATE) == builtin.phase_sections(Phase.VALIDATE)


def test_a_phase_without_builtin_checklists_can_get_some(tmp_path: Path) -> None:
    loaded = load_playbook(
        _write(
            tmp_path,
            "phase_checklists:\n  postmortem:\n"
            "    - {title: Postmortem, phase: postmortem, items: [Document and prevent recurrence]}\n",
        )
    )
    assert _texts(loaded, Phase.POSTMORTEM) == {"Postmortem": ["Document and prevent recurrence"]}
    assert _texts(loaded, Phase.FIX)  # the built-in phases stay


def test_runbooks_are_added_or_replaced_whole_by_name(tmp_path: Path, builtin: Playbook) -> None:
    loaded = load_playbook(
        _write(
            tmp_path,
            "runbooks:\n"
            "  dns: {title: DNS failure, symptoms: [NXDOMAIN errors], steps: [Check the resolver]}\n"
            "  memory: {title: Memory, symptoms: [OOM kills], steps: [Open the heap dashboard]}\n",
        )
    )
    assert list(loaded.runbooks) == ["memory", "connections", "database", "external", "dns"]
    assert loaded.runbook("dns") == RunbookSpec(
        title="DNS failure", symptoms=["NXDOMAIN errors"], steps=["Check the resolver"]
    )
    memory = loaded.runbook("memory")
    assert memory is not None and memory.steps == ["Open the heap dashboard"]
    assert loaded.runbook("database") == builtin.runbook("database")


def test_a_runbook_is_not_merged_field_by_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "runbooks:\n  memory: {steps: [Open the heap dashboard]}\n")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert f"{path}: runbooks.memory.title: Field required" in str(caught.value)


def test_roles_are_added_or_replaced_by_key(tmp_path: Path) -> None:
    loaded = load_playbook(_write(tmp_path, "roles:\n  scribe: Note taker\n  ops: Operations lead\n"))
    assert loaded.roles == {
        "commander": "Incident commander",
        "comms": "Communications lead",
        "scribe": "Note taker",
        "ops": "Operations lead",
    }
    assert loaded.role_label("ops") == "Operations lead"


def test_permissions_merge_key_by_key(tmp_path: Path) -> None:
    loaded = load_playbook(_write(tmp_path, "permissions:\n  resolve: commander\n"))
    assert loaded.permissions.resolve is Permission.COMMANDER
    assert loaded.permissions.lower_severity is Permission.MEMBER


def test_merge_leaves_its_inputs_alone() -> None:
    base = {"roles": {"commander": "IC"}, "severities": {"sev1": {"label": "SEV1"}}, "digest_every": "1h"}
    override = {"roles": {"ops": "Ops"}, "severities": {"sev1": {"label": "S1"}}, "digest_every": None}
    merged = merge_playbook(base, override, "test")
    assert merged == {
        "roles": {"commander": "IC", "ops": "Ops"},
        "severities": {"sev1": {"label": "S1"}},
        "digest_every": None,
    }
    assert base == {
        "roles": {"commander": "IC"},
        "severities": {"sev1": {"label": "SEV1"}},
        "digest_every": "1h",
    }


# Playbooks that other tests and the demo write: they must keep loading, new keys built in.
OTHER_TESTS_PLAYBOOKS = [
    "severities:\n  sev2:\n    update_every: 4s\n",
    "digest_every: null\nseverities:\n  sev2: {update_every: 2s}\n",
    "digest_every: 4s\nseverities:\n  sev1: {update_every: 5s}\n  sev2: {update_every: 5s}\n",
    "severities:\n  sev4:\n    checklists:\n      - title: Custom\n"
    "        items: [Page the owner, Check the dashboard]\n",
]


@pytest.mark.parametrize("text", OTHER_TESTS_PLAYBOOKS)
def test_other_tests_playbooks_still_load(tmp_path: Path, builtin: Playbook, text: str) -> None:
    loaded = load_playbook(_write(tmp_path, text))
    assert loaded.phase_checklists == builtin.phase_checklists
    assert loaded.runbooks == builtin.runbooks
    assert (loaded.roles, loaded.permissions) == (builtin.roles, builtin.permissions)


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
