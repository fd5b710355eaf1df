"""`incident-bot demo` on a fresh machine: no workspace, no tokens, no Redis server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.demo.script import demo
from bot.demo.standin import SlackStandIn
from bot.demo.standin.server import DEFAULT_BOT_SCOPES


def test_the_demo_plays_a_whole_incident_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "#inc-1-checkout-requests-failing" in out
    # Two responders' simultaneous ticks both show, with who ticked them.
    assert "[x] How many users are affected? — @alice" in out
    assert "[x] Which features/services are affected? — @bob" in out
    assert "*Status:* Identified" in out and "Reminder 1 since the last update" in out
    assert "raised *INC-1* from SEV2 to *SEV1*" in out
    assert "[x] Error rate decreased — @carol" in out and "[ ] Metrics match baseline" in out
    assert "is *resolved*" in out and "Open incidents at" in out
    assert "timeline of INC-1" in out and 'ticked "How many users are affected?"' in out
    assert "embedded in-memory store" in done.stderr


async def test_the_demo_fails_when_slack_would_have_rejected_a_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without channels:manage, conversations.create is refused: the demo still plays, then fails."""
    scopes = DEFAULT_BOT_SCOPES - {"channels:manage"}
    async with SlackStandIn(scopes=scopes) as slack:
        assert await demo(None, slack=slack) == 1
    err = capsys.readouterr().err
    assert "rejected 1 Web API call" in err and "conversations.create: missing_scope" in err


@pytest.mark.redis
async def test_the_demo_counts_keys_on_every_master_of_a_cluster(cluster_url: str) -> None:
    from bot.demo.script import _key_count
    from bot.store import connect

    client = connect(cluster_url)
    names = [f"demo-count:{n}" for n in range(30)]  # spread over the three masters' slots
    try:
        for name in names:
            await client.set(name, "1")
        assert await _key_count(client) >= len(names)
    finally:
        for name in names:
            await client.delete(name)
        await client.aclose()
