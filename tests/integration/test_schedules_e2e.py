"""Schedules fired by real worker processes (their chain clocks): one run per
tick with two workers at once, and with one of them SIGKILLed mid-way."""

from __future__ import annotations

import statistics
from datetime import datetime
from itertools import pairwise

import pytest

from orchestrator.domain.schedule import TickOutcome, parse_schedule
from orchestrator.domain.status import RunStatus, Step, StepState
from orchestrator.store.schedules import ScheduleBook, TickEntry
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration

EVERY_SECONDS = 2


def _scheduled_runs(stack: Stack, name: str) -> list[tuple[float, str]]:
    """(trigger time, run id) of every run the schedule created, oldest first."""
    records, _ = stack.store.list_runs(tag=("schedule", name), limit=500)
    return sorted(
        (datetime.fromisoformat(r.spec.tags["trigger_time"]).timestamp(), r.run_id) for r in records
    )


def test_every_tick_runs_once_with_two_workers_and_one_sigkilled(stack: Stack) -> None:
    first, _second = stack.start_worker(), stack.start_worker()
    book = ScheduleBook(stack.client, stack.store.keys)
    run = stack.uploaded_spec(seconds=0).model_dump(mode="json")
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


def _schedule(stack: Stack, name: str, every: int, policy: str) -> ScheduleBook:
    book = ScheduleBook(stack.client, stack.store.keys)
    schedule = {
        "name": name,
        "trigger": {"every": f"{every}s"},
        "run": stack.uploaded_spec(seconds=8).model_dump(mode="json"),
        "concurrency_policy": policy,
        "history_limit": 100,
    }
    book.put(parse_schedule(schedule), mode="create")
    return book


def _tick(entry: TickEntry) -> float:
    return datetime.fromisoformat(entry.tick).timestamp()


def _oldest_first(book: ScheduleBook, name: str) -> list[TickEntry]:
    return sorted(book.history(name), key=_tick)


def test_forbid_skips_the_ticks_that_come_while_the_run_is_active(stack: Stack) -> None:
    stack.start_worker()
    book = _schedule(stack, "forbid", EVERY_SECONDS, "forbid")

    def second_run_after_skips() -> bool:
        outcomes = [e.outcome for e in _oldest_first(book, "forbid")]
        ran = [i for i, outcome in enumerate(outcomes) if outcome is TickOutcome.RAN]
        return len(ran) >= 2 and TickOutcome.SKIPPED in outcomes[ran[0] : ran[1]]

    wait_for(second_run_after_skips, 120, "a run, skipped ticks, then the next run")
    book.set_suspended("forbid", True)

    history = _oldest_first(book, "forbid")
    # Ticks that came while the worker was still starting are missed (no clock ran).
    while history[0].outcome is TickOutcome.MISSED:
        history.pop(0)
    ticks = [_tick(entry) for entry in history]
    # Every tick is accounted for, none missed: ran or skipped, EVERY_SECONDS apart.
    assert {round(b - a, 3) for a, b in pairwise(ticks)} == {EVERY_SECONDS}
    assert {e.outcome for e in history} == {TickOutcome.RAN, TickOutcome.SKIPPED}
    active: str | None = None
    for entry, tick in zip(history, ticks, strict=True):
        if entry.outcome is TickOutcome.RAN:
            assert entry.run_id is not None
            active = entry.run_id
            continue
        # Skipped because the run of the latest ran tick was still going at that tick.
        assert active is not None and entry.run_id is None and entry.previous_run_id == active
        finished = stack.wait_terminal(active).finished_at
        assert finished is not None and finished > tick
    # The runs never overlapped: each was created after the one before had ended.
    runs = [stack.wait_terminal(e.run_id) for e in history if e.run_id is not None]
    for before, after in pairwise(runs):
        assert before.status is RunStatus.SUCCEEDED
        assert before.finished_at is not None and after.created_at >= before.finished_at


def test_replace_cancels_the_active_run_and_deletes_its_cluster_and_job(stack: Stack) -> None:
    stack.start_worker()
    book = _schedule(stack, "replace", EVERY_SECONDS, "replace")
    first = wait_for(
        lambda: next((e.run_id for e in book.history("replace") if e.run_id), None),
        120,
        "the first run",
    )
    book.set_suspended("replace", True)

    # The next tick must find the first run's job already submitted (the
    # cluster and the job exist), so it is resumed only once they do.
    def job_submitted() -> bool:
        return stack.store.get(first).step(Step.SUBMIT_JOB).state is StepState.DONE

    wait_for(job_submitted, 120, "the first run's job to be submitted")
    assert not stack.store.get(first).terminal  # its job runs 8 s
    book.set_suspended("replace", False)
    replaced = wait_for(
        lambda: next(
            (e for e in book.history("replace") if e.outcome is TickOutcome.REPLACED), None
        ),
        120,
        "a replaced tick",
    )
    book.set_suspended("replace", True)
    assert replaced.previous_run_id == first and replaced.run_id not in (None, first)

    cancelled = stack.wait_terminal(first)
    assert cancelled.status is RunStatus.CANCELLED
    # Every run the schedule made has ended; each deleted what it created:
    # the first (cancelled) run's cluster and job included.
    for entry in book.history("replace"):
        if entry.run_id is not None:
            stack.wait_terminal(entry.run_id)
    resources = stack.stats()["resources"]
    assert resources["created"]["cluster"] >= 2 and resources["created"]["job"] >= 2
    for kind in ("cluster", "job"):
        assert resources["created"][kind] == resources["deleted"].get(kind, 0), resources
