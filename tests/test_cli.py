"""`incident-bot run` refuses to start on bad configuration, saying what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_bot(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_", "REDIS_URL"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_invalid_playbook_stops_the_bot_naming_file_key_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yml"
    path.write_text("severities:\n  sev2:\n    update_every: 4x\n")
    done = run_bot({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "INCIDENT_PLAYBOOK": str(path)})
    assert done.returncode == 2
    assert f"{path}: severities.sev2.update_every: invalid duration '4x'" in done.stderr


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "set SLACK_SIGNING_SECRET to serve HTTP"),
    ],
)
def test_missing_credentials_are_named(env: dict[str, str], says: str) -> None:
    done = run_bot(env)
    assert done.returncode == 2 and says in done.stderr


def test_workers_need_a_shared_redis() -> None:
    done = run_bot({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, "--workers", "2")
    assert done.returncode == 2 and "--workers needs REDIS_URL" in done.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "has no scheme"),
        ("redis+cluster://h:7000/3", "only database 0"),
        ("redis+sentinel://h:26379", "names no master"),
    ],
)
def test_a_bad_redis_url_stops_the_bot_in_one_line(url: str, says: str) -> None:
    done = run_bot({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "REDIS_URL": url})
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("incident-bot: REDIS_URL") and says in line and "redis+sentinel://" in line


def store_reset(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INCIDENT_", "REDIS_URL"))}
    env["REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "bot", "store", "reset", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.redis
def test_store_reset_starts_afresh_only_after_a_loss(redis_test_url: str) -> None:
    import redis

    from bot import keys

    client = redis.Redis.from_url(redis_test_url, decode_responses=True)
    client.flushdb()
    try:
        client.set(keys.IDENTITY, "store-abc")
        client.set(keys.SEQUENCE, 41)
        kept = store_reset(redis_test_url, "--next-number", "42")
        assert kept.returncode == 2 and "nothing to reset" in kept.stderr
        assert client.get(keys.IDENTITY) == "store-abc"

        client.set(keys.IDENTITY, "lost:store-abc")  # what a bot writes when it sees the loss
        client.delete(keys.SEQUENCE)
        done = store_reset(redis_test_url, "--next-number", "42")
        assert done.returncode == 0 and "next incident is INC-42" in done.stdout
        identity = client.get(keys.IDENTITY)
        assert identity is not None and identity.startswith("store-") and identity != "store-abc"
        assert client.get(keys.SEQUENCE) == "41"  # INCR gives 42 next
    finally:
        client.flushdb()
        client.close()


def test_the_top_level_help_lists_every_subcommand_and_run_help_its_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    for command in ("run", "deliver", "store", "postmortem", "demo"):
        assert f"    {command}" in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split())
    for variable in ("SLACK_BOT_TOKEN", "REDIS_URL", "INCIDENT_PLAYBOOK", "REDIS_WAIT_MS", "LOG_LEVEL"):
        assert variable in run_help


def test_the_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    from bot.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"incident-bot {importlib.metadata.version('incident-bot')}"
