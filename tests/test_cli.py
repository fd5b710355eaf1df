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
