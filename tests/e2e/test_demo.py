"""`incident-bot demo` on a fresh machine (no workspace, no tokens, no Redis server), and again and
again on a Redis database it shares with another app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import pytest
import redis

from bot import cli, keys
from bot.demo import database
from bot.demo.script import demo
from bot.demo.standin import SlackStandIn
from bot.demo.standin.server import DEFAULT_BOT_SCOPES
from bot.store import connect

DEMO_DATABASE = 11  # of the tests' Redis server: only these tests use it
CHANNELS_END = "INC-1-postmortem.md"  # the heading of the uploaded file, printed as it is


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot demo *args` as a new user runs it: no Slack or Redis settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL", "NO_COLOR"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "demo", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def played() -> subprocess.CompletedProcess[str]:
    """One run of the demo, shared by the tests that read what it printed (it takes seconds)."""
    done = run_demo()
    assert done.returncode == 0, done.stderr
    return done


def narration(out: str) -> str:
    return out.split("═" * 30, 1)[0]


def channels(out: str) -> str:
    return out.split(CHANNELS_END, 1)[0].split("═" * 30, 1)[1]


def test_the_demo_plays_a_whole_incident_and_exits_zero(played: subprocess.CompletedProcess[str]) -> None:
    out = played.stdout
    assert "#inc-1-checkout-requests-failing" in out
    # Two responders' simultaneous ticks both show, with who ticked them.
    assert "[x] How many users are affected? — @alice" in out
    assert "[x] Which features/services are affected? — @bob" in out
    assert "Status: Identified" in out and "Reminder 1 since the last update" in out
    assert "raised INC-1 from SEV2 to SEV1" in out
    assert "[x] Error rate decreased — @carol" in out and "[ ] Metrics match baseline" in out
    assert "is resolved" in out and "Open incidents at" in out
    assert "timeline of INC-1" in out and 'ticked "How many users are affected?"' in out


def test_the_alert_is_triaged_once_then_declared_with_its_evidence(
    played: subprocess.CompletedProcess[str],
) -> None:
    shown = channels(played.stdout)
    managers = shown.split("═ #incident-managers ═", 1)[1]
    # Alertmanager sent the group twice: one triage message, updated to say who declared it.
    assert managers.count("🚨 Checkout requests failing") == 1
    assert "✅ Declared as INC-1 by @alice: #inc-1-checkout-requests-failing" in managers
    assert managers.count("@alice declared INC-1") == 1  # the triage channel is the stakeholders'
    incident = shown.split("═ #inc-1-checkout-requests-failing ═", 1)[1].split("═ #incident-managers ═")[0]
    assert "Declared from the alert Checkout requests failing" in incident
    assert "Recent changes (2h before" in incident and "checkout deploy v2.3.1 by ci" in incident
    # The chart came unasked at declaration, and again for /incident metrics, each with its values.
    assert "[file: INC-1 checkout metrics, the last 1h to" in incident
    assert "[file: INC-1 checkout metrics, the last 30m to" in incident
    # The stand-in Prometheus's error rate rose from 0.4% to about 31% two minutes after the deploy.
    latest = [float(v) for v in re.findall(r"• Error rate: ([0-9.]+)", incident)]
    assert len(latest) == 2 and all(0.25 < v < 0.35 for v in latest)
    postmortem = played.stdout.split(CHANNELS_END, 1)[1]
    assert "Checkout requests failing" in postmortem and "v2.3.1" in postmortem


def test_the_channels_show_as_slack_draws_them_not_as_mrkdwn(
    played: subprocess.CompletedProcess[str],
) -> None:
    shown = channels(played.stdout)
    for markup in ("*INC-", "*Status", ":large_", ":white_check_mark:", "<@U", "<#C", "&lt;", "&gt;"):
        assert markup not in shown, markup
    assert "*" not in shown  # every bold drawn, none spelled
    assert "🟠 @alice declared INC-1" in shown and "Join #inc-1-checkout-requests-failing" in shown
    assert "✅ H2 · Confirmed" in shown
    assert "\x1b[" not in played.stdout  # not a terminal: no ANSI styles either


def test_the_timeline_names_people_as_the_channels_do(played: subprocess.CompletedProcess[str]) -> None:
    timeline = played.stdout.split("timeline of INC-1", 1)[1].split(CHANNELS_END, 1)[0]
    assert '│ @alice       │ ticked "How many users are affected?"' in timeline
    assert '│ @carol       │ ticked "Rollback to previous version"' in timeline
    assert "│ @bob         │ made @carol Communications lead" in timeline
    assert "U0ALICE" not in played.stdout and "U0CAROL" not in played.stdout


def test_every_persons_action_is_narrated(played: subprocess.CompletedProcess[str]) -> None:
    told = narration(played.stdout)
    for line in (
        "CI reports a deploy of checkout v2.3.1 (POST /events/change)",
        "Alertmanager fires CheckoutErrors, severity critical (POST /alerts/alertmanager)",
        "@alice clicks Declare SEV2 on the alert in #incident-managers",
        "@bob: /incident metrics checkout 30m",
        '@alice ticks "How many users are affected?"',
        "@alice puts @carol's message on the timeline",
        "@alice: /incident commander @bob",
        '@bob ticks "Which features/services are affected?"',
        "@bob: /incident note Error rate went from 0.1% to 5%",
        "@bob: /incident hypothesis A slow query holds connections",
        "@bob sets H1 to Ruled out",
        "@bob: /incident update, and in the form: Identified",
        "@bob: /incident resolve",
        '@carol ticks "Rollback to previous version"',
        "@carol writes in #inc-1-checkout-requests-failing: DB connection pool at 100/100",
        "@carol: /incident hypothesis Deploy v2.3.1",
        "@carol sets H2 to Confirmed",
        "@carol: /incident update, and in the form: Monitoring",
        '@carol ticks "Error rate decreased"',
        '@carol ticks "User reports stopped"',
        "@carol: /incident followup Alert when the DB connection pool is above 80%",
    ):
        assert f"  {line}" in told, line


def test_the_demo_says_it_is_sped_up_and_raises_no_alarm(played: subprocess.CompletedProcess[str]) -> None:
    intro = played.stdout.split("▶", 1)[0]
    assert "Sped up" in intro
    assert "every 5 seconds at SEV1 and SEV2" in intro and "every 15 minutes at SEV1" in intro
    assert "in memory, gone when the demo ends" in intro
    assert "STATE IS LOST" not in played.stdout + played.stderr
    assert "WARNING" not in played.stderr


def test_demo_help_says_what_redis_url_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "flush" not in shown
    assert "leaves other keys alone and deletes its own when it ends" in shown and "--raw" in shown


async def test_the_demo_fails_when_slack_would_have_rejected_a_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without channels:manage, conversations.create is refused: the demo still plays, then fails."""
    scopes = DEFAULT_BOT_SCOPES - {"channels:manage"}
    async with SlackStandIn(scopes=scopes) as slack:
        assert await demo(None, slack=slack) == 1
    err = capsys.readouterr().err
    assert "rejected 1 Web API call" in err and "conversations.create: missing_scope" in err


