"""What Slack does with the app's answers to a user's interaction.

Two paths: a message sent to a `response_url` (Bolt's `respond()`, or a slash command's
ack body), and the body the app returns to a `view_submission` (close, errors, update,
push, clear).
"""

from __future__ import annotations

from .limits import check_message, check_view
from .methods import open_view, replace_view
from .workspace import (
    JsonDict,
    MessageSource,
    OpenedView,
    ReplyOutcome,
    ResponseDelivery,
    ResponseUrl,
    Workspace,
)

# https://docs.slack.dev/interactivity/handling-user-interaction: a response_url can be used
# up to 5 times within 30 minutes of the interaction.
RESPONSE_URL_TTL_SECONDS = 30 * 60
MAX_RESPONSE_URL_USES = 5


def response_url_refusal(ws: Workspace, url: ResponseUrl) -> str | None:
    """Why this response_url can no longer be used, or None if it still can."""
    if ws.clock() - url.issued_at > RESPONSE_URL_TTL_SECONDS:
        return f"response_url is older than {RESPONSE_URL_TTL_SECONDS // 60} minutes"
    if url.uses >= MAX_RESPONSE_URL_USES:
        return f"response_url was already used {MAX_RESPONSE_URL_USES} times"
    return None


def deliver_reply(
    ws: Workspace,
    *,
    payload: object,
    channel_id: str,
    user_id: str,
    message_ts: str | None,
    response_url_id: str | None,
    source: MessageSource = "response_url",
) -> ResponseDelivery:
    """Applies a response_url-style message: ephemeral, in_channel, replace or delete."""

    def refuse(status: int, error: str, reasons: list[str]) -> ResponseDelivery:
        return _record(ws, response_url_id, channel_id, user_id, body, False, status, error, reasons)

    body: JsonDict = payload if isinstance(payload, dict) else {}
    if not isinstance(payload, dict):
        return refuse(400, "invalid_payload", ["the body must be a JSON object"])

    original = ws.find_message(channel_id, message_ts) if message_ts else None
    if body.get("delete_original") is True:
        if original is None:
            return refuse(404, "message_not_found", ["there is no original message to delete"])
        ws.delete_message(channel_id, original.ts)
        return _record(ws, response_url_id, channel_id, user_id, body, True, 200, applied="deleted")

    rejection = check_message(text=body.get("text"), blocks=body.get("blocks"))
    if rejection is not None:
        return refuse(400, rejection.error, rejection.reasons)
    text = str(body.get("text") or "")
    blocks = [b for b in body.get("blocks") or [] if isinstance(b, dict)]

    if body.get("replace_original") is True and original is not None:
        original.text = text
        original.blocks = ws.with_generated_ids(blocks)
        return _record(ws, response_url_id, channel_id, user_id, body, True, 200, applied="replaced")
    thread_ts = body.get("thread_ts")
    thread = thread_ts if isinstance(thread_ts, str) else None
    if body.get("response_type") == "in_channel":
        ws.add_message(
            channel_id=channel_id,
            text=text,
            blocks=blocks,
            thread_ts=thread,
            source=source,
        )
        return _record(ws, response_url_id, channel_id, user_id, body, True, 200, applied="in_channel")
    ws.add_ephemeral(
        channel_id=channel_id,
        user_id=user_id,
        text=text,
        blocks=blocks,
        thread_ts=thread,
        source=source,
    )
    return _record(ws, response_url_id, channel_id, user_id, body, True, 200, applied="ephemeral")


def _record(
    ws: Workspace,
    response_url_id: str | None,
    channel_id: str,
    user_id: str,
    payload: JsonDict,
    ok: bool,
    status: int,
    error: str | None = None,
    reasons: list[str] | None = None,
    applied: ReplyOutcome | None = None,
) -> ResponseDelivery:
    delivery = ResponseDelivery(
        response_url_id=response_url_id,
        channel_id=channel_id,
        user_id=user_id,
        payload=payload,
        ok=ok,
        http_status=status,
        error=error,
        reasons=reasons or [],
        applied_as=applied,
        at=ws.clock(),
    )
    ws.responses.append(delivery)
    return delivery


def apply_view_submission_reply(ws: Workspace, view: OpenedView, reply: object) -> list[str]:
    """Changes the modal the way Slack does after a view_submission ack.

    Returns the reasons Slack would refuse an `update`/`push` view (empty when all is well).
    """
    action = reply.get("response_action") if isinstance(reply, dict) else None
    if action == "errors":
        return []  # the modal stays open, showing the errors
    if action in ("update", "push"):
        assert isinstance(reply, dict)
        new_view = reply.get("view")
        rejection = check_view(new_view)
        if rejection is not None:
            return rejection.reasons
        assert isinstance(new_view, dict)
        if action == "update":
            replace_view(ws, view, new_view)
        else:
            open_view(ws, new_view, user_id=view.user_id, trigger_id=None, below=view)
        return []
    if action == "clear":
        for other in ws.views.values():
            if other.root_view_id == view.root_view_id:
                other.is_open = False
        return []
    view.is_open = False  # an empty ack closes the submitted view
    return []
