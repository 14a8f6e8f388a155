"""follow_run against a real Redis: it returns when the run ends, and is woken
by the run's events rather than by polling."""

from __future__ import annotations

import threading

import pytest

from orchestrator.cli.follow import FollowTimeout, follow_run
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus
from orchestrator.store import RunRecord, RunStore

SPEC = parse_spec({"name": "demo", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}})


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