# -- on Redis: --redis-url ----------------------------------------------------------------------


@pytest.fixture
def demo_db(redis_test_url: str) -> str:
    """The tests' Redis server, database DEMO_DATABASE."""
    parts = urlsplit(redis_test_url)
    if parts.scheme not in ("redis", "rediss"):
        pytest.skip(f"the demo's database test needs a redis:// URL, not {parts.scheme}://")
    url = parts._replace(path=f"/{DEMO_DATABASE}").geturl()
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {url}: {exc}")
    finally:
        client.close()
    return url


def bot_keys_in(client: redis.Redis) -> list[str]:
    return [
        name
        for name in client.scan_iter()
        if any(fnmatchcase(name, p) for p in [*keys.PATTERNS, keys.DEMO_MARKER])
    ]


@pytest.mark.redis
def test_the_demo_runs_again_on_a_database_it_shares(demo_db: str) -> None:
    client = redis.Redis.from_url(demo_db, decode_responses=True)
    sentinel = "other-app:session:42"
    try:
        client.set(sentinel, "keep me")
        first = run_demo("--redis-url", demo_db)
        assert first.returncode == 0, first.stderr
        assert "in Redis (--redis-url)" in first.stdout
        assert bot_keys_in(client) == []
        again = run_demo("--raw", "--redis-url", demo_db)
        assert again.returncode == 0, again.stderr
        # --raw: the channels as the mrkdwn the bot sent.
        assert ":large_orange_circle: @alice declared *INC-1*" in again.stdout
        assert "*Status:* Identified" in again.stdout
        assert bot_keys_in(client) == []
        assert client.get(sentinel) == "keep me"
    finally:
        client.delete(sentinel)
        client.close()


@pytest.mark.redis
def test_the_demo_refuses_a_database_holding_a_bots_incidents(demo_db: str) -> None:
    client = redis.Redis.from_url(demo_db, decode_responses=True)
    try:
        client.set(keys.SEQUENCE, "41")
        client.set(keys.incident("INC-41"), "{}")
        refused = run_demo("--redis-url", demo_db)
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and "incident-bot data" in refused.stderr
        assert client.get(keys.SEQUENCE) == "41" and client.exists(keys.incident("INC-41"))
        assert not client.exists(keys.DEMO_MARKER)
    finally:
        client.delete(keys.SEQUENCE, keys.incident("INC-41"))
        client.close()


@pytest.mark.redis
async def test_the_demo_finds_and_deletes_its_keys_on_every_master_of_a_cluster(cluster_url: str) -> None:
    client = connect(cluster_url)
    names = [keys.incident(f"INC-{n}") for n in range(30)]  # spread over the three masters' slots
    try:
        await client.set("other-app:count", "1")
        await client.set(keys.DEMO_MARKER, "1")
        for name in names:
            await client.set(name, "{}")
        assert sorted(await database.bot_keys(client)) == sorted(names)
        await database.release(client)
        assert await database.bot_keys(client) == []
        assert await client.get("other-app:count") == "1"
    finally:
        await client.delete("other-app:count", keys.DEMO_MARKER, *names)
        await client.aclose()
