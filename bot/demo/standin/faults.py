"""Injected faults: the stand-in answers a Web API method the way a failing Slack does.

    slack.faults.fail("chat.postMessage", status=502)             # an HTML error page, not applied
    slack.faults.error("chat.update", "ratelimited", status=429, retry_after=1)
    slack.faults.hang("conversations.create", 2.0, applied=True)  # done, but the answer is late
    slack.faults.close_connection("chat.postMessage", applied=True)  # done, the answer is lost

Each fault answers the next `times` calls of its method (only those whose arguments satisfy
`match`, when given) and then disarms itself; `times=None` keeps it armed until `clear()`.
`match` is asked about every call of the method, in arrival order, while the fault is armed.
Faults are taken under a lock, so each call consumes at most one fault and concurrent calls
never both consume the last use of one. Faults of one method fire in the order they were armed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .workspace import FaultKind, JsonDict

Match = Callable[[JsonDict], bool]

GATEWAY_ERROR_PAGE = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)
# What a held call that was never applied finally answers, if the client is still waiting: a
# gateway timing out on the backend, so the outcome is unknown to the client.
HANG_TIMEOUT_STATUS = 504
HANG_TIMEOUT_PAGE = (
    "<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>"
)


@dataclass
class Fault:
    """One armed fault. `remaining` is None for a fault that stays armed until cleared."""

    method: str
    kind: FaultKind
    remaining: int | None
    match: Match | None = None
    # fail: the raw answer; error: the Slack error code, its status and headers
    status: int = 200
    content_type: str | None = None
    body: str = ""
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # hang: how long the answer is held
    seconds: float = 0.0
    # hang / close_connection: carry the call out before the answer is held or lost
    applied: bool = False
    fired: int = 0

    @property
    def reaches_workspace(self) -> bool:
        """Whether the call is handed to the workspace before the fault shapes its answer."""
        return self.kind in ("hang", "close_connection") and self.applied

    @property
    def armed(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def describe(self) -> str:
        if self.kind == "fail":
            return f"injected fault: HTTP {self.status} {self.content_type or 'without a content type'}"
        if self.kind == "error":
            return f"injected fault: {self.error} (HTTP {self.status})"
        done = "applied" if self.applied else "not applied"
        if self.kind == "hang":
            return f"injected fault: answer held {self.seconds:g}s, call {done}"
        return f"injected fault: connection closed without an answer, call {done}"


class Faults:
    """The faults armed on one stand-in, per Web API method name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def fail(
        self,
        method: str,
        *,
        times: int | None = 1,
        status: int = 500,
        content_type: str | None = "text/html",
        body: str = GATEWAY_ERROR_PAGE,
        match: Match | None = None,
    ) -> Fault:
        """Answer with this raw HTTP status, content type and body; the call is not applied."""
        _check_status(status)
        return self._arm(
            Fault(
                method=method,
                kind="fail",
                remaining=_check_times(times),
                match=match,
                status=status,
                content_type=content_type,
                body=body,
            )
        )

    def error(
        self,
        method: str,
        error: str = "internal_error",
        *,
        times: int | None = 1,
        status: int = 200,
        retry_after: int | None = None,
        match: Match | None = None,
    ) -> Fault:
        """Answer `{"ok": false, "error": error}` (with Retry-After if given); not applied."""
        _check_status(status)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return self._arm(
            Fault(
                method=method,
                kind="error",
                remaining=_check_times(times),
                match=match,
                status=status,
                error=error,
                headers=headers,
            )
        )

    def hang(
        self,
        method: str,
        seconds: float,
        *,
        times: int | None = 1,
        applied: bool = False,
        match: Match | None = None,
    ) -> Fault:
        """Hold the answer for `seconds` (the stand-in's own shutdown cuts it short).

        With `applied=True` the call is carried out first and its real answer comes late;
        otherwise nothing is done and, if the client still waits, it gets HTTP 504.
        """
        if seconds < 0:
            raise ValueError("a hang lasts zero seconds or more")
        return self._arm(
            Fault(
                method=method,
                kind="hang",
                remaining=_check_times(times),
                match=match,
                seconds=seconds,
                applied=applied,
            )
        )

    def close_connection(
        self,
        method: str,
        *,
        times: int | None = 1,
        applied: bool = False,
        match: Match | None = None,
    ) -> Fault:
        """Close the TCP connection without answering (after carrying the call out if applied)."""
        return self._arm(
            Fault(
                method=method,
                kind="close_connection",
                remaining=_check_times(times),
                match=match,
                applied=applied,
            )
        )

    def clear(self, method: str | None = None) -> None:
        """Disarms every fault, or only those of one method."""
        with self._lock:
            self._faults = [f for f in self._faults if method is not None and f.method != method]

    def armed(self, method: str | None = None) -> list[Fault]:
        """Faults that will still fire, in firing order."""
        with self._lock:
            return [f for f in self._faults if method is None or f.method == method]

    def take(self, method: str, params: JsonDict) -> Fault | None:
        """The fault this call meets, if any, with one use consumed."""
        with self._lock:
            for fault in self._faults:
                if fault.method != method or not fault.armed:
                    continue
                if fault.match is not None and not fault.match(copy.deepcopy(params)):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.fired += 1
                if not fault.armed:
                    self._faults.remove(fault)
                return fault
        return None

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault


def _check_times(times: int | None) -> int | None:
    if times is not None and times < 1:
        raise ValueError("a fault fires at least once (times=None: until cleared)")
    return times


def _check_status(status: int) -> None:
    if not 100 <= status <= 599:
        raise ValueError(f"{status} is not an HTTP status")
