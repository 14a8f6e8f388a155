"""The chain's tasks: `batchai.<step>` (argument: the run id only), `batchai.reap`,
`batchai.sweep_tick` (the sweep id) and `batchai.deliver_webhook` (run id, event, attempt).

Each is one line: the step logic is in orchestrator/chain/steps.py, the bookkeeping
in orchestrator/chain/runner.py, the error policy in workers/policy.py.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from orchestrator.chain import webhooks
from orchestrator.chain.queue import REAP_TASK, SWEEP_TICK_TASK, WEBHOOK_QUEUE, task_name
from orchestrator.chain.reaper import reap
from orchestrator.chain.sweeps import run_tick
from orchestrator.domain.notify import WebhookEvent
from orchestrator.domain.status import STEP_ORDER, Step
from workers import context
from workers.app import app
from workers.policy import ChainTask


def _register(step: Step) -> Any:
    def step_task(self: ChainTask, run_id: str) -> None:
        self.execute_step(run_id)

    step_task.__name__ = step_task.__qualname__ = step.value
    return app.task(name=task_name(step), base=ChainTask, bind=True, step=step)(step_task)


STEP_TASKS: dict[Step, Any] = {step: _register(step) for step in STEP_ORDER}


def reap_leaked_resources() -> None:
    reap(context.worker_context())


reap_task: Any = app.task(name=REAP_TASK, ignore_result=True)(reap_leaked_resources)


def sweep_tick(sweep_id: str) -> None:
    """One tick of a sweep. Not acked late: a tick lost with its worker is sent
    again by the chain clock once the sweep's claim runs out (store/sweeps.py)."""
    run_tick(context.worker_context(), sweep_id, owner=f"{socket.gethostname()}:{os.getpid()}")


sweep_tick_task: Any = app.task(
    name=SWEEP_TICK_TASK, ignore_result=True, soft_time_limit=120, time_limit=150
)(sweep_tick)


def deliver_webhook(run_id: str, event: str, attempt: int) -> None:
    """One delivery attempt; a failed one sends the next attempt with a countdown
    (at most half the visibility timeout: see webhooks.backoff)."""
    ctx = context.worker_context()
    delay = webhooks.deliver_once(ctx.settings, ctx.store, run_id, WebhookEvent(event), attempt)
    if delay is not None:
        app.send_task(
            webhooks.DELIVER_TASK,
            args=[run_id, event, attempt + 1],
            countdown=delay,
            queue=WEBHOOK_QUEUE,
        )


deliver_task: Any = app.task(
    name=webhooks.DELIVER_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)(deliver_webhook)
