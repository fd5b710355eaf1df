"""`incident-bot run` refuses to start on bad configuration, saying what is wrong."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _clean_env() -> dict[str, str]:
    """This environment without any of the bot's settings."""
    from bot.settings import Settings

    names = {str(field.alias) for field in Settings.model_fields.values()}
    return {
        k: v for k, v in os.environ.items() if k not in names and not k.startswith(("SLACK_", "INCIDENT_"))
    }


def run_bot(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = _clean_env()
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


def listening_socket() -> socket.socket:
    """A port something already listens on, as a busy port looks to the bot."""
    held = socket.socket()
    held.bind(("0.0.0.0", 0))
    held.listen()
    return held


BOT = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({"LOG_LEVEL": "verbose"}, (), "LOG_LEVEL='verbose' is not valid: use one of DEBUG, INFO"),
        ({"LOG_FORMAT": "xml"}, (), "LOG_FORMAT='xml' is not valid: use one of text, json"),
        ({"PORT": "abc"}, (), "PORT='abc' is not valid: Input should be a valid integer"),
        ({"PORT": "70000"}, (), "PORT='70000' is not valid: Input should be less than or equal to 65535"),
        ({}, ("--port", "70000"), "run: argument --port: 70000 is not a port (0-65535)"),
        ({}, ("--port", "abc"), "run: argument --port: 'abc' is not a port number"),
        ({}, ("--workers", "x"), "run: argument --workers: invalid int value: 'x'"),
        ({"INCIDENT_RETENTION": "forever"}, (), "INCIDENT_RETENTION='forever' is not valid: invalid"),
        ({"STARTUP_TIMEOUT": "soon"}, (), "STARTUP_TIMEOUT='soon' is not valid: invalid duration"),
        ({"INCIDENT_CREATE_CHANNELS": "maybe"}, (), "INCIDENT_CREATE_CHANNELS='maybe' is not valid"),
        ({"REDIS_WAIT_MS": "900"}, (), "REDIS_WAIT_MS='900' is not valid: Input should be less"),
        ({"REDIS_WAIT_REPLICAS": "-1"}, (), "REDIS_WAIT_REPLICAS='-1' is not valid"),
        ({"SLACK_APP_TOKEN": "xoxb-2"}, (), "SLACK_APP_TOKEN must be an app-level token"),
        ({}, ("--host", "nowhere.invalid"), "--host 'nowhere.invalid' is not an address to listen on"),
        ({}, ("--host", "192.0.2.1"), "192.0.2.1 is not an address of this machine"),
        (
            {"SLACK_API_URL": "slack.com/api"},
            (),
            "SLACK_API_URL='slack.com/api' is not valid: must be an http",
        ),
        ({"PROMETHEUS_URL": "prometheus:9090"}, (), "PROMETHEUS_URL='prometheus:9090' is not valid"),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0?socket_timeout=abc"},
            (),
            "REDIS_URL is not valid for redis-py",
        ),
    ],
)
def test_each_bad_setting_is_one_line_and_exit_2(
    env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    done = run_bot({**BOT, **env}, *args)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("incident-bot: ") and says in line, line
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://user:hunter2@h:7000/3",
        "redis://:hunt@er2@127.0.0.1:1/0?socket_timeout=abc",
        "redis://127.0.0.1:1/0?password=hunter2&socket_timeout=abc",
    ],
)
def test_a_redis_password_is_never_echoed(url: str) -> None:
    """A wrong value is shown to help fix it, except where it may be a secret."""
    done = run_bot({**BOT, "REDIS_URL": url})
    assert done.returncode == 2 and done.stderr.startswith("incident-bot: ")
    assert "hunter2" not in done.stderr and "er2@" not in done.stderr


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_a_busy_port_is_one_line_in_either_mode(mode: str) -> None:
    env = {**BOT, "SLACK_APP_TOKEN": "xapp-1"} if mode == "socket" else BOT
    with listening_socket() as held:
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--port", str(port)],
            env={**_clean_env(), **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert f"port {port} on 0.0.0.0 is already in use" in line


def test_deliver_checks_its_health_port_too() -> None:
    with listening_socket() as held:
        port = str(held.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "bot", "deliver", "--port", port],
            env={**_clean_env(), **BOT, "REDIS_URL": "redis://127.0.0.1:1/0"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2 and "already in use: stop what listens there, or set --port" in done.stderr


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
    for command in ("run", "deliver", "check", "store", "postmortem", "demo"):
        assert f"    {command}" in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split())
    from bot.settings import Settings

    variables = [str(field.alias) for field in Settings.model_fields.values()]
    assert "LOG_FORMAT" in variables and "INCIDENT_RETENTION" in variables
    for variable in variables:
        assert variable in run_help


def test_the_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    from bot.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"incident-bot {importlib.metadata.version('incident-bot')}"


def test_json_logs_hold_python_warnings_and_tracebacks_too() -> None:
    """In json mode every line is an object, whatever writes it: a library's warning, a logged
    exception with its traceback."""
    script = (
        "import logging, warnings\n"
        "from bot.logs import configure\n"
        "configure('INFO', 'json')\n"
        "warnings.warn('an old API', DeprecationWarning, stacklevel=1)\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('bot.test').exception('it failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, timeout=30
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert "an old API" in lines[0]["message"]
    assert "ZeroDivisionError" in lines[1]["exception"]
