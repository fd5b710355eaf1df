"""Token buckets that reproduce the Web API rate limits the bot is most likely to hit.

https://docs.slack.dev/apis/web-api/rate-limits: chat.postMessage allows about one message
per second per channel with short bursts; chat.update is Tier 3 (50+ per minute);
conversations.create is Tier 2 (20+ per minute). Slack answers HTTP 429 with an integer
`Retry-After` header.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class Bucket(BaseModel):
    """`burst` calls at once, refilled at `per_second`."""

    model_config = ConfigDict(frozen=True)

    burst: int = Field(ge=1)
    per_second: float = Field(gt=0)

    @classmethod
    def per_minute(cls, calls: int, *, burst: int | None = None) -> Bucket:
        return cls(burst=burst if burst is not None else calls, per_second=calls / 60)


class RateLimitConfig(BaseModel):
    """Buckets per method; a test can make any of them tight."""

    model_config = ConfigDict(frozen=True)

    chat_post_message_per_channel: Bucket = Bucket(burst=3, per_second=1.0)
    chat_update: Bucket = Bucket.per_minute(50)
    conversations_create: Bucket = Bucket.per_minute(20)

    def bucket_for(self, method: str) -> Bucket | None:
        return {
            "chat.postMessage": self.chat_post_message_per_channel,
            "chat.update": self.chat_update,
            "conversations.create": self.conversations_create,
        }.get(method)


class RateLimiter:
    def __init__(self, config: RateLimitConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        # (method, key) -> (tokens left, when they were counted)
        self._levels: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, method: str, key: str = "workspace") -> int | None:
        """Spends one call; returns None if allowed, else the seconds to wait (Retry-After)."""
        bucket = self._config.bucket_for(method)
        if bucket is None:
            return None
        now = self._clock()
        tokens, since = self._levels.get((method, key), (float(bucket.burst), now))
        tokens = min(float(bucket.burst), tokens + (now - since) * bucket.per_second)
        if tokens >= 1.0:
            self._levels[(method, key)] = (tokens - 1.0, now)
            return None
        self._levels[(method, key)] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / bucket.per_second))
