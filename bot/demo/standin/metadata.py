"""Message metadata (`metadata` on chat.postMessage and chat.update), checked the way Slack does.

What Slack documents (https://docs.slack.dev/reference/methods/chat.postMessage and
https://docs.slack.dev/messaging/message-metadata): `metadata` is a JSON object with an
`event_type` and an `event_payload` (an object), sent as a URL-encoded JSON string in form posts
or as an object in JSON posts. The errors are `invalid_metadata_format` (not a JSON object) and
`invalid_metadata_schema` (the object lacks a string `event_type` or an object `event_payload`).

Event type names should contain only alphanumeric characters and underscores
(https://api.slack.com/reference/metadata, "Property basics"). Slack does not refuse a message
whose event_type breaks the rule: it posts the message and silently drops the metadata. In
slackapi/bolt-python#863 "slack.post-prompt" went missing while "slack-post-prompt" was kept, so
the stand-in drops event types with characters other than letters, digits, "_" and "-", and
records why on the call.

Not reproduced: `metadata_too_large`, because Slack does not publish the size limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .limits import Rejection, parse_json_argument
from .workspace import JsonDict

EVENT_TYPE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class CheckedMetadata:
    """What Slack keeps of a valid `metadata` argument."""

    metadata: JsonDict | None  # None: dropped, or (chat.update) removed with `{}`
    dropped_because: str | None = None


def check_metadata(raw: object, *, empty_removes: bool = False) -> CheckedMetadata | Rejection:
    """Checks a `metadata` argument that was given (not None).

    `empty_removes`: chat.update documents `{}` as "remove the message's metadata".
    """
    try:
        value = parse_json_argument(raw)
    except (json.JSONDecodeError, TypeError):
        return Rejection(error="invalid_metadata_format", reasons=["metadata is not valid JSON"])
    if not isinstance(value, dict):
        return Rejection(error="invalid_metadata_format", reasons=["metadata must be a JSON object"])
    if not value and empty_removes:
        return CheckedMetadata(metadata=None)

    event_type = value.get("event_type")
    payload = value.get("event_payload")
    reasons = []
    if not isinstance(event_type, str) or not event_type.strip():
        reasons.append("metadata.event_type must be a non-empty string")
    if not isinstance(payload, dict):
        reasons.append("metadata.event_payload must be a JSON object")
    if reasons:
        return Rejection(error="invalid_metadata_schema", reasons=reasons)
    assert isinstance(event_type, str) and isinstance(payload, dict)

    if EVENT_TYPE.fullmatch(event_type) is None:
        return CheckedMetadata(
            metadata=None,
            dropped_because=(
                f"metadata dropped: event_type {event_type!r} has characters other than "
                "letters, digits, '_' and '-'"
            ),
        )
    return CheckedMetadata(metadata={"event_type": event_type, "event_payload": payload})
