"""Text helpers shared by renderers and validation: escaping user text for Slack mrkdwn."""

from __future__ import annotations

import re


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as markup, so `<!channel>` pings nobody."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_WORD_JOINER = "\u2060"


def foreign_text(text: str) -> str:
    """Text from outside Slack (an alert's annotations), made safe mrkdwn to store on the
    timeline: every markup character escaped, and each `<@` split by an invisible word joiner.
    The timeline renders stored text with `user_text`, which turns an escaped `<@U123>` back into
    a mention; split, it shows as written and pings nobody."""
    return escape_mrkdwn(text).replace("&lt;@", f"&lt;@{_WORD_JOINER}")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]+)(?:\|[^&]*)?&gt;")


def user_text(text: str) -> str:
    """Text a person typed (Slack sends `&`, `<`, `>` as entities), made safe to post again:
    every markup character escaped, so `<!channel>` pings nobody, but user mentions
    (`<@U123|alice>`) kept as mentions."""
    for entity, plain in _ENTITIES:
        text = text.replace(entity, plain)
    return _USER_MENTION.sub(r"<@\1>", escape_mrkdwn(text))
