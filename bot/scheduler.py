"""The clock of reminders: APScheduler polls the shared schedule in Redis from every process.

APScheduler keeps only its own in-memory job (nothing of it goes to Redis, nothing is pickled);
which reminders are due, and who delivers each, is decided by the atomic claim in Redis. The
same scheduler runs the retention sweep once a minute (`housekeeping`), safe in every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


class ReminderClock:
    def __init__(
        self,
        deliver: Callable[[], Awaitable[int]],
        poll_seconds: float = 0.25,
        housekeeping: Callable[[], Awaitable[int]] | None = None,
        housekeeping_seconds: float = 60.0,
    ) -> None:
        self.deliver = deliver
        self.poll_seconds = poll_seconds
        self.housekeeping = housekeeping
        self.housekeeping_seconds = housekeeping_seconds
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self._poll,
            "interval",
            seconds=self.poll_seconds,
            id="deliver-due-reminders",
            max_instances=1,  # a slow poll is not stacked; the next one picks up the rest
            coalesce=True,
            misfire_grace_time=None,
        )
        if self.housekeeping is not None:
            scheduler.add_job(
                self._housekeep,
                "interval",
                seconds=self.housekeeping_seconds,
                id="retention-sweep",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None

    async def _poll(self) -> None:
        try:
            await self.deliver()
        except asyncio.CancelledError:
            _stopped_midway("reminder poll")
        except Exception:
            log.exception("delivering due reminders failed; retrying on the next poll")

    async def _housekeep(self) -> None:
        assert self.housekeeping is not None
        try:
            await self.housekeeping()
        except asyncio.CancelledError:
            _stopped_midway("retention sweep")
        except Exception:
            log.exception("the retention sweep failed; retrying in %.0f s", self.housekeeping_seconds)


def _stopped_midway(job: str) -> None:
    """`stop()` cancels a job that is running: the end of the job, not a failure (APScheduler
    would log the cancellation with a traceback). What it had claimed, another poll takes up."""
    log.debug("the %s was stopped midway", job)
