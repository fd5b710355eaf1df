"""Redis for alert groups: one record per group (`keys.alert_group`), written only by compare-and-set.

Alertmanager retries, and several bot processes may take notifications of one group at once: a
change is decided on the record as read and written only if the record is still exactly that
(one Lua script), else decided again on the newer one. Each write waits for a replica the way an
incident's does (REDIS_WAIT_REPLICAS), so a notification answered 200 or a click answered as
applied survives a failover like an incident write. Every write that leaves work for the
triage loop hints it in `keys.TRIAGE_DUE` the way the incident outbox is hinted: before the write
(due a few seconds later, in case this process dies right after it) and after it (due at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot import keys
from bot.alert_groups import KEPT_FOR, GroupRecord
from bot.errors import StoreUnavailable
from bot.store import WRITE_RETRY_BUDGET, IncidentStore, QueuedScript, translate_errors

# Write ARGV[2] only if the record is still ARGV[1] ('' for none): 1 written, 0 it moved. With
# ARGV[3] (ms) the record expires that long from now (a notification), else it keeps its expiry.
_SWAP = """
local raw = redis.call('GET', KEYS[1])
if (raw or '') ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""

Decide = Callable[[GroupRecord | None], Awaitable[GroupRecord | None]]


class AlertGroupStore:
    def __init__(self, store: IncidentStore) -> None:
        self.store = store  # its hints, claims and locks serve the triage loop too
        self.redis = store.redis
        self._swap = self.redis.register_script(_SWAP)

    @translate_errors
    async def get(self, group_id: str) -> GroupRecord | None:
        raw = await self.redis.get(keys.alert_group(group_id))
        return None if raw is None else GroupRecord.model_validate_json(raw)

    async def update(
        self, group_id: str, decide: Decide, *, at: datetime, notified: bool = False
    ) -> tuple[GroupRecord | None, bool]:
        """Read, decide, and write only if the record did not move meanwhile (else decide again).

        `decide` gets the record (None: there is none) and returns it changed, or None to write
        nothing. `notified`: a notification's write, which keeps the record KEPT_FOR from now.
        Returns (the record after, whether this call wrote it)."""
        deadline = time.monotonic() + WRITE_RETRY_BUDGET
        while True:
            outcome = await self._update_once(group_id, decide, at, notified)
            if outcome is not None:
                return outcome
            if time.monotonic() > deadline:
                raise StoreUnavailable("the alert group kept changing", written=False)
            await asyncio.sleep(0.005)

    @translate_errors
    async def _update_once(
        self, group_id: str, decide: Decide, at: datetime, notified: bool
    ) -> tuple[GroupRecord | None, bool] | None:
        key = keys.alert_group(group_id)
        raw = await self.redis.get(key)
        current = None if raw is None else GroupRecord.model_validate_json(raw)
        decided = await decide(current)
        if decided is None:
            return current, False
        if decided.needs_work:
            await self.store.hint_before(group_id, at, due=keys.TRIAGE_DUE)
        expiry = str(int(KEPT_FOR.total_seconds() * 1000)) if notified else ""
        swap = QueuedScript(self._swap, [key], [raw or "", decided.model_dump_json(), expiry])
        if not await self.store.run_script_waiting(swap):
            return None
        if decided.needs_work:
            with contextlib.suppress(StoreUnavailable):  # else the hint before serves, in seconds
                await self.store.hint(group_id, at, due=keys.TRIAGE_DUE)
        return decided, True
