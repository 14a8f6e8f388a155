"""follow_run against a real Redis: it returns when the run ends, and is woken
by the run's events rather than by polling.

"Woken by events" is shown by counting, never by timing: the follower's store is
wrapped so that every XREAD (with its BLOCK argument) and every record read is
written down, and sleeping in the following thread fails the test at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from orchestrator.cli.follow import FollowTimeout, follow_run
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus
from orchestrator.store import RunRecord, RunStore

SPEC = parse_spec({"name": "demo", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}})
HOUR = 3600.0


class _Watched:
    """Wraps the follower's store: counts get() calls and records the BLOCK
    argument of every XREAD it sends, and tells when the n-th XREAD starts."""

    def __init__(self, store: RunStore, *, signal_on_xread: int = 0) -> None:
        self.gets = 0
        self.xread_blocks: list[int | None] = []
        self.xread_started = threading.Event()
        real_get, real_xread = store.get, store.redis.xread

        def get(run_id: str) -> RunRecord:
            self.gets += 1
            return real_get(run_id)

        def xread(*args: Any, **kwargs: Any) -> Any:
            # redis-py's xread(streams, count=None, block=None)
            self.xread_blocks.append(kwargs.get("block", args[2] if len(args) > 2 else None))
            if len(self.xread_blocks) == signal_on_xread:
                self.xread_started.set()
            return real_xread(*args, **kwargs)

        store.get = get  # type: ignore[method-assign]
        store.redis.xread = xread  # type: ignore[method-assign]


@pytest.fixture
def no_sleep_in_this_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower that polls (sleep, then look again) fails here at once."""
    following = threading.current_thread()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is following:
            raise AssertionError(f"the follower slept {seconds}s instead of blocking on XREAD")
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


def test_returns_the_terminal_record_and_reports_updates(redis_url: str) -> None:
    store = RunStore.from_url(redis_url)
    record, _ = store.create_run(SPEC)
    seen: list[RunStatus] = []
    first_update = threading.Event()

    def on_update(update: RunRecord) -> None:
        seen.append(update.status)
        first_update.set()

    def finish() -> None:
        first_update.wait(10)
        store.transition(record.run_id, RunStatus.PROVISIONING)
        store.transition(record.run_id, RunStatus.FAILED, reason=FailureReason.TIMEOUT)

    finisher = threading.Thread(target=finish)
    finisher.start()
    final = follow_run(store, record.run_id, on_update=on_update, timeout=30)
    finisher.join()
    assert final.status is RunStatus.FAILED
    assert final.reason is FailureReason.TIMEOUT
    assert seen[0] is RunStatus.QUEUED
    assert seen[-1] is RunStatus.FAILED


def test_times_out_on_a_run_that_does_not_end(redis_url: str) -> None:
    store = RunStore.from_url(redis_url)
    record, _ = store.create_run(SPEC)
    with pytest.raises(FollowTimeout, match="still queued"):
        follow_run(store, record.run_id, timeout=0.3, tick_seconds=0.1)


@pytest.mark.usefixtures("no_sleep_in_this_thread")
@pytest.mark.timeout(60)  # a follower that waits out its hour-long tick fails here
def test_is_woken_by_the_next_event_while_blocked_in_xread(redis_url: str) -> None:
    store = RunStore.from_url(redis_url)
    record, _ = store.create_run(SPEC)
    # Read 1 catches up with the backlog (the creation event) and returns at
    # once; read 2 is the one the follower waits in when the run ends.
    watched = _Watched(store, signal_on_xread=2)
    writer = RunStore.from_url(redis_url)

    followed = threading.Event()

    def end_the_run() -> None:
        watched.xread_started.wait(30)
        if not followed.is_set():  # else the follower failed before its second read
            writer.transition(record.run_id, RunStatus.FAILED, reason=FailureReason.TIMEOUT)

    ender = threading.Thread(target=end_the_run)
    ender.start()
    try:
        # A tick of an hour: only the run's event can end this wait in time.
        final = follow_run(store, record.run_id, tick_seconds=HOUR)
    finally:
        followed.set()
        watched.xread_started.set()
        ender.join(30)
    assert final.status is RunStatus.FAILED
    # Both waits were blocking stream reads with the whole tick as their BLOCK,
    # and no other read happened: the event, not a poll, ended the second.
    assert watched.xread_blocks == [int(HOUR * 1000)] * 2
    # One record read before each wait and one after the event: no polling.
    assert watched.gets == len(watched.xread_blocks) + 1


@pytest.mark.usefixtures("no_sleep_in_this_thread")
def test_an_idle_run_costs_one_blocking_read_per_tick(redis_url: str) -> None:
    store = RunStore.from_url(redis_url)
    record, _ = store.create_run(SPEC)
    watched = _Watched(store)
    timeout, tick = 0.5, 0.1
    with pytest.raises(FollowTimeout):
        follow_run(store, record.run_id, timeout=timeout, tick_seconds=tick)
    # Each wait is an XREAD BLOCK of one tick, so nothing arriving means at most
    # timeout/tick of them after the catch-up read (fewer on a slow machine,
    # never more): a busy or non-blocking poller makes hundreds.
    assert watched.xread_blocks, "the follower never read the run's events"
    assert set(watched.xread_blocks) == {int(tick * 1000)}
    assert len(watched.xread_blocks) <= 1 + round(timeout / tick) + 1
    assert watched.gets == len(watched.xread_blocks) + 1
