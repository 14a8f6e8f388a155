"""The per-process StepContext of a worker (built lazily, after the fork)."""

from __future__ import annotations

from functools import lru_cache

import redis

from orchestrator.gateway import AzureGateway
from orchestrator.settings import get_settings
from orchestrator.steps import StepContext
from orchestrator.store import RunStore


@lru_cache(maxsize=1)
def worker_context() -> StepContext:
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    return StepContext(settings=settings, store=RunStore(client), gateway=AzureGateway(settings))
