"""The due index: task messages that must be sent later, kept in Redis.

A waiting step (a poll in a few seconds, a retry after a throttle) used to be
a Celery countdown message, held unacked inside one worker until it fell due:
if that worker died, the wait was invisible until the broker's visibility
timeout (an hour). Here a wait is a row in a sorted set that any worker's
chain clock claims when it falls due and sends right away, so a wait survives
any worker and is visible to the re-driver.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from orchestrator.store.keys import Keys
from orchestrator.store.lua import load_script

CLAIM_BATCH = 100


class DueIndex:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._claim = client.register_script(load_script("claim_due"))

    def schedule(self, task_id: str, message: dict[str, Any], due_at: float) -> None:
        """Send `message` (JSON-able) at `due_at`; scheduling the same task id again moves it."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.due_messages, task_id, json.dumps(message, separators=(",", ":")))
        pipe.zadd(self.keys.due, {task_id: due_at})
        pipe.execute()

    def claim(self, now: float, limit: int = CLAIM_BATCH) -> list[dict[str, Any]]:
        """The messages due at `now`, removed from the index: the caller sends them."""
        claimed = cast(
            list[Any], self._claim(keys=[self.keys.due, self.keys.due_messages], args=[now, limit])
        )
        return [json.loads(raw) for raw in claimed]

    def bring_forward(self, task_id: str, due_at: float) -> bool:
        """Make a scheduled message due at `due_at` if that is sooner; False when
        it is not in the index (already claimed and sent: nothing to hurry)."""
        return bool(self.redis.zadd(self.keys.due, {task_id: due_at}, xx=True, lt=True, ch=True))

    def scheduled(self, task_id: str) -> bool:
        return self.redis.zscore(self.keys.due, task_id) is not None

    def __len__(self) -> int:
        return int(self.redis.zcard(self.keys.due))
