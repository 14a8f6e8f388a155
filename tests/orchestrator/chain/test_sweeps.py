"""The sweep tick's rules, on fakeredis and the in-memory gateway: trials started
exactly once (a tick redone after a crash), the concurrency limit, the batch
poll read by the trials' steps, the failure rule, cancel and clean-up.

Enqueueing a trial is replaced by creating its run in the store (no broker):
what is tested is which trials the tick asks for, and when.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.chain import sweep_trials, sweep_view, sweeps
from orchestrator.chain.runner import run_step
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import FailureReason, RunStatus, Step, StepState, SweepStatus
from orchestrator.domain.sweep import parse_sweep
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from orchestrator.store.sweeps import SweepRecord
from tests.support.chain_fakes import FakeClock, FakeGateway


@pytest.fixture
def ctx(fake_redis: redis.Redis, tmp_path: Path) -> Iterator[StepContext]:
    settings = Settings(ORCH_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    gateway = FakeGateway()
    gateway.share_files["code/train.py"] = b"print('hi')\n"  # the trial's share: input
    yield StepContext(settings, RunStore(fake_redis), gateway, FakeClock(1_000_000.0))


@pytest.fixture
def enqueued(ctx: StepContext, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, RunSpec]]:
    """Trials the tick enqueued: (run id, spec), in order; their runs are created."""
    calls: list[tuple[str, RunSpec]] = []

    def enqueue(spec: RunSpec, **kwargs: Any) -> Any:
        calls.append((kwargs["run_id"], spec))
        return ctx.store.create_run(spec, run_id=kwargs["run_id"], sweep_id=kwargs["sweep_id"])

    monkeypatch.setattr(sweep_trials, "enqueue_run", enqueue)
    return calls


def _sweep(ctx: StepContext, **changes: Any) -> SweepRecord:
    data: dict[str, Any] = {
        "name": "unit",
        "trial": {
            "name": "unit",
            "job": {"script": "train.py"},
            "inputs": {"CODE": "share:code"},
        },
        "search_space": {"lr": {"type": "choice", "values": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}},
        "sampling_algorithm": "grid",
        "objective": {"primary_metric": "loss", "goal": "minimize"},
        "limits": {"max_total_trials": 6, "max_concurrent_trials": 2},
    }
    data.update(changes)
    record, _ = ctx.store.sweeps.create(parse_sweep(data))
    return record


def _gateway(ctx: StepContext) -> FakeGateway:
    assert isinstance(ctx.gateway, FakeGateway)
    return ctx.gateway


def _end_run(ctx: StepContext, run_id: str, status: RunStatus) -> None:
    for step in (RunStatus.PROVISIONING, RunStatus.RUNNING):
        ctx.store.transition(run_id, step)
    if status is RunStatus.SUCCEEDED:
        ctx.store.transition(run_id, RunStatus.COLLECTING)
        ctx.store.update(run_id, lambda r: r.metric_series.update(loss=[0.5]))
    ctx.store.transition(run_id, status)


def test_the_first_tick_provisions_once_and_gives_max_concurrent_trials_a_slot(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    sweeps._tick(ctx, record.sweep_id)

    # Two slots, and as many trials prepared ahead (grid: prefetch = max_concurrent).
    ids = [f"{record.sweep_id}-{index}" for index in range(4)]
    assert [run_id for run_id, _ in enqueued] == ids
    # Slots are taken as trials reach wait_for_nodes, lowest index first.
    book = ctx.store.sweeps
    assert [book.take_slot(record.sweep_id, ids[i], i) for i in (3, 1, 0, 2)] == [
        True,
        True,
        False,
        False,
    ]
    assert book.slots(record.sweep_id) == {ids[3], ids[1]}
    assert book.pass_slots(record.sweep_id, [ids[3]]) == [ids[0]], "the lowest waiting first"
    gateway = _gateway(ctx)
    assert gateway.calls["ensure_cluster"] == 1, "provisioned once, not per tick"
    assert gateway.calls["copy_file"] == 1, "the inputs are placed once for every trial"
    assert gateway.calls["list_jobs"] == 2, "one listing per tick"
    spec = enqueued[0][1]
    assert spec.parameters["lr"] == 0.1
    assert spec.tags["sweep"] == record.sweep_id
    assert spec.cluster.name == f"orchsweep-{record.sweep_id}"
    current = ctx.store.sweeps.get(record.sweep_id)
    assert current.status is SweepStatus.RUNNING and current.provisioned


def test_a_tick_redone_after_a_crash_enqueues_the_same_trial_not_another(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _sweep(
        ctx,
        sampling_algorithm="random",
        seed=5,
        search_space={"lr": {"type": "uniform", "min_value": 0, "max_value": 1}},
    )
    real = sweep_trials.enqueue_run

    def crash(spec: RunSpec, **kwargs: Any) -> Any:
        raise ConnectionError("worker killed between the two writes")

    monkeypatch.setattr(sweep_trials, "enqueue_run", crash)
    with pytest.raises(ConnectionError):
        sweeps._tick(ctx, record.sweep_id)
    noted = ctx.store.sweeps.get(record.sweep_id).trials
    assert [(t.index, t.enqueued) for t in noted] == [(0, False)]

    monkeypatch.setattr(sweep_trials, "enqueue_run", real)
    sweeps._tick(ctx, record.sweep_id)
    trials = ctx.store.sweeps.get(record.sweep_id).trials
    assert [t.index for t in trials] == [0, 1, 2, 3]
    assert enqueued[0][0] == f"{record.sweep_id}-0"
    assert enqueued[0][1].parameters["lr"] == noted[0].parameters["lr"], "same values"
    assert all(t.enqueued for t in trials)


def test_a_slot_passes_on_when_its_trial_ends_never_past_the_limit(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    sweeps._tick(ctx, record.sweep_id)
    assert len(enqueued) == 4
    ids = [run_id for run_id, _ in enqueued]
    book = ctx.store.sweeps
    assert [book.take_slot(record.sweep_id, ids[i], i) for i in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    _end_run(ctx, ids[0], RunStatus.SUCCEEDED)  # a run ended without passing its slot on
    sweeps._tick(ctx, record.sweep_id)
    assert len(enqueued) == 5, "one more prepared ahead"
    trials = book.get(record.sweep_id).trials
    assert trials[0].status is RunStatus.SUCCEEDED and trials[0].value == 0.5
    assert book.slots(record.sweep_id) == {ids[1], ids[2]}, "the tick passed the slot on"
    sweep_trials.trial_ended(ctx, record.sweep_id, ids[1])  # as runner._finish does
    assert book.slots(record.sweep_id) == {ids[2], ids[3]}


def test_a_trial_reads_its_job_from_the_sweep_listing_until_it_goes_stale(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    run_id = enqueued[0][0]
    run = ctx.store.get(run_id)
    job = ctx.names(run).job
    ctx.store.sweeps.put_poll(
        record.sweep_id,
        {"at": ctx.clock(), "jobs": {job: {"execution_state": "running", "errors": []}}},
    )
    gateway = _gateway(ctx)
    gateway.jobs.add(job)
    ctx.store.set_step(run_id, Step.SUBMIT_JOB, StepState.DONE)
    ctx.store.transition(run_id, RunStatus.PROVISIONING)
    before = gateway.calls["get_job"]
    run_step(ctx, Step.POLL_JOB, run_id, "poll-1")
    assert gateway.calls["get_job"] == before, "the trial read the sweep's listing"
    assert ctx.store.get(run_id).step(Step.POLL_JOB).state is StepState.WAITING

    # No worker ticked the sweep for a minute: the listing is stale.
    ctx.store.sweeps.schedule(record.sweep_id, ctx.clock() - 60)
    task_id = ctx.store.get(run_id).step(Step.POLL_JOB).task_id
    assert task_id is not None
    run_step(ctx, Step.POLL_JOB, run_id, task_id)
    assert gateway.calls["get_job"] == before + 1, "a stale listing: the trial asks Azure"


def test_half_the_trials_failing_fails_the_sweep_and_cleans_up(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx, limits={"max_total_trials": 6, "max_concurrent_trials": 3})
    sweeps._tick(ctx, record.sweep_id)
    assert len(enqueued) == 6  # 3 with a slot, 3 prepared ahead
    for run_id, _ in enqueued[:3]:
        _end_run(ctx, run_id, RunStatus.FAILED)
    sweeps._tick(ctx, record.sweep_id)  # 3 failed of 3 ended: under the 4-ended rule
    assert ctx.store.sweeps.get(record.sweep_id).ending is None
    _end_run(ctx, enqueued[3][0], RunStatus.FAILED)
    for run_id, _ in enqueued[4:]:
        ctx.store.transition(run_id, RunStatus.PROVISIONING)  # started: a cancel only flags it
    next_in = sweeps._tick(ctx, record.sweep_id)  # 4 of 4 ended failed: past 3 (half of 6)
    current = ctx.store.sweeps.get(record.sweep_id)
    assert current.ending is not None and current.ending.reason == "too_many_failed_trials"
    assert next_in is not None, "two trials still run: the sweep waits for their cleanup"
    assert "delete_cluster" not in _gateway(ctx).calls
    for run_id, _ in enqueued[4:]:
        assert ctx.store.get(run_id).cancel_requested
        ctx.store.transition(run_id, RunStatus.CANCELLED)  # as their chains end them
    assert sweeps._tick(ctx, record.sweep_id) is None
    done = ctx.store.sweeps.get(record.sweep_id)
    assert done.status is SweepStatus.FAILED and done.cluster_deleted
    assert f"orchsweep-{record.sweep_id}" in _gateway(ctx).deleted


def test_cancel_ends_every_trial_then_deletes_the_cluster(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    sweeps.cancel_sweep(ctx.store, record.sweep_id)
    assert sweeps._tick(ctx, record.sweep_id) is None
    done = ctx.store.sweeps.get(record.sweep_id)
    assert done.status is SweepStatus.CANCELLED
    assert [ctx.store.get(r).reason for r, _ in enqueued] == [FailureReason.CANCELLED] * 4
    assert len(enqueued) == 4, "nothing enqueued after the cancel (2 slotted, 2 ahead)"
    assert ctx.store.sweeps.due_at(record.sweep_id) is None


def test_the_leaderboard_sorts_by_the_goal(ctx: StepContext) -> None:
    record = _sweep(ctx, objective={"primary_metric": "acc", "goal": "maximize"})

    def values(current: SweepRecord) -> None:
        from orchestrator.store.sweeps import TrialRecord

        for index, value in enumerate([0.2, None, 0.9, 0.5]):
            current.trials.append(
                TrialRecord(
                    index=index,
                    run_id=f"r{index}",
                    parameters={},
                    value=value,
                    status=RunStatus.SUCCEEDED,
                )
            )

    record = ctx.store.sweeps.update(record.sweep_id, values)
    assert [t.index for t in sweep_view.leaderboard(record)] == [2, 3, 0, 1]
    best = sweep_view.best_trial(record)
    assert best is not None and best.index == 2


def test_ended_sweeps_expire_with_the_run_retention(ctx: StepContext) -> None:
    old, recent, running = _sweep(ctx), _sweep(ctx), _sweep(ctx)
    for record, finished in ((old, 100.0), (recent, 900.0)):
        ctx.store.sweeps.transition(record.sweep_id, SweepStatus.CANCELLED, finished_at=finished)
    assert ctx.store.sweeps.delete_expired(before=500.0, limit=10) == [old.sweep_id]
    assert {r.sweep_id for r in ctx.store.sweeps.all()} == {recent.sweep_id, running.sweep_id}


def test_the_tick_interval_grows_with_the_youngest_running_job(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    for index in (0, 1):  # the two trials holding a slot
        ctx.store.sweeps.take_slot(record.sweep_id, enqueued[index][0], index)
    base = ctx.settings.sweep_poll_seconds
    now = ctx.clock()
    assert sweeps.next_interval(ctx, ctx.store.sweeps.get(record.sweep_id)) == base

    def started(ages: tuple[float, float]) -> SweepRecord:
        def change(current: SweepRecord) -> None:
            for index, age in enumerate(ages):
                current.trials[index].started_at = now - age

        return ctx.store.sweeps.update(record.sweep_id, change)

    assert sweeps.next_interval(ctx, started((300.0, 900.0))) == pytest.approx(30.0)
    assert sweeps.next_interval(ctx, started((5.0, 900.0))) == base
    assert sweeps.next_interval(ctx, started((9000.0, 7200.0))) == sweeps.SWEEP_POLL_MAX_SECONDS


def test_the_next_tick_comes_just_after_a_job_is_expected_to_end(
    ctx: StepContext, enqueued: list[tuple[str, RunSpec]]
) -> None:
    record = _sweep(ctx)
    sweeps._tick(ctx, record.sweep_id)
    for index in (0, 1):
        ctx.store.sweeps.take_slot(record.sweep_id, enqueued[index][0], index)
    now = ctx.clock()

    def jobs(current: SweepRecord) -> None:
        ended, running = current.trials[2], current.trials[0]
        ended.status, ended.job_seconds = RunStatus.SUCCEEDED, 100.0  # jobs take 100 s
        running.started_at = running.job_started_at = now - 97.0  # ends in about 3 s
        current.trials[1].started_at = now - 500.0

    record = ctx.store.sweeps.update(record.sweep_id, jobs)
    # Without the expectation: a tenth of the youngest job's age (9.7 s).
    assert sweeps.next_interval(ctx, record) == pytest.approx(3.0 + sweeps.END_MARGIN_SECONDS)

    def late(current: SweepRecord) -> None:
        current.trials[0].job_started_at = now - 150.0  # past its expected end

    assert sweeps.next_interval(ctx, ctx.store.sweeps.update(record.sweep_id, late)) == (
        pytest.approx(9.7)
    )
