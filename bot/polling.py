"""A loop that does one round of work whenever it is woken, else every `poll` seconds: how the
delivery of incidents' Slack work and of alerts' triage messages each run beside the listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.errors import StoreUnavailable
from bot.logs import Throttled


class PollingLoop:
    """`work()` one round at a time. A round that finds Redis away is a throttled warning; any
    other failure is logged with its traceback; both are tried again at the next round."""

    def __init__(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        poll: float,
        name: str,
        logger: logging.Logger,
        what: str,
    ) -> None:
        self.work = work
        self.poll = poll
        self.name = name  # of its task
        self.log = logger
        self.what = what  # in its log lines: "delivery", "triage"
        self._warn = Throttled(logger)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = 0
        self._stopping = False

    def wake(self) -> None:
        """New work was stored by this process: look now rather than at the next poll."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def idle(self) -> bool:
        """No round under way and none asked for."""
        return self._busy == 0 and not self._wake.is_set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the round under way (within `grace` seconds), then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        # A stop flag rather than cancellation: Python 3.11's wait_for can swallow a cancel that
        # arrives as its timeout fires, which left shutdown waiting for this task forever.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            if self._stopping:
                return
            self._wake.clear()
            self._busy += 1
            try:
                await self.work()
            except StoreUnavailable as exc:
                self._warn.warn("store", "%s paused, store unavailable: %s", self.what, exc)
            except Exception:
                self.log.exception("%s failed; trying again on the next poll", self.what)
            finally:
                self._busy -= 1
