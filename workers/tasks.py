"""The chain's tasks: `batchai.<step>` (argument: the run id only) and `batchai.reap`.

Each is one line: the step logic is in orchestrator/chain/steps.py, the bookkeeping
in orchestrator/chain/runner.py, the error policy in workers/policy.py.
"""

from __future__ import annotations

from typing import Any

from orchestrator.chain.queue import REAP_TASK, task_name
from orchestrator.chain.reaper import reap
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
