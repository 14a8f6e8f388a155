"""Schedules fired by real worker processes (their chain clocks): one run per
tick with two workers at once, and with one of them SIGKILLed mid-way."""

from __future__ import annotations

import statistics
from datetime import datetime
from itertools import pairwise

import pytest

from orchestrator.domain.schedule import TickOutcome, parse_schedule
from orchestrator.store.schedules import ScheduleBook
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration

EVERY_SECONDS = 2


def _scheduled_runs(stack: Stack, name: str) -> list[tuple[float, str]]:
    """(trigger time, run id) of every run the schedule created, oldest first."""
    records, _ = stack.store.list_runs(tag=("schedule", name), limit=500)
    return sorted(
        (datetime.fromisoformat(r.spec.tags["trigger_time"]).timestamp(), r.run_id)
        for r in records
    )


def test_every_tick_runs_once_with_two_workers_and_one_sigkilled(stack: Stack) -> None:
    first, _second = stack.start_worker(), stack.start_worker()
    book = ScheduleBook(stack.client, stack.store.keys)
    run = stack.spec(seconds=0).model_dump(mode="json")
    schedule = {
        "name": "every2",
        "trigger": {"every": f"{EVERY_SECONDS}s"},
        "run": run,
        "concurrency_policy": "allow",
        "history_limit": 100,
    }
    book.put(parse_schedule(schedule), mode="create")

    wait_for(lambda: len(_scheduled_runs(stack, "every2")) >= 5, 120, "5 ticks")
    first.kill()  # its clock may be mid-tick: the claim expires, the tick is not lost
    stack.start_worker()
    wait_for(lambda: len(_scheduled_runs(stack, "every2")) >= 11, 120, "11 ticks")
    book.set_suspended("every2", True)

    runs = _scheduled_runs(stack, "every2")
    ticks = [tick for tick, _ in runs]
    assert len(set(ticks)) == len(ticks), "a tick ran twice"
    assert len({run_id for _, run_id in runs}) == len(runs)
    # No tick skipped between the first and the last: each is EVERY_SECONDS after the last.
    assert {round(b - a, 3) for a, b in pairwise(ticks)} == {EVERY_SECONDS}
    ran = [e for e in book.history("every2") if e.outcome is TickOutcome.RAN]
    assert sorted(e.run_id for e in ran if e.run_id) == sorted(run_id for _, run_id in runs)

    # How late each run was enqueued after its tick (reported, not asserted: speed
    # belongs in benchmarks).
    late = sorted(stack.store.get(run_id).created_at - tick for tick, run_id in runs)
    print(
        f"tick -> enqueue over {len(late)} ticks: p50 {statistics.median(late):.3f}s, "
        f"max {late[-1]:.3f}s (one worker SIGKILLed mid-way)"
    )
