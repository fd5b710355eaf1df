"""Alert triage on a real store: what a notification stores, the webhook's answers, Declare and
Dismiss, the notes an incident is owed, and notifications and clicks racing on a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis

from bot import keys
from bot.alert_groups import GroupRecord, TriageState
from bot.alert_store import AlertGroupStore
from bot.blocks import format as fmt
from bot.blocks.timeline import trace_lines
from bot.change_log import ChangeLog
from bot.changes import ChangeEvent, ChangeKind
from bot.effects import Say, UploadChart
from bot.errors import StaleReference, StoreUnavailable
from bot.ids import AlertRef
from bot.models import EventKind, Incident, Severity
from bot.playbook import Playbook, load_playbook
from bot.schedule_store import ScheduleStore
from bot.service import IncidentService
from bot.store import IncidentStore, ReplicaWait, connect
from bot.triage import AlertReceiver, AlertTriage
from tests.evidence.alert_payloads import alert, encoded, group, resolved

if TYPE_CHECKING:
    from tests.conftest import FakeClock

TRIAGE_CHANNEL = "C0TRIAGE"


@pytest.fixture
def playbook(tmp_path: Path) -> Playbook:
    path = tmp_path / "playbook.yml"
    path.write_text(
        "alerts:\n  severity_map:\n    warning: sev4\n"
        "services:\n  checkout:\n    queries:\n      Error rate: sum(rate(http_requests_total[1m]))\n"
    )
    return load_playbook(path)


TriageFactory = Callable[..., AlertTriage]


@pytest.fixture
def make_triage(playbook: Playbook, clock: FakeClock) -> TriageFactory:
    def make(redis: aioredis.Redis, *, changes: bool = False, charts: bool = False) -> AlertTriage:
        store = IncidentStore(redis)
        service = IncidentService(store, ScheduleStore(redis), playbook, clock)
        return AlertTriage(
            service, AlertGroupStore(store), changes=ChangeLog(store) if changes else None, charts=charts
        )

    return make


@pytest.fixture
def triage(fake_redis: aioredis.Redis, make_triage: TriageFactory) -> AlertTriage:
    return make_triage(fake_redis)


def ref_of(record: GroupRecord, severity: Severity | None = None) -> AlertRef:
    return AlertRef(
        group_id=record.id, uid=record.uid, episode=record.episode, severity=severity or record.alert.severity
    )


async def test_a_notification_is_stored_for_seven_days_and_hinted(
    triage: AlertTriage, fake_redis: aioredis.Redis, clock: FakeClock
) -> None:
    record = await triage.notified(group())

    assert await triage.groups.get(record.id) == record
    ttl = await fake_redis.pttl(keys.alert_group(record.id))
    assert timedelta(days=7) - timedelta(seconds=5) < timedelta(milliseconds=ttl) <= timedelta(days=7)
    assert await fake_redis.zscore(keys.TRIAGE_DUE, record.id) == clock().timestamp()


async def test_the_playbook_maps_the_severity(triage: AlertTriage) -> None:
    record = await triage.notified(group(alert(severity="warning")))

    assert record.alert.severity is Severity.SEV4  # the playbook's `warning: sev4`, over sev3


async def test_the_webhook_answers_400_saying_why_and_200_once_stored(triage: AlertTriage) -> None:
    receiver = AlertReceiver(triage)

    assert (await receiver.receive(b"{not json")).body == {"error": "the body is not JSON"}
    missing = await receiver.receive(json.dumps({"version": "4", "status": "firing", "alerts": []}).encode())
    assert missing.status == 400 and "missing groupKey" in str(missing.body["error"])
    old = await receiver.receive(json.dumps({"version": "3"}).encode())
    assert old.status == 400 and "version '3' is not supported" in str(old.body["error"])

    stored = await receiver.receive(encoded())

    assert stored.status == 200 and stored.body["state"] == "triage" and stored.body["episode"] == 1


async def test_a_store_that_does_not_answer_gets_503_so_alertmanager_sends_it_again(
    make_triage: TriageFactory,
) -> None:
    unreachable = connect("redis://127.0.0.1:1/0")
    try:
        answer = await AlertReceiver(make_triage(unreachable)).receive(encoded())
    finally:
        await unreachable.aclose()

    assert answer.status == 503 and "send it again" in str(answer.body["error"])


async def test_declare_declares_once_per_episode_as_the_command_would(triage: AlertTriage) -> None:
    record = await triage.notified(group())
    ref = ref_of(record)

    first = await triage.declare(ref, "U0ALICE", TRIAGE_CHANNEL)
    again = await triage.declare(ref, "U0BOB", TRIAGE_CHANNEL)

    assert first.applied and first.incident is not None
    incident = first.incident
    assert (incident.id, incident.severity, incident.declared_by) == ("INC-1", Severity.SEV2, "U0ALICE")
    assert incident.title == "Checkout 5xx above 5%" and incident.origin_channel == TRIAGE_CHANNEL
    assert incident.alert is not None and incident.alert.group_key == record.group_key
    assert incident.alert.service == "checkout" and incident.alert.labels["severity"] == "critical"
    assert not again.applied and again.record.state is TriageState.DECLARED
    assert again.incident is not None and again.incident.id == "INC-1"
    assert await triage.service.store.open_incident_ids() == ["INC-1"]
    (declared,) = await triage.service.store.timeline("INC-1")
    assert declared.text == 'Declared SEV2: Checkout 5xx above 5% (from the alert "Checkout 5xx above 5%")'
    stored = await triage.groups.get(record.id)
    assert stored is not None and stored.incident_id == "INC-1" and stored.declared_by == "U0ALICE"
    assert stored.revision > record.revision and stored.needs_work


async def test_declare_takes_the_severity_the_button_offered(triage: AlertTriage) -> None:
    record = await triage.notified(group())

    done = await triage.declare(ref_of(record, Severity.SEV1), "U0ALICE", TRIAGE_CHANNEL)

    assert done.incident is not None and done.incident.severity is Severity.SEV1


async def test_declare_brings_the_recent_changes_and_the_chart(
    fake_redis: aioredis.Redis, make_triage: TriageFactory, clock: FakeClock
) -> None:
    triage = make_triage(fake_redis, changes=True, charts=True)
    deploy = ChangeEvent(
        service="checkout", kind=ChangeKind.DEPLOY, version="v2.3.1", at=clock() - timedelta(minutes=10)
    )
    assert triage.changes is not None
    await triage.changes.record(deploy, clock())
    record = await triage.notified(group())

    done = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)

    assert done.incident is not None and done.incident.changes == (deploy,)
    works = [e.work for e in await triage.service.store.outbox(done.incident.id)]
    said = [w for w in works if isinstance(w, Say)]
    assert any("Recent changes" in w.text for w in said)
    (chart,) = [w for w in works if isinstance(w, UploadChart)]
    assert (chart.service, chart.window, chart.end, chart.by) == (
        "checkout",
        timedelta(hours=1),
        clock(),
        None,
    )


async def test_no_chart_without_prometheus_or_for_a_service_the_playbook_does_not_chart(
    fake_redis: aioredis.Redis, make_triage: TriageFactory
) -> None:
    plain = make_triage(fake_redis, charts=False)
    record = await plain.notified(group())
    done = await plain.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)
    assert done.incident is not None
    assert not any(
        isinstance(e.work, UploadChart) for e in await plain.service.store.outbox(done.incident.id)
    )

    charting = make_triage(fake_redis, charts=True)
    billing = {"alertname": "CheckoutErrors", "service": "billing"}
    other = await charting.notified(
        group(alert(service="billing"), group_key="{}:{service=billing}", commonLabels=billing)
    )
    done = await charting.declare(ref_of(other), "U0ALICE", TRIAGE_CHANNEL)
    assert done.incident is not None
    outbox = await charting.service.store.outbox(done.incident.id)
    assert not any(isinstance(e.work, UploadChart) for e in outbox)


async def test_dismiss_once_and_then_declare_is_refused(triage: AlertTriage, clock: FakeClock) -> None:
    record = await triage.notified(group())
    ref = ref_of(record)

    dismissed = await triage.dismiss(ref, "U0BOB")
    again = await triage.dismiss(ref, "U0ALICE")
    declared = await triage.declare(ref, "U0ALICE", TRIAGE_CHANNEL)

    assert dismissed.applied and dismissed.record.state is TriageState.DISMISSED
    assert (dismissed.record.dismissed_by, dismissed.record.dismissed_at) == ("U0BOB", clock())
    assert not again.applied and again.record.dismissed_by == "U0BOB"
    assert not declared.applied and declared.incident is None
    assert await triage.service.store.open_incident_ids() == []


async def test_stale_buttons_change_nothing(triage: AlertTriage) -> None:
    record = await triage.notified(group())
    await triage.dismiss(ref_of(record), "U0BOB")
    await triage.notified(group(resolved()))
    anew = await triage.notified(group())
    assert anew.episode == 2

    old = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)
    assert not old.applied and old.record.episode == 2
    assert not (await triage.dismiss(ref_of(record), "U0ALICE")).applied
    foreign = ref_of(record).model_copy(update={"uid": "another-record"})
    with pytest.raises(StaleReference):
        await triage.declare(foreign, "U0ALICE", TRIAGE_CHANNEL)
    with pytest.raises(StaleReference):
        await triage.dismiss(foreign, "U0ALICE")
    gone = ref_of(record).model_copy(update={"group_id": "0000000000000000"})
    with pytest.raises(StaleReference):
        await triage.declare(gone, "U0ALICE", TRIAGE_CHANNEL)
    assert await triage.service.store.open_incident_ids() == []


async def test_the_buttons_of_a_group_that_flapped_in_triage_still_work(triage: AlertTriage) -> None:
    record = await triage.notified(group())
    await triage.notified(group(resolved()))
    back = await triage.notified(group())
    assert (back.episode, back.firings) == (1, 2)

    done = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)

    assert done.applied and done.incident is not None and done.record.incident_id == done.incident.id


async def test_a_declare_racing_a_new_episode_reports_the_incident_it_declared(
    triage: AlertTriage, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await triage.notified(group())
    ref = ref_of(record)
    declare_incident = triage.service.declare_incident

    async def while_it_fires_anew(*args: Any, **kwargs: Any) -> Incident:
        incident = await declare_incident(*args, **kwargs)
        # Meanwhile someone dismissed the message, and the alert resolved and fired anew.
        assert (await triage.dismiss(ref, "U0BOB")).applied
        await triage.notified(group(resolved()))
        await triage.notified(group())
        return incident

    monkeypatch.setattr(triage.service, "declare_incident", while_it_fires_anew)
    done = await triage.declare(ref, "U0ALICE", TRIAGE_CHANNEL)

    assert done.incident is not None and done.incident.id == "INC-1" and done.unlinked
    assert (done.record.episode, done.record.state, done.record.incident_id) == (2, TriageState.TRIAGE, None)
    assert done.record.wants_message  # the new episode waits for someone to look at it
    assert await triage.service.store.open_incident_ids() == ["INC-1"]
    alerts = [e.text for e in await triage.service.store.timeline("INC-1") if e.kind is EventKind.ALERT]
    assert alerts == [
        "Alertmanager: the alert fired anew while this incident was declared from it, with a new "
        "triage message, which is not linked to this incident"
    ]


async def test_a_declare_whose_group_record_vanished_meanwhile_reports_the_incident(
    triage: AlertTriage, fake_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await triage.notified(group())
    declare_incident = triage.service.declare_incident

    async def while_it_expires(*args: Any, **kwargs: Any) -> Incident:
        incident = await declare_incident(*args, **kwargs)
        await fake_redis.delete(keys.alert_group(record.id))
        return incident

    monkeypatch.setattr(triage.service, "declare_incident", while_it_expires)
    done = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)

    assert done.incident is not None and done.unlinked and not done.applied
    assert await triage.service.store.open_incident_ids() == ["INC-1"]


async def test_the_alert_summary_shows_on_the_timeline_as_written_and_pings_nobody(
    triage: AlertTriage,
) -> None:
    summary = "Checkout's errors for <@U0ALICE> & <!channel>"
    record = await triage.notified(group(alert(summary=summary)))
    await triage.declare(ref_of(record), "U0BOB", TRIAGE_CHANNEL)
    (declared,) = await triage.service.store.timeline("INC-1")

    (line,) = trace_lines([declared], {}, lambda user: fmt.user(user or ""))
    (plain,) = trace_lines([declared], {}, lambda user: f"@{user}", plain=True)

    assert "<@U0ALICE>" not in line and "<!channel>" not in line
    shown = "Checkout's errors for &lt;@\u2060U0ALICE&gt; &amp; &lt;!channel&gt;"
    assert line.endswith(f'Declared SEV2: {shown} (from the alert "{shown}")')
    assert plain.replace("\u2060", "").endswith(f'(from the alert "{summary}")')  # the postmortem


async def test_alert_record_writes_wait_for_a_replica_as_incident_writes_do(
    fake_redis: aioredis.Redis, playbook: Playbook, clock: FakeClock
) -> None:
    """fakeredis refuses WAIT, like a server that can't wait: each write stands and counts as
    unconfirmed, which shows it asked (the real WAIT is in tests/e2e/test_replica_wait.py)."""
    store = IncidentStore(fake_redis, ReplicaWait(replicas=1, timeout_ms=50))
    triage = AlertTriage(
        IncidentService(store, ScheduleStore(fake_redis), playbook, clock), AlertGroupStore(store)
    )

    answer = await AlertReceiver(triage).receive(encoded())

    assert answer.status == 200 and (store.confirmed_writes, store.unconfirmed_writes) == (0, 1)
    assert await triage.groups.get(str(answer.body["group"])) is not None


async def test_the_incident_hears_of_its_alert_once_per_note(triage: AlertTriage) -> None:
    record = await triage.notified(group())
    done = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)
    assert done.incident is not None
    gone = await triage.notified(group(resolved()))
    assert [n.say is not None for n in gone.notes] == [False, True]

    for note in gone.notes:
        assert await triage.apply_note("INC-1", note)
        assert not await triage.apply_note("INC-1", note)  # a retry of the loop adds nothing

    alerts = [e for e in await triage.service.store.timeline("INC-1") if e.kind is EventKind.ALERT]
    assert [e.text for e in alerts] == [
        "Alertmanager: 1 alert firing since 13:58 UTC",
        "Alertmanager: resolved (1 alert resolved) at 14:10 UTC",
    ]
    said = [e.work for e in await triage.service.store.outbox("INC-1") if isinstance(e.work, Say)]
    assert sum("stays open until you resolve it" in w.text for w in said) == 1
    incident = await triage.service.get_incident("INC-1")
    assert not incident.is_resolved


async def test_after_the_incident_is_resolved_the_group_fires_as_a_new_episode(triage: AlertTriage) -> None:
    record = await triage.notified(group())
    await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)
    await triage.service.resolve("INC-1", "U0ALICE", "resolve-1")

    anew = await triage.notified(group())

    assert (anew.state, anew.episode, anew.incident_id, anew.message) == (TriageState.TRIAGE, 2, None, None)
    assert not await triage.apply_note(
        "INC-1", record.declared_as("INC-1", "U0ALICE", record.notified_at).notes[0]
    )


# -- on a real Redis, at once ---------------------------------------------------------------


@pytest.mark.redis
async def test_two_receivers_at_once_keep_one_record_and_count_every_notification(
    real_redis: aioredis.Redis, redis_test_url: str, make_triage: TriageFactory
) -> None:
    other = connect(redis_test_url)
    try:
        one, two = make_triage(real_redis), make_triage(other)
        each = 15
        records = await asyncio.gather(*[(one if i % 2 else two).notified(group()) for i in range(2 * each)])
        stored = await one.groups.get(records[0].id)
    finally:
        await other.aclose()

    assert stored is not None
    assert {r.uid for r in records} == {stored.uid}  # one record, made once
    assert stored.episode == 1 and stored.revision == 2 * each  # each notification counted once
    assert sorted(r.revision for r in records) == list(range(1, 2 * each + 1))


@pytest.mark.redis
async def test_clicks_racing_on_two_processes_declare_once(
    real_redis: aioredis.Redis, redis_test_url: str, make_triage: TriageFactory
) -> None:
    other = connect(redis_test_url)
    try:
        one, two = make_triage(real_redis), make_triage(other)
        record = await one.notified(group())
        ref = ref_of(record)
        clicks = await asyncio.gather(
            one.declare(ref, "U0ALICE", TRIAGE_CHANNEL),
            two.declare(ref, "U0BOB", TRIAGE_CHANNEL),
            one.declare(ref, "U0ALICE", TRIAGE_CHANNEL),
            two.dismiss(ref, "U0CAROL"),
        )
        stored = await one.groups.get(record.id)
        open_ids = await one.service.store.open_incident_ids()
    finally:
        await other.aclose()

    assert stored is not None
    incidents = {c.incident.id for c in clicks[:3] if c.incident is not None}
    if stored.state is TriageState.DECLARED:
        assert open_ids == ["INC-1"] and incidents == {"INC-1"} and stored.incident_id == "INC-1"
        assert sum(c.applied for c in clicks[:3]) == 1
    else:  # the dismissal came first: nothing was declared
        assert stored.state is TriageState.DISMISSED and open_ids == [] and incidents == set()


@pytest.mark.redis
async def test_a_notification_racing_a_dismissal_loses_neither(
    real_redis: aioredis.Redis, redis_test_url: str, make_triage: TriageFactory
) -> None:
    other = connect(redis_test_url)
    try:
        one, two = make_triage(real_redis), make_triage(other)
        record = await one.notified(group())
        await asyncio.gather(
            two.dismiss(ref_of(record), "U0BOB"),
            *[one.notified(group(alert(), alert(fingerprint="2"))) for _ in range(5)],
        )
        stored = await one.groups.get(record.id)
    finally:
        await other.aclose()

    assert stored is not None and stored.state is TriageState.DISMISSED and stored.dismissed_by == "U0BOB"
    assert stored.alert.alerts == 2 and stored.episode == 1


async def test_a_store_error_while_linking_says_the_incident_is_declared(
    triage: AlertTriage, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = await triage.notified(group())
    real_update = triage.groups.update
    calls = 0

    async def failing(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        raise StoreUnavailable("connection lost")

    monkeypatch.setattr(triage.groups, "update", failing)
    with pytest.raises(StoreUnavailable) as caught:
        await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)
    assert caught.value.written is True and calls == 1

    monkeypatch.setattr(triage.groups, "update", real_update)
    again = await triage.declare(ref_of(record), "U0ALICE", TRIAGE_CHANNEL)  # a click again links it
    assert again.applied and again.incident is not None and again.incident.id == "INC-1"
    assert await triage.service.store.open_incident_ids() == ["INC-1"]
