"""How long the jobs of earlier runs of the same spec name ran: the poll schedule's hint.

poll_job records each succeeded job's runtime (Batch AI's start -> end) here,
and a later run of the same name polls once just after that typical runtime
instead of waiting out the back-off (up to ORCH_POLL_MAX_SECONDS): a repeated
job's end is then noticed within seconds at the cost of at most one read.
"""

from __future__ import annotations

import statistics

import redis

from orchestrator.store.keys import Keys

# The last runtimes kept per name; the hint is their median.
KEPT = 5
# A name unused this long forgets its runtimes.
TTL_SECONDS = 30 * 86400


class JobRuntimes:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def record(self, name: str, seconds: float) -> None:
        key = self.keys.job_runtimes(name)
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(key, repr(max(0.0, seconds)))
        pipe.ltrim(key, 0, KEPT - 1)
        pipe.expire(key, TTL_SECONDS)
        pipe.execute()

    def typical(self, name: str) -> float | None:
        """The median of the last KEPT runtimes of `name`, or None before its first."""
        values = [float(raw) for raw in self.redis.lrange(self.keys.job_runtimes(name), 0, -1)]
        return statistics.median(values) if values else None
