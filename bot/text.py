"""Text helpers shared by renderers and validation: escaping user text for Slack mrkdwn."""

from __future__ import annotations


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as markup, so `<!channel>` pings nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
