"""Every worker process runs the chain clock (orchestrator/chain/clock.py) beside
its pool: due waits are sent and lost steps re-driven while any worker lives.

Started by Celery's worker_ready signal in the worker's main process (after
the pool has forked, so no Redis connection is shared with a child).
"""

from __future__ import annotations

import os
import socket
from functools import partial
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from orchestrator.chain.clock import ChainClock
from workers import context
from workers.app import app
from workers.policy import send_now, send_sweep_tick

_clocks: list[ChainClock] = []


def _start_clock(**_: Any) -> None:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    # Looked up on every tick, not bound here: the test worker replaces it.
    clock = ChainClock(
        lambda: context.worker_context(),
        partial(send_now, app),
        worker,
        send_sweep_tick=partial(send_sweep_tick, app),
    )
    clock.start()
    _clocks.append(clock)


def _stop_clock(**_: Any) -> None:
    while _clocks:
        _clocks.pop().stop()


# Connected without decorators: the signal objects are untyped.
worker_ready.connect(_start_clock, weak=False)
worker_shutdown.connect(_stop_clock, weak=False)
