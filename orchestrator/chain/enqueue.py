"""Hand a run to the chain: create it idempotently, then send its first task.

Only the run id travels in the task; everything else is in the store. The
first step's task is sent by name, so a producer (API, scheduler, another
service) needs neither the worker code nor its imports.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis
from redis.connection import parse_url

from orchestrator.azure.gateway import AzureGateway
from orchestrator.chain.queue import CHAIN_QUEUE, send_step, step_message, task_name
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import STEP_ORDER
from orchestrator.inputs.checks import check_inputs
from orchestrator.inputs.submit import upload_local_inputs
from orchestrator.inputs.uploads import ShareUploads
from orchestrator.observability.logs import get_logger
from orchestrator.settings import Settings, get_settings
from orchestrator.store import RunRecord, RunStore
from orchestrator.store.connection import RedisTarget, redis_client


def enqueue_run(
    spec: RunSpec,
    *,
    store: RunStore,
    broker_url: RedisTarget | str,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    input_roots: Sequence[Path] = (),
    submitted_by: str | None = None,
    notify: NotifySpec | None = None,
    sweep_id: str | None = None,
) -> tuple[RunRecord, bool]:
    """Create the run (idempotently) and dispatch its first step unless already done.

    The spec's inputs are checked first (InputRejected names the field, and
    nothing is written): a path must lie under `input_roots` (ORCH_INPUT_ROOTS),
    an upload must be committed. Local paths of a submitter are uploaded before
    this (orchestrator/inputs/submit.py). `broker_url` is Settings.redis_target (or
    a plain REDIS_URL). Returns (record, created).

    When the broker is the store's Redis (it always is: both are REDIS_URL),
    the run is created and its first task pushed onto the chain queue in one
    atomic script: one round trip, no Celery producer, and a Redis that fails
    leaves neither. Otherwise, and for a run that exists but was never
    dispatched (created by an older producer that died between its two
    writes), the task is sent through Celery; that can send the first task
    twice in a race, which is safe because every step is idempotent.
    """
    check_inputs(spec, input_roots=input_roots, book=store.uploads, now=time.time())
    first = STEP_ORDER[0]
    sent: list[str] = []

    def first_task(new_run_id: str) -> tuple[str, str]:
        task_id, message = step_message(first, new_run_id)
        sent.append(task_id)
        return CHAIN_QUEUE, message

    fused = _same_redis(store.redis, broker_url)
    record, created = store.create_run(
        spec,
        run_id=run_id,
        idempotency_key=idempotency_key,
        submitted_by=submitted_by,
        notify=notify,
        sweep_id=sweep_id,
        dispatch=first_task if fused else None,
    )
    log = get_logger(run_id=record.run_id)
    if created and fused:
        log.info("run enqueued", created=True, task=task_name(first), task_id=sent[-1])
        return record, created
    if record.dispatched or record.terminal:
        log.info("run already dispatched", created=created, status=record.status.value)
        return record, created
    task_id = send_step(broker_url, first, record.run_id)
    record = store.mark_dispatched(record.run_id)
    log.info("run enqueued", created=created, task=task_name(first), task_id=task_id)
    return record, created


def _same_redis(client: redis.Redis, broker: RedisTarget | str) -> bool:
    """Whether `broker` names the Redis `client` talks to (then one script can
    write the run and queue its task). A Sentinel target is the store's own:
    every caller builds both from Settings.redis_target."""
    target = RedisTarget.of(broker)
    if target.is_sentinel:
        return True
    return _address(target.url) == _address_of(client.connection_pool.connection_kwargs)


@lru_cache(maxsize=16)
def _address(url: str) -> tuple[object, ...]:
    return _address_of(parse_url(url))  # type: ignore[no-untyped-call]


def _address_of(kwargs: dict[str, Any]) -> tuple[object, ...]:
    return (
        kwargs.get("host", "localhost"),
        int(kwargs.get("port", 6379)),
        kwargs.get("path"),
        int(kwargs.get("db", 0) or 0),
    )


def direct_uploads(settings: Settings, store: RunStore) -> ShareUploads:
    """Uploads straight to the share, for a submitter holding the Azure settings."""
    return ShareUploads(
        gateway=AzureGateway(settings),
        book=store.uploads,
        share=settings.azure_file_share,
        max_bytes=settings.input_max_bytes,
    )


def enqueue_spec_dict(
    data: dict[str, Any],
    *,
    redis_url: RedisTarget | str,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    parameters: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    settings: Settings | None = None,
) -> tuple[RunRecord, bool]:
    """enqueue_run for services that share the Redis but not the API.

    `data` is validated like any spec (SpecError names the field); `parameters`
    are merged over the spec's. Input paths are files of this machine (relative
    ones resolve against `base_dir`, else the current folder): they are uploaded
    to the share first, with the Azure settings of `settings` (default: the
    environment's). The Redis at `redis_url` is both the store and the broker.
    """
    spec = parse_spec(data).with_base_dir(base_dir or Path.cwd())
    if parameters:
        spec = spec.with_parameters(parameters)
    settings = settings or get_settings()
    client = redis_client(redis_url)
    try:
        store = RunStore(client)
        spec, _ = upload_local_inputs(spec, direct_uploads(settings, store))
        return enqueue_run(
            spec,
            store=store,
            broker_url=redis_url,
            run_id=run_id,
            idempotency_key=idempotency_key,
            input_roots=settings.input_roots,
        )
    finally:
        client.close()
