"""Azure request counts shared by every worker process, in Redis.

The gateway counts each request (operation, outcome) in its own process's
prometheus Counter; workers also add them to one Redis hash so the API's
/metrics can expose the fleet-wide total without scraping each worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import redis

FIELD_SEPARATOR = "|"


def requests_key(namespace: str = "orch") -> str:
    return f"{namespace}:stats:azure_requests"


def redis_request_sink(client: redis.Redis, namespace: str = "orch") -> Callable[[str, str], None]:
    """A callback for RequestRecorder: HINCRBY per request; never raises."""
    key = requests_key(namespace)

    def record(operation: str, outcome: str) -> None:
        # Counting must never fail a step.
        with contextlib.suppress(redis.RedisError):
            client.hincrby(key, f"{operation}{FIELD_SEPARATOR}{outcome}", 1)

    return record


def request_counts(client: redis.Redis, namespace: str = "orch") -> dict[tuple[str, str], int]:
    """{(operation, outcome): count} summed over every worker."""
    counts: dict[tuple[str, str], int] = {}
    for field, value in client.hgetall(requests_key(namespace)).items():
        text = field.decode() if isinstance(field, bytes) else str(field)
        operation, _, outcome = text.partition(FIELD_SEPARATOR)
        counts[(operation, outcome)] = int(value)
    return counts
