"""Logging: one set-up for every process (text or JSON lines, with the incident and request a
line is about), and warnings that would repeat every poll (Redis down, Slack down) logged at
most once a minute per kind, with how many were held back."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

QUIET_SECONDS = 60.0


class Throttled:
    """`warn(kind, message, *args)`: the first of a kind now, then at most one per minute."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> bool:
        """Log it (True) or count it for the next one of its kind (False)."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < QUIET_SECONDS:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        if held:
            message += f" ({held} more like this in the last {int(now - (last or now))} s)"
        self.logger.warning(message, *args)
        self._last[kind] = now
        return True


# What a log line is about, where known: set by the code that learns it, read by every record
# logged in the same task (Bolt runs each listener in a task of its own, which copies these).
REQUEST: contextvars.ContextVar[str | None] = contextvars.ContextVar("request", default=None)
INCIDENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("incident", default=None)



def about_incident(incident_id: str) -> None:
    """Within a request's task: the rest of the request's lines name this incident. (Outside a
    request, in a loop that serves many incidents, use `incident_context`.)"""
    if REQUEST.get() is not None:
        INCIDENT.set(incident_id)


@contextlib.contextmanager
def incident_context(incident_id: str) -> Iterator[None]:
    """The lines logged inside name this incident."""
    token = INCIDENT.set(incident_id)
    try:
        yield
    finally:
        INCIDENT.reset(token)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(where)s"


class ContextFilter(logging.Filter):
    """Puts the request and incident this task works on into every record (`record.incident`,
    `record.request`, and `record.where` for the text format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        incident = getattr(record, "incident", None) or INCIDENT.get()
        request = getattr(record, "request", None) or REQUEST.get()
        record.incident, record.request = incident, request
        parts = [f"{key}={value}" for key, value in (("incident", incident), ("request", request)) if value]
        record.where = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, incident and request
    where known, and the traceback as one string field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("incident", "request"):
            value = getattr(record, key, None)
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the whole process: one stderr handler in the chosen
    format, used by the bot and, handed to uvicorn as its `log_config`, by every worker process
    and uvicorn's own loggers (which otherwise print their own format)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers carry handlers of their own unless told otherwise.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
            # APScheduler logs every run of the 4-per-second poll at INFO: about 650,000 lines a day,
            # and a run skipped while the last one still works at WARNING, though that is how the
            # jobs are meant to run (one at a time, coalesced); what they fail to do, they log.
            "apscheduler": {"level": "ERROR"},
        },
    }


def configure(level: str, fmt: str) -> None:
    """Set up logging for this process: the same in `run`, its workers, `deliver` and `check`."""
    logging.config.dictConfig(logging_config(level, fmt))
    # Python's warnings (a library's DeprecationWarning...) as log records, in the same format.
    logging.captureWarnings(True)
