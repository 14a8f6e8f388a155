"""A chain worker that stops after one step's Azure work, for the SIGKILL tests.

`python -m tests.support.held_worker STEP CONCURRENCY POOL` runs the real worker
(workers/__main__.py) with one difference: its StepContext holds right after
STEP's Azure work and before the outcome is recorded -- the worst moment to
die -- and waits to be released, so a test can SIGKILL it there. The hook is
installed here, in the test's own process, never by a production worker.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache, partial

import workers.context
from orchestrator.chain.steps import StepContext
from orchestrator.cli.serve import LogLevel, Pool, worker_args
from orchestrator.domain.status import Step
from workers.__main__ import main

HOLD_SECONDS = 300


def hold_after(held_step: Step) -> workers.context.AfterStepWork:
    def hold(ctx: StepContext, step: Step, run_id: str) -> None:
        if step is not held_step:
            return
        held, release = ctx.store.keys.test_hold(run_id)
        ctx.store.redis.set(held, step.value)
        ctx.store.redis.blpop([release], timeout=HOLD_SECONDS)

    return hold


if __name__ == "__main__":
    step, concurrency, pool = Step(sys.argv[1]), int(sys.argv[2]), Pool(sys.argv[3])
    workers.context.worker_context = lru_cache(maxsize=1)(
        partial(workers.context.build_context, after_step_work=hold_after(step))
    )
    node = f"held-{os.getpid()}@{socket.gethostname()}"
    main(worker_args(concurrency, LogLevel.INFO, pool, node))
