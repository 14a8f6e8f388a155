"""One place for the chain's retry, backoff and time-limit policy.

Every chain task is a ChainTask: the step logic never sees Celery, and no task
repeats this handling. Errors map to outcomes as follows:

- TransientAzureError: retry the same message later (countdown = the server's
  Retry-After, else exponential backoff), at most settings.step_max_retries
  times; past that the run fails with azure_error and cleanup runs. The retry
  waits in the due index (store/due.py), not in this worker's memory.
- PermanentAzureError: handled by the chain runner (failed run, reason from
  the error, cleanup).
- A soft time limit: like a transient error (the step is idempotent).
- Redis unreachable or read-only mid-step (a restart, a Sentinel failover): like
  a transient error too; the retry reaches the new master. If Redis cannot take
  the retry either, the error leaves the task and the re-driver sends the step
  again once Redis is back (its lease lapses).
- Anything else: the run fails (never a stuck run) and cleanup runs.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.azure.errors import TransientAzureError
from orchestrator.chain.clock import deliver
from orchestrator.chain.queue import CHAIN_QUEUE, SWEEP_TICK_TASK, task_name
from orchestrator.chain.runner import Dispatch, fail_step, run_step
from orchestrator.chain.steps import safe_countdown
from orchestrator.domain.status import FailureReason, Step
from orchestrator.observability.logs import get_logger
from orchestrator.settings import get_settings
from workers import context

# Per-task limits: a step does a handful of Azure calls (collect_outputs
# downloads files); far longer means something hangs.
SOFT_TIME_LIMIT_SECONDS = 600
TIME_LIMIT_SECONDS = 660
MAX_BACKOFF_SECONDS = 60.0
# Redis errors that say "not now", not "this run is broken": a restart, a
# failover (MasterNotFoundError is a ConnectionError), a demoted master.
REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)


def transient_backoff(retries: int) -> float:
    """Exponential backoff with jitter for transient errors without Retry-After."""
    base = min(MAX_BACKOFF_SECONDS, 2.0 ** min(retries, 10))
    return base * random.uniform(0.5, 1.0)


def send_now(app: Any, dispatch: Dispatch) -> None:
    app.send_task(
        task_name(dispatch.step),
        args=[dispatch.run_id],
        task_id=dispatch.task_id,
        retries=dispatch.retries,
        queue=CHAIN_QUEUE,
    )


def send_sweep_tick(app: Any, sweep_id: str) -> None:
    app.send_task(SWEEP_TICK_TASK, args=[sweep_id], queue=CHAIN_QUEUE)


def send(app: Any, dispatch: Dispatch | None) -> None:
    """Send now, or schedule in the due index when the dispatch has a countdown."""
    if dispatch is not None:
        deliver(context.worker_context(), dispatch, partial(send_now, app))


class ChainTask(Task):  # type: ignore[misc]
    """Base of every step task: reliability flags and the error policy."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    soft_time_limit = SOFT_TIME_LIMIT_SECONDS
    time_limit = TIME_LIMIT_SECONDS
    step: Step

    def execute_step(self, run_id: str) -> None:
        settings = get_settings()
        ctx = context.worker_context()
        step = self.step
        retries = int(self.request.retries or 0)
        log = get_logger(run_id=run_id, step=step.value, task_id=self.request.id, attempt=retries)
        task_id = str(self.request.id)
        try:
            dispatch = run_step(ctx, step, run_id, task_id)
        except (TransientAzureError, SoftTimeLimitExceeded, *REDIS_UNAVAILABLE) as exc:
            retry_after = getattr(exc, "retry_after", None)
            request_id = getattr(exc, "request_id", None)
            if retries < settings.step_max_retries:
                countdown = safe_countdown(
                    settings, retry_after if retry_after is not None else transient_backoff(retries)
                )
                log.warning(
                    "step_transient_error",
                    error=str(exc),
                    retry_in=round(countdown, 3),
                    azure_request_id=request_id,
                )
                # The same message again: the chain accepts its own task id.
                dispatch = Dispatch(step, run_id, task_id, countdown, retries=retries + 1)
            else:
                dispatch = fail_step(
                    ctx,
                    step,
                    run_id,
                    FailureReason.AZURE_ERROR,
                    f"{step.value}: still failing after {retries} retries: {exc}",
                )
        except Exception as exc:
            log.exception("step_crashed")
            dispatch = fail_step(
                ctx,
                step,
                run_id,
                FailureReason.AZURE_ERROR,
                f"{step.value}: internal error: {type(exc).__name__}: {exc}",
            )
        send(self.app, dispatch)
