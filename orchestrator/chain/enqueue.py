"""Hand a run to the chain: create it idempotently, then send its first task.

Only the run id travels in the task; everything else is in the store. The
first step's task is sent by name, so a producer (API, scheduler, another
service) needs neither the worker code nor its imports.
"""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.chain.queue import send_step, task_name
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import STEP_ORDER
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunRecord, RunStore


def enqueue_run(
    spec: RunSpec,
    *,
    store: RunStore,
    broker_url: str,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    submitted_by: str | None = None,
    notify: NotifySpec | None = None,
) -> tuple[RunRecord, bool]:
    """Create the run (idempotently) and dispatch its first step unless already done.

    Returns (record, created). A run that exists but was never dispatched (the
    producer died between the two writes) is dispatched now; that can send the
    first task twice in a race, which is safe because every step is idempotent.
    """
    record, created = store.create_run(
        spec,
        run_id=run_id,
        idempotency_key=idempotency_key,
        submitted_by=submitted_by,
        notify=notify,
    )
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
