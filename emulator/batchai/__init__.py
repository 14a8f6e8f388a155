"""Batch AI emulation: api-versions 2018-05-01 (workspaces) and 2017-09-01-preview
(resource-group scoped), with jobs really executed as local processes."""

from __future__ import annotations

import logging
import threading

from emulator.batchai import routes
from emulator.batchai.models import BatchAIState
from emulator.core import EmulatorContext
from emulator.http import Router

log = logging.getLogger(__name__)

# How often the background ticker advances nodes and reaps job processes.
TICK_SECONDS = 0.1


def register(router: Router, ctx: EmulatorContext) -> None:
    state = BatchAIState(ctx)
    routes.register(router, ctx, state)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_SECONDS):
            try:
                state.advance()
            except Exception:  # keep ticking: one bad job must not freeze every cluster
                log.exception("Batch AI advance failed")

    ticker = threading.Thread(target=tick, name="batchai-ticker", daemon=True)
    ticker.start()

    def shutdown() -> None:
        stop.set()
        state.shutdown()

    ctx.reset_hooks.append(state.reset)
    ctx.shutdown_hooks.append(shutdown)
    ctx.resource_groups.on_delete(state.delete_resource_group)
