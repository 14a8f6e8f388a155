"""Hand a run to the chain: create it idempotently, then send its first task.

Only the run id travels in the task; everything else is in the store. The
first step's task is sent by name, so a producer (API, scheduler, another
service) needs neither the worker code nor its imports.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from celery import Celery

from orchestrator.logs import get_logger
from orchestrator.spec import RunSpec, parse_spec
from orchestrator.status import STEP_ORDER, Step
from orchestrator.store import RunRecord, RunStore

CHAIN_QUEUE = "batchai"
TASK_PREFIX = "batchai."


def task_name(step: Step) -> str:
    """The Celery task name of a step, e.g. batchai.ensure_resource_group."""
    return f"{TASK_PREFIX}{step.value}"


@lru_cache(maxsize=8)
def producer_app(broker_url: str) -> Celery:
    """A send-only Celery app for `broker_url` (cached: one connection pool per broker)."""
    app = Celery("orchestrator-producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_default_queue=CHAIN_QUEUE,
        broker_connection_retry_on_startup=True,
    )
    return app


def send_step(broker_url: str, step: Step, run_id: str) -> str:
    """Send one step's task for `run_id` to the chain queue; returns the task id."""
    result = producer_app(broker_url).send_task(task_name(step), args=[run_id], queue=CHAIN_QUEUE)
    return str(result.id)


def enqueue_run(
    spec: RunSpec,
    *,
    store: RunStore,
    broker_url: str,
    run_id: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[RunRecord, bool]:
    """Create the run (idempotently) and dispatch its first step unless already done.

    Returns (record, created). A run that exists but was never dispatched (the
    producer died between the two writes) is dispatched now; that can send the
    first task twice in a race, which is safe because every step is idempotent.
    """
    record, created = store.create_run(spec, run_id=run_id, idempotency_key=idempotency_key)
    log = get_logger(run_id=record.run_id)
    if record.dispatched or record.terminal:
        log.info("run already dispatched", created=created, status=record.status.value)
        return record, created
    first = STEP_ORDER[0]
    task_id = send_step(broker_url, first, record.run_id)
    record = store.mark_dispatched(record.run_id)
    log.info("run enqueued", created=created, task=task_name(first), task_id=task_id)
    return record, created


def enqueue_spec_dict(
    data: dict[str, Any],
    *,
    redis_url: str,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[RunRecord, bool]:
    """enqueue_run for services that share the Redis but not the API.

    `data` is validated like any spec (SpecError names the field); `parameters`
    are merged over the spec's. The Redis at `redis_url` is both the store and
    the broker.
    """
    spec = parse_spec(data)
    if parameters:
        spec = spec.with_parameters(parameters)
    client = redis.Redis.from_url(redis_url)
    try:
        return enqueue_run(
            spec,
            store=RunStore(client),
            broker_url=redis_url,
            run_id=run_id,
            idempotency_key=idempotency_key,
        )
    finally:
        client.close()
