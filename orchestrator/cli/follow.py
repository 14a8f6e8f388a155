"""Following a run until it ends, driven by its event stream (no polling sleeps:
the wait is a blocking Redis stream read)."""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.domain.status import TERMINAL
from orchestrator.store import RunEvent, RunRecord, RunStore


class FollowTimeout(TimeoutError):
    """The run did not end within the allowed time."""


def follow_run(
    store: RunStore,
    run_id: str,
    *,
    timeout: float | None = None,
    on_update: Callable[[RunRecord], None] | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    tick_seconds: float = 1.0,
) -> RunRecord:
    """Return the run's record once it is terminal.

    on_event sees every event of the run, in order. on_update is called with a
    fresh record after every batch of events, and at least every tick_seconds
    (so elapsed times in a live view keep moving).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last_event = "0"
    while True:
        record = store.get(run_id)
        if on_update is not None:
            on_update(record)
        if record.status in TERMINAL:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            raise FollowTimeout(f"run {run_id} is still {record.status.value} after {timeout:.0f}s")
        events = store.read_events(run_id, after=last_event, block_ms=int(tick_seconds * 1000))
        for event in events:
            if on_event is not None:
                on_event(event)
            last_event = event.id
