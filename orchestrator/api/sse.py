"""Server-Sent Events of one run: replay from the store, then follow it live until it ends."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import redis

from orchestrator.domain.status import TERMINAL
from orchestrator.store import RunEvent, RunStore

# How long one XREAD waits for new events; a keep-alive comment follows each
# empty wait, which is also when a vanished client is noticed.
BLOCK_MS = 5000
# Open streams each hold a thread in XREAD; their own limiter keeps them from
# starving the threadpool that serves every other (sync) route.
STREAM_THREADS = 256
_TERMINAL_VALUES = frozenset(status.value for status in TERMINAL)

T = TypeVar("T")


def stream_limiter(state: Any) -> anyio.CapacityLimiter:
    """The app's limiter of stream threads, made on first use (inside its event loop)."""
    limiter: anyio.CapacityLimiter | None = getattr(state, "stream_threads", None)
    if limiter is None:
        limiter = state.stream_threads = anyio.CapacityLimiter(STREAM_THREADS)
    return limiter


def format_event(event: RunEvent) -> str:
    payload = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {payload}\n\n"


def ends_run(event: RunEvent) -> bool:
    return event.kind == "status" and event.data.get("status") in _TERMINAL_VALUES


async def run_event_stream(
    store: RunStore,
    run_id: str,
    after: str,
    terminal: bool,
    limiter: anyio.CapacityLimiter,
) -> AsyncIterator[str]:
    """Events after `after`; ends once the run's terminal status event was sent.

    `terminal` is whether the run had already ended when the stream was opened:
    then only what is stored is replayed. A status change and its event are
    written atomically, so a run seen terminal has its terminal event stored.
    """

    async def in_thread(func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, abandon_on_cancel=True, limiter=limiter)

    last = after
    try:
        while True:
            block = None if terminal else BLOCK_MS
            events = await in_thread(
                functools.partial(store.read_events, run_id, last, block_ms=block)
            )
            for event in events:
                yield format_event(event)
                last = event.id
                terminal = terminal or ends_run(event)
            if events:
                continue  # drain everything stored before deciding anything
            if terminal:
                return
            record = await in_thread(functools.partial(store.get, run_id))
            terminal = record.terminal
            if not terminal:
                yield ": keep-alive\n\n"
    except redis.exceptions.RedisError:
        # The response has started: all that is left is to tell the client and end.
        yield 'event: error\ndata: {"message":"run store unavailable"}\n\n'
