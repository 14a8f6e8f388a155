"""Runs one step of one run, with every rule the chain needs to be safe under
redelivery, duplicate delivery and concurrent workers -- without Celery.

The task layer (workers/tasks.py) calls `run_step` with the id of the task
message it is executing and sends whatever Dispatch comes back. The rules:

- Each step's *expected* task id is written to the store before its message is
  sent. A message whose id is not the expected one is a stale duplicate and is
  dropped; a redelivered message (same id, after a worker died) is accepted.
- A per-run lease (chain/lease.py: SET NX PX, renewed by a heartbeat) keeps
  two deliveries of the same message from executing concurrently; the loser
  tries again a little later and then finds the step already handled. A holder
  whose lease was lost (it stalled past the lease) stops before recording
  anything.
- A step found DONE only re-sends the next step when that one never started
  (the worker died between recording and sending it); otherwise it is a
  duplicate and does nothing.
- A cancel request or an already decided ending sends the run to cleanup at
  the next step boundary; cleanup ends the run with the decided ending.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.chain import sweep_trials, webhooks
from orchestrator.chain.lease import Lease
from orchestrator.chain.steps import (
    STEP_FUNCTIONS,
    Done,
    Fail,
    StepContext,
    Wait,
    final_status,
    poll_countdown,
)
from orchestrator.domain.status import (
    STATUS_DURING_STEP,
    STEP_ORDER,
    TERMINAL,
    FailureReason,
    RunStatus,
    Step,
    StepState,
)
from orchestrator.observability.logs import get_logger
from orchestrator.store import IllegalTransition, RunNotFound, RunRecord

# Seconds before a delivery that found the run locked looks again.
LOCK_BUSY_COUNTDOWN = 1.0
# Steps after which a Batch AI job may exist (a cancel must terminate it).
_JOB_MAY_EXIST = frozenset({Step.POLL_JOB, Step.COLLECT_OUTPUTS})


@dataclass(frozen=True)
class Dispatch:
    """A task message to send: step `step` of the run, with id `task_id`."""

    step: Step
    run_id: str
    task_id: str
    countdown: float = 0.0
    # Transient-error retries of this message so far (carried in the message).
    retries: int = 0


def new_task_id(run_id: str, step: Step) -> str:
    """Readable and unique: which run and step a message in the broker is for."""
    return f"{run_id}.{step.value}.{uuid.uuid4().hex[:10]}"


def run_step(ctx: StepContext, step: Step, run_id: str, task_id: str) -> Dispatch | None:
    """Execute `step` for `run_id` as message `task_id`; the message to send next, if any.

    TransientAzureError propagates (the caller retries the same message);
    PermanentAzureError becomes a failed run; other exceptions propagate too
    (the caller turns them into a failed run with fail_step).
    """
    lease = Lease.acquire(
        ctx.store.redis, ctx.store.keys, run_id, task_id, ctx.settings.lease_seconds
    )
    if lease is None:
        return Dispatch(step, run_id, task_id, LOCK_BUSY_COUNTDOWN)
    with lease:
        return _run_leased(ctx, step, run_id, task_id, lease)


def _run_leased(
    ctx: StepContext, step: Step, run_id: str, task_id: str, lease: Lease
) -> Dispatch | None:
    log = get_logger(run_id=run_id, step=step.value, task_id=task_id)
    try:
        record = ctx.store.get(run_id)
    except RunNotFound:
        log.warning("run_not_found")
        return None
    if record.terminal:
        log.info("run_already_terminal", status=record.status.value)
        return None
    current = record.step(step)
    if current.task_id is not None and current.task_id != task_id:
        log.info("stale_message_dropped", expected_task_id=current.task_id)
        return None
    if current.state in (StepState.DONE, StepState.SKIPPED, StepState.FAILED):
        return _resend_following(ctx, record, step)

    if step is not Step.CLEANUP:
        if record.cancel_requested and record.ending is None:
            return _cancel(ctx, record, step)
        if record.ending is not None:
            ctx.store.set_step(run_id, step, StepState.SKIPPED)
            return _to_cleanup(ctx, run_id)
        try:
            ctx.store.transition(run_id, STATUS_DURING_STEP[step])
        except IllegalTransition as exc:
            # Only possible when the run turned terminal meanwhile (cancel of a
            # queued run): nothing left to do.
            log.info("transition_refused", error=str(exc))
            return None

    ctx.store.set_step(run_id, step, StepState.RUNNING, task_id=task_id, attempt=True)
    log.info("step_started")
    try:
        outcome = STEP_FUNCTIONS[step](ctx, run_id)
    except PermanentAzureError as exc:
        log.warning(
            "step_permanent_error",
            reason=exc.reason.value,
            error=str(exc),
            azure_request_id=exc.request_id,
        )
        outcome = Fail(exc.reason, str(exc))
    if ctx.after_step_work is not None:
        ctx.after_step_work(ctx, step, run_id)
    if lease.lost:
        # Another worker may own the step by now: writing would race it. The
        # Azure work done here is adopted by that worker's idempotent calls.
        log.warning("lease_lost_outcome_dropped")
        return None

    if isinstance(outcome, Done):
        ctx.store.set_step(run_id, step, StepState.DONE, detail=outcome.detail)
        log.info("step_done", azure_request_id=ctx.gateway.last_request_id, **outcome.detail)
        if step is Step.CLEANUP:
            _finish(ctx, run_id)
            return None
        following = step.next()
        assert following is not None
        return _send(ctx, run_id, following, StepState.PENDING)
    if isinstance(outcome, Wait):
        polls = int(ctx.store.get(run_id).step(step).detail.get("polls", 0))
        countdown = poll_countdown(ctx.settings, polls, outcome.detail.get("poll_by"), ctx.clock())
        dispatch = Dispatch(step, run_id, new_task_id(run_id, step), countdown)
        ctx.store.set_step(
            run_id,
            step,
            StepState.WAITING,
            task_id=dispatch.task_id,
            detail={**outcome.detail, "polls": polls + 1},
        )
        log.info("step_waiting", countdown=round(countdown, 3), **outcome.detail)
        return dispatch
    return fail_step(ctx, step, run_id, outcome.reason, outcome.error)


def _send(ctx: StepContext, run_id: str, step: Step, state: StepState) -> Dispatch:
    dispatch = Dispatch(step, run_id, new_task_id(run_id, step))
    # Recorded before sending: the message is only accepted if it is the expected one.
    ctx.store.set_step(run_id, step, state, task_id=dispatch.task_id)
    return dispatch


def _to_cleanup(ctx: StepContext, run_id: str) -> Dispatch | None:
    record = ctx.store.get(run_id)
    cleanup = record.step(Step.CLEANUP)
    if cleanup.state is not StepState.PENDING or cleanup.task_id is not None:
        # Cleanup was already sent (or runs); do not start a second one.
        return None
    _skip_the_rest(ctx, record)
    return _send(ctx, run_id, Step.CLEANUP, StepState.PENDING)


def _skip_the_rest(ctx: StepContext, record: RunRecord) -> None:
    """Steps a run going to cleanup will never reach say so: skipped, not pending."""
    never_reached = [
        step
        for step in STEP_ORDER
        if step is not Step.CLEANUP
        and record.step(step).state is StepState.PENDING
        and record.step(step).task_id is None
    ]
    if not never_reached:
        return

    def skip(current: RunRecord) -> None:
        for step in never_reached:
            if current.step(step).state is StepState.PENDING:
                current.steps[step] = current.step(step).model_copy(
                    update={"state": StepState.SKIPPED}
                )

    ctx.store.update(record.run_id, skip)


def _resend_following(ctx: StepContext, record: RunRecord, step: Step) -> Dispatch | None:
    """A message for a finished step: re-send what follows only if it never started.

    Cleanup finished (done, or failed) but the run not ended means the worker
    died between the two writes: end it now, whatever its ending.
    """
    if step is Step.CLEANUP:
        _finish(ctx, record.run_id)
        return None
    following = Step.CLEANUP if record.ending is not None else step.next()
    assert following is not None
    nxt = record.step(following)
    if nxt.state is not StepState.PENDING:
        return None
    if nxt.task_id is None:
        return _send(ctx, record.run_id, following, StepState.PENDING)
    return Dispatch(following, record.run_id, nxt.task_id)


def _cancel(ctx: StepContext, record: RunRecord, step: Step) -> Dispatch | None:
    run_id = record.run_id
    log = get_logger(run_id=run_id, step=step.value)
    ctx.store.decide_ending(
        run_id, RunStatus.CANCELLED, FailureReason.CANCELLED, "cancelled by request"
    )
    if step in _JOB_MAY_EXIST:
        ctx.gateway.terminate_job(ctx.names(record))
        log.info("job_terminated", azure_request_id=ctx.gateway.last_request_id)
    ctx.store.set_step(run_id, step, StepState.SKIPPED)
    log.info("cancel_noticed")
    return _to_cleanup(ctx, run_id)


def fail_step(
    ctx: StepContext, step: Step, run_id: str, reason: FailureReason, error: str
) -> Dispatch | None:
    """The run cannot succeed: decide its ending, mark the step, go to cleanup.

    A failure of cleanup itself ends the run right away (with the decided
    ending); what cleanup could not delete is left to the reaper.
    """
    log = get_logger(run_id=run_id, step=step.value)
    log.warning("step_failed", reason=reason.value, error=error)
    try:
        record = ctx.store.decide_ending(run_id, RunStatus.FAILED, reason, error)
    except RunNotFound:
        return None
    if record.terminal:
        return None
    ctx.store.set_step(run_id, step, StepState.FAILED, error=error)
    if step is Step.CLEANUP:
        _finish(ctx, run_id)
        return None
    return _to_cleanup(ctx, run_id)


def _finish(ctx: StepContext, run_id: str) -> None:
    record = ctx.store.get(run_id)
    if record.status in TERMINAL:
        return
    status, reason, error = final_status(record)
    record = ctx.store.transition(run_id, status, reason=reason, error=error)
    webhooks.announce(ctx.store, ctx.settings.redis_url, record)
    if record.sweep_id is not None:
        # Its slot goes to the next trial now, not at the sweep's next tick.
        sweep_trials.trial_ended(ctx, record.sweep_id, run_id)
    get_logger(run_id=run_id).info(
        "run_finished", status=status.value, reason=reason.value if reason else None
    )
