"""Evidence pushed to the bot over HTTP: `POST /alerts/alertmanager` (Alertmanager's webhook) and
`POST /events/change` (a deploy, a config change, a flag flip, from a CI pipeline).

Both require `Authorization: Bearer <INCIDENT_ALERT_TOKEN>` (else 401); while the token is unset
both answer 404, as if they did not exist. The body is read up to the receiver's limit (else 413)
and handed to the receiver, whose answer is JSON. The same routes are served by the HTTP app and,
in Socket Mode, beside `/healthz`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

ALERTS_PATH = "/alerts/alertmanager"
CHANGES_PATH = "/events/change"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, object] = field(default_factory=dict)


class Receiver(Protocol):
    """What one evidence endpoint does with a body that passed the token and the size check."""

    max_body_bytes: int

    async def receive(self, body: bytes) -> Answer: ...


def refusal(token: str, authorization: str) -> Answer | None:
    """404 while no token is configured, 401 for a missing or wrong one; None: let it in."""
    if not token:
        return Answer(404, {"error": "not found"})
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Answer(401, {"error": "missing or wrong bearer token (INCIDENT_ALERT_TOKEN)"})
    return None


async def answer(
    receiver: Receiver | None,
    token: str,
    authorization: str,
    declared_length: int | None,
    chunks: Callable[[], AsyncIterator[bytes]],
) -> Answer:
    """The answer to one request: refused, too large, or what the receiver says of its body."""
    if receiver is None:
        return Answer(404, {"error": "not found"})
    refused = refusal(token, authorization)
    if refused is not None:
        return refused
    limit = receiver.max_body_bytes
    too_large = Answer(413, {"error": f"the body is larger than {limit} bytes"})
    if declared_length is not None and declared_length > limit:
        return too_large
    body = bytearray()
    async for chunk in chunks():
        body += chunk
        if len(body) > limit:
            return too_large
    try:
        return await receiver.receive(bytes(body))
    except Exception:  # answered 500 so the sender retries; logged with its traceback
        log.exception("receiving evidence failed")
        return Answer(500, {"error": "the bot failed to take it; it is logged, and a retry may work"})


