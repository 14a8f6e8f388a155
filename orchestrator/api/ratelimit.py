"""Per-key rate limits, counted in Redis so that every API process shares them.

The counting is the `limits` library's moving window on its Redis storage (a
kept implementation, atomic in Lua), under the prefix store/keys.py names.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from orchestrator.domain.access import RateLimit


@lru_cache(maxsize=256)
def _item(rate: RateLimit) -> RateLimitItem:
    return parse(f"{rate.count}/{rate.per} {rate.unit}")


class KeyRateLimiter:
    def __init__(self, redis_url: str, client: redis.Redis, prefix: str) -> None:
        # The API's own connection pool: no second pool per process.
        storage = RedisStorage(redis_url, connection_pool=client.connection_pool, key_prefix=prefix)
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, name: str, rate: RateLimit) -> int | None:
        """Count one request of the key `name`; None if allowed, else the whole
        seconds until the window lets one more through (Retry-After)."""
        item = _item(rate)
        if self.limiter.hit(item, name):
            return None
        reset = self.limiter.get_window_stats(item, name).reset_time
        return max(1, math.ceil(reset - time.time()))
