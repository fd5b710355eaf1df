"""Re-rendering checklist messages after ticks: coalesced per message, newest state wins."""

from __future__ import annotations

import asyncio
import logging

from bot.blocks.checklist import checklist_message
from bot.errors import NotAChecklistItem, StoreUnavailable
from bot.models import MessageState
from bot.slack_gateway import SlackGateway
from bot.store import IncidentStore

log = logging.getLogger(__name__)

MessageKey = tuple[str, str]  # (incident id, message ts)


class ChecklistRefresher:
    """At most one `chat.update` in flight per message in this process, spaced `min_interval`
    apart, so a burst of ticks becomes a few updates. After each update the message's revision
    in Redis is checked again: if another process (or a click that raced this one) moved it on,
    the message is rendered again, so the last update always shows the newest state.

    This is the fast path: each accepted revision is recorded, and the delivery loop re-renders
    any message whose newest revision Slack never accepted (this process failed or died)."""

    def __init__(
        self,
        store: IncidentStore,
        slack: SlackGateway,
        min_interval: float = 0.3,
        retry_delay: float = 1.0,
        max_retries: int = 5,
    ) -> None:
        self.store = store
        self.slack = slack
        self.min_interval = min_interval
        self.retry_delay = retry_delay
        self.max_retries = max_retries
        self._pending: dict[MessageKey, MessageState] = {}
        self._tasks: dict[MessageKey, asyncio.Task[None]] = {}
        self._newest: dict[MessageKey, int] = {}  # newest revision seen, while a task runs

    def refresh(self, state: MessageState) -> None:
        key = (state.incident_id, state.message.ts)
        if state.rev < self._newest.get(key, -1):
            return  # a newer state of this message is already queued or sent
        self._newest[key] = state.rev
        self._pending[key] = state
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key))

    async def drain(self) -> None:
        """Wait for every queued update (used at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _run(self, key: MessageKey) -> None:
        retries = 0
        try:
            while key in self._pending:
                state = self._pending.pop(key)
                rendered = checklist_message(state)
                sent = await self.slack.update_message(state.message.channel, state.message.ts, rendered)
                if sent.retryable and retries < self.max_retries:
                    # Still rate limited after the client's own retries: keep the newest state
                    # queued and try again, rather than leave the message showing an old one.
                    retries += 1
                    self._pending.setdefault(key, state)
                    await asyncio.sleep(self.retry_delay)
                    continue
                retries = 0
                shown = state.rev if sent.ok else None
                await asyncio.sleep(self.min_interval)  # clicks arriving now join the next update
                if key in self._pending:
                    if shown is not None:
                        await self.store.mark_shown(key[0], key[1], shown)
                    continue
                # One round trip: record what Slack accepted, and read the newest revision.
                if await self.store.mark_shown(key[0], key[1], shown) != state.rev:
                    fresh = await self.store.message_state(*key)
                    self._newest[key] = max(fresh.rev, self._newest.get(key, -1))
                    self._pending[key] = fresh
        except (StoreUnavailable, NotAChecklistItem) as exc:
            log.warning("checklist %s not refreshed: %s", key, exc)
        except Exception:
            log.exception("checklist %s not refreshed", key)
        finally:
            self._tasks.pop(key, None)
            self._newest.pop(key, None)
