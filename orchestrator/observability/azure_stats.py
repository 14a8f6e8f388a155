"""Azure request counts shared by every worker process, in Redis.

The gateway counts each request (operation, outcome) in its own process's
prometheus Counter; workers also add them to one Redis hash so the API's
/metrics can expose the fleet-wide total without scraping each worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import redis

from orchestrator.store.keys import Keys

FIELD_SEPARATOR = "|"


def redis_request_sink(client: redis.Redis, keys: Keys) -> Callable[[str, str], None]:
    """A callback for RequestRecorder: HINCRBY per request; never raises."""
    key = keys.azure_requests

    def record(operation: str, outcome: str) -> None:
        # Counting must never fail a step.
        with contextlib.suppress(redis.RedisError):
            client.hincrby(key, f"{operation}{FIELD_SEPARATOR}{outcome}", 1)

    return record


def request_counts(client: redis.Redis, keys: Keys) -> dict[tuple[str, str], int]:
    """{(operation, outcome): count} summed over every worker."""
    counts: dict[tuple[str, str], int] = {}
    for field, value in client.hgetall(keys.azure_requests).items():
        text = field.decode() if isinstance(field, bytes) else str(field)
        operation, _, outcome = text.partition(FIELD_SEPARATOR)
        counts[(operation, outcome)] = int(value)
    return counts
