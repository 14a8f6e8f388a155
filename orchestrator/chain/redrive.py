"""Re-driving runs whose step lost its worker: Redis reads only, every few seconds.

A step is in one of three places at any moment: executing (its lease is
held), scheduled (its message is in the due index), or on its way (a message
in the broker's queue). A worker that dies takes the first kind with it --
the message it was executing, or one it had reserved -- and the broker would
hand that message back only after its visibility timeout (an hour by
default). The re-driver finds such steps sooner: no lease, nothing scheduled,
and no progress for `redrive_after_seconds`; it sends the step's expected
message again. The chain accepts that message once (dedupe by expected task
id, then the lease), so a message that was only slow costs one dropped
duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.chain.runner import Dispatch, new_task_id
from orchestrator.chain.steps import StepContext
from orchestrator.domain.status import STEP_ORDER, TERMINAL, RunStatus, Step, StepState
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunRecord

_FINISHED = frozenset({StepState.DONE, StepState.SKIPPED})


def redrive_step(record: RunRecord) -> Step:
    """The step a stalled run should continue with.

    A cancel request with no decided ending yet is not a reason to go straight
    to cleanup: the current step's message is what decides the run cancelled
    (and terminates its job) before sending it to cleanup.
    """
    failed = any(record.step(s).state is StepState.FAILED for s in STEP_ORDER)
    if record.ending is not None or failed:
        return Step.CLEANUP
    for step in STEP_ORDER:
        if record.step(step).state not in _FINISHED:
            return step
    return Step.CLEANUP


def active_runs(ctx: StepContext) -> Iterator[RunRecord]:
    """Every non-terminal run, through the status indexes (ended runs are not read)."""
    for status in RunStatus:
        if status in TERMINAL:
            continue
        cursor: str | None = None
        while True:
            page, cursor = ctx.store.list_runs(status=status, limit=200, cursor=cursor)
            yield from page
            if cursor is None:
                break


# Runs checked per round trip (their lease and due-index entry, pipelined).
CHECK_BATCH = 200
# Messages of the chain queue read per pass (the oldest first) to tell a slow
# step from a lost one.
QUEUE_SCAN = 20_000
# kombu's Redis transport: messages delivered to a worker and not yet acked, by
# delivery tag, and their delivery times (its default unacked_key/unacked_index_key).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


def redrive(ctx: StepContext) -> list[Dispatch]:
    """One pass: the messages to send again for steps that lost their worker."""
    now = ctx.clock()
    after = ctx.settings.redrive_after_seconds
    dispatches: list[Dispatch] = []
    batch: list[tuple[RunRecord, Step]] = []
    queued: set[str] | None = None  # read once, when the first candidate shows up
    for record in active_runs(ctx):
        if record.terminal or not record.dispatched or now - record.updated_at < after:
            continue
        batch.append((record, redrive_step(record)))
        if len(batch) >= CHECK_BATCH:
            queued = queued if queued is not None else queued_task_ids(ctx)
            dispatches += _redrive_batch(ctx, batch, now, queued)
            batch = []
    if batch:
        queued = queued if queued is not None else queued_task_ids(ctx)
        dispatches += _redrive_batch(ctx, batch, now, queued)
    return dispatches


def queued_task_ids(ctx: StepContext) -> set[str]:
    """Task ids of the messages on their way: waiting in the chain queue (the
    oldest QUEUE_SCAN), or taken by a worker less than redrive_after ago.

    A step whose message is still queued is slow, not lost: with a backlog (more
    runs falling due than the workers poll) re-sending it would only add a
    duplicate to the queue. A message a worker has just taken (kombu's unacked
    index, by delivery time) is about to start its step and take the lease. A dead
    worker's message is in neither: not queued, and taken longer ago than that."""
    client = ctx.store.redis
    raws: list[Any] = list(client.lrange(CHAIN_QUEUE, -QUEUE_SCAN, -1))
    since = ctx.clock() - ctx.settings.redrive_after_seconds
    tags = cast(list[bytes], client.zrangebyscore(UNACKED_INDEX, since, "+inf"))
    if tags:
        for entry in client.hmget(UNACKED, tags):
            try:
                raws.append(json.loads(entry)[0] if entry is not None else None)
            except (ValueError, KeyError, TypeError, IndexError):
                continue
    ids: set[str] = set()
    for raw in raws:
        try:
            message = raw if isinstance(raw, dict) else json.loads(raw)
            ids.add(str(message["headers"]["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def _redrive_batch(
    ctx: StepContext, batch: list[tuple[RunRecord, Step]], now: float, queued: set[str]
) -> list[Dispatch]:
    """The stalled candidates of one batch: a lease or a due entry says they are not."""
    log = get_logger(component="redrive")
    keys = ctx.store.keys
    pipe = ctx.store.redis.pipeline(transaction=False)
    for record, step in batch:
        pipe.exists(keys.lock(record.run_id))
        task_id = record.step(step).task_id
        pipe.zscore(keys.due, task_id if task_id is not None else "")
    answers = pipe.execute()
    dispatches: list[Dispatch] = []
    for index, (record, step) in enumerate(batch):
        locked, scheduled = answers[2 * index], answers[2 * index + 1]
        if locked:
            continue  # a step is executing right now, and its worker renews the lease
        run_id = record.run_id
        task_id = record.step(step).task_id
        if task_id is not None and scheduled is not None:
            continue  # waiting for its due time, in Redis: nothing was lost
        if task_id is not None and task_id in queued:
            continue  # on its way: in the broker's queue behind others
        if task_id is None:
            task_id = new_task_id(run_id, step)
            ctx.store.set_step(run_id, step, StepState.PENDING, task_id=task_id)
        else:
            # Touch the record so the next pass waits another full period.
            ctx.store.append_event(run_id, "redriven", step=step.value, task_id=task_id)
            ctx.store.set_step(run_id, step, record.step(step).state, detail={"redriven_at": now})
        dispatches.append(Dispatch(step, run_id, task_id))
        log.warning("redriven_run", run_id=run_id, step=step.value, task_id=task_id)
    return dispatches
