"""manifest.yml creates the app the code expects."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.demo.standin import DEFAULT_BOT_SCOPES

MANIFEST = yaml.safe_load((Path(__file__).parent.parent / "manifest.yml").read_text())


def test_the_stand_in_grants_exactly_the_manifest_scopes() -> None:
    # Every end-to-end test runs with the stand-in's default scopes, so the bot works with these.
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == DEFAULT_BOT_SCOPES


def test_the_manifest_declares_the_command_interactivity_and_socket_mode() -> None:
    [command] = MANIFEST["features"]["slash_commands"]
    assert command["command"] == "/incident"
    assert "sev1|sev2|sev3|sev4" in command["usage_hint"]
    assert MANIFEST["features"]["bot_user"]["display_name"] == "incident-bot"
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
    assert MANIFEST["settings"]["socket_mode_enabled"] is True
