"""The per-process StepContext of a worker (built lazily, after the fork)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from orchestrator.azure.gateway import AzureGateway
from orchestrator.chain.steps import StepContext
from orchestrator.domain.status import Step
from orchestrator.observability.azure_stats import redis_request_sink
from orchestrator.settings import get_settings
from orchestrator.store import RunStore
from orchestrator.store.connection import redis_client

AfterStepWork = Callable[[StepContext, Step, str], None]


def build_context(after_step_work: AfterStepWork | None = None) -> StepContext:
    settings = get_settings()
    client = redis_client(settings.redis_target)
    store = RunStore(client)
    gateway = AzureGateway(settings)
    gateway.recorder.sink = redis_request_sink(client, store.keys)
    return StepContext(
        settings=settings, store=store, gateway=gateway, after_step_work=after_step_work
    )


@lru_cache(maxsize=1)
def worker_context() -> StepContext:
    return build_context()
