"""manifest.yml (Socket Mode) and manifest.http.yml (HTTP) create the app the code expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from bot.demo.standin import DEFAULT_BOT_SCOPES

ROOT = Path(__file__).parent.parent
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
HTTP_MANIFEST = yaml.safe_load((ROOT / "manifest.http.yml").read_text())


def _without_urls(value: Any) -> Any:
    """The manifest with the HTTP-only keys left out, to compare what the app is."""
    if isinstance(value, dict):
        return {k: _without_urls(v) for k, v in value.items() if k not in {"url", "request_url"}}
    if isinstance(value, list):
        return [_without_urls(v) for v in value]
    return value


def _request_urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k.endswith("url") and isinstance(v, str)]
        return found + [u for v in value.values() for u in _request_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _request_urls(v)]
    return []


@pytest.mark.parametrize("manifest", [MANIFEST, HTTP_MANIFEST], ids=["socket", "http"])
def test_the_stand_in_grants_exactly_the_manifest_scopes(manifest: dict[str, Any]) -> None:
    # Every end-to-end test runs with the stand-in's default scopes, so the bot works with these.
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == DEFAULT_BOT_SCOPES


def test_the_manifest_declares_the_command_interactivity_and_socket_mode() -> None:
    [command] = MANIFEST["features"]["slash_commands"]
    assert command["command"] == "/incident"
    assert "sev1|sev2|sev3|sev4" in command["usage_hint"]
    assert MANIFEST["features"]["bot_user"]["display_name"] == "incident-bot"
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
    assert MANIFEST["settings"]["socket_mode_enabled"] is True
    assert _request_urls(MANIFEST) == []


def test_the_http_manifest_is_the_same_app() -> None:
    # Scopes, the command, the shortcut, the bot user: only Socket Mode and the URLs differ.
    socket, http = _without_urls(MANIFEST), _without_urls(HTTP_MANIFEST)
    socket["settings"].pop("socket_mode_enabled")
    http["settings"].pop("socket_mode_enabled")
    assert http == socket


def test_the_http_manifest_sends_everything_to_slack_events() -> None:
    settings = HTTP_MANIFEST["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["interactivity"]["is_enabled"] is True
    [command] = HTTP_MANIFEST["features"]["slash_commands"]
    # Slack sends message shortcuts to the interactivity request URL; a shortcut has no URL of its own.
    assert HTTP_MANIFEST["features"]["shortcuts"]
    urls = _request_urls(HTTP_MANIFEST)
    assert command["url"] in urls
    assert settings["interactivity"]["request_url"] in urls
    for url in urls:
        parsed = urlparse(url)
        assert parsed.scheme == "https", url
        assert parsed.path == "/slack/events", url
