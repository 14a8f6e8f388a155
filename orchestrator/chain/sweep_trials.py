"""A sweep's trials: their run specs, their slots, and what every tick does with
them (mirror their runs, read their live values, stop them early, start new
ones), and the sweep's ending decision. The tick itself is chain/sweeps.py.

Crash safety: a trial's values are written to the sweep record before its run
is enqueued under its fixed run id `<sweep_id>-<index>` (idempotent), so a
tick redone after a SIGKILL enqueues the same trial, never a second one.

Slots: a trial submits its job only with one of max_concurrent_trials slots,
taken at its wait_for_nodes in index order (steps.py) and held until the trial
has ended, after its cleanup deleted its job; the trial that ends passes its
slot on at once (trial_ended, called by runner._finish).
"""

from __future__ import annotations

import statistics
from typing import Any

from orchestrator.azure.types import JobState
from orchestrator.chain import sweep_metrics
from orchestrator.chain.cancel import hurry_waiting_step
from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.steps import StepContext
from orchestrator.domain.early_termination import TrialProgress, trials_to_stop
from orchestrator.domain.naming import SWEEP_TAG, sweep_cluster_name
from orchestrator.domain.sampling import FinishedTrial, suggest
from orchestrator.domain.spec import ClusterPolicy, RunSpec, parse_spec
from orchestrator.domain.status import (
    FailureReason,
    RunStatus,
    Step,
    StepState,
    SweepStatus,
)
from orchestrator.domain.sweep import SamplingAlgorithm, SweepSpec
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunNotFound, RunRecord
from orchestrator.store.sweeps import SweepEnding, SweepRecord, TrialRecord

# Without early termination, live values only feed the leaderboard: a running
# trial's stdout is read every this many ticks, not every tick (2 reads each).
LIVE_READ_EVERY_TICKS = 5
# Job states the listing gives for a job that has ended.
JOB_ENDED = frozenset({"succeeded", "failed"})


def cluster_of(sweep_id: str, spec: SweepSpec) -> str:
    if spec.trial.cluster.policy is ClusterPolicy.SHARED:
        assert spec.trial.cluster.name is not None
        return spec.trial.cluster.name
    return sweep_cluster_name(sweep_id)


def owns_cluster(spec: SweepSpec) -> bool:
    return spec.trial.cluster.policy is ClusterPolicy.PER_RUN


def trial_run_id(sweep_id: str, index: int) -> str:
    return f"{sweep_id}-{index}"


def trial_run_spec(record: SweepRecord, trial: TrialRecord) -> RunSpec:
    """The trial's run spec: the sweep's values as parameters, the sweep's name
    (its experiment), the sweep's cluster, tagged with the sweep."""
    spec = record.spec.trial_spec(trial.index, trial.parameters)
    data = spec.model_dump(mode="json")
    data["name"] = record.spec.name
    data["tags"] = {**data["tags"], SWEEP_TAG: record.sweep_id}
    data["cluster"] = {
        **data["cluster"],
        "policy": ClusterPolicy.SHARED.value,
        "name": cluster_of(record.sweep_id, record.spec),
    }
    return parse_spec(data)


def pass_slots_on(ctx: StepContext, record: SweepRecord) -> None:
    """Free the slots of trials that ended without passing theirs on (cancelled
    while queued, or their worker died between the two writes), and give free
    slots to the lowest waiting trials."""
    ended = [t.run_id for t in record.trials if not t.active]
    granted = ctx.store.sweeps.pass_slots(record.sweep_id, ended)
    hurry_waits(ctx, granted)


def hurry_waits(ctx: StepContext, run_ids: list[str]) -> None:
    """Bring the slot waits of `run_ids` forward: they hold a slot now."""
    now = ctx.clock()
    for run_id in run_ids:
        try:
            wait = ctx.store.get(run_id).step(Step.WAIT_FOR_NODES)
        except RunNotFound:
            continue
        if wait.state is StepState.WAITING and wait.task_id:
            ctx.store.due.bring_forward(wait.task_id, now)


def trial_ended(ctx: StepContext, sweep_id: str, run_id: str) -> None:
    """A trial's run has ended (runner._finish): its slot goes to the next
    waiting trial at once, and the sweep's next tick is brought forward."""
    hurry_waits(ctx, ctx.store.sweeps.pass_slots(sweep_id, [run_id]))
    ctx.store.sweeps.nudge(sweep_id, ctx.clock())


# ----------------------------------------------------------------- trials
def trial_runs(ctx: StepContext, record: SweepRecord) -> dict[str, RunRecord]:
    """The run records of the sweep's active trials, read once per tick in one
    round trip (a trial not enqueued yet has none)."""
    ids = [t.run_id for t in record.trials if t.active]
    found = ctx.store.get_many(ids)
    return {run_id: run for run_id, run in zip(ids, found, strict=True) if run is not None}


def refresh_trials(
    ctx: StepContext,
    record: SweepRecord,
    jobs: dict[str, JobState],
    runs: dict[str, RunRecord],
) -> SweepRecord:
    """Mirror each trial's run (status, metrics) and read new live values."""
    metric = record.spec.objective.primary_metric
    updates: dict[int, dict[str, Any]] = {}
    now = ctx.clock()
    ticks = 1 if record.spec.early_termination is not None else LIVE_READ_EVERY_TICKS
    # A little under the ticks' spacing, so a read is never put off a whole tick.
    live_every = (ticks - 0.5) * ctx.settings.sweep_poll_seconds
    for trial in record.trials:
        if not trial.active:
            continue
        change: dict[str, Any] = {}
        run = runs.get(trial.run_id)
        if run is None:
            continue  # not enqueued yet (see start_trials)
        names = ctx.names(run)
        job = jobs.get(names.job)
        if job is not None and job.execution_state == "running" and trial.started_at is None:
            change["started_at"] = now
        if job is not None and job.start_time is not None and trial.job_started_at is None:
            change["job_started_at"] = job.start_time.timestamp()
        if job is not None and job.runtime_seconds is not None and trial.job_seconds is None:
            change["job_seconds"] = job.runtime_seconds
        if run.terminal:
            series = run.metric_series.get(metric) or trial.series
            change.update(
                status=run.status,
                reason=run.reason,
                metrics=dict(run.metrics),
                series=list(series),
                value=run.metrics.get(metric, series[-1] if series else None),
                ended_at=run.finished_at or now,
            )
            sweep_metrics.forget(names.job)
        else:
            change["status"] = run.status
            # The first read too waits live_every after the job started: a short
            # job's values come with its collected run, for no read at all.
            started = change.get("started_at", trial.started_at)
            last = trial.live_read_at or (started if ticks > 1 else None)
            due = last is None or now - last >= live_every
            if due and job is not None and job.execution_state == "running":
                change["live_read_at"] = now
                values, offset = sweep_metrics.read_new_values(
                    ctx.gateway, names, metric, trial.log_offset
                )
                if values or offset != trial.log_offset:
                    series = [*trial.series, *values]
                    change.update(
                        series=series, log_offset=offset, value=series[-1] if series else None
                    )
        if any(getattr(trial, k) != v for k, v in change.items()):
            updates[trial.index] = change
    if not updates:
        return record

    def apply(current: SweepRecord) -> None:
        for index, change in updates.items():
            trial = current.trials[index]
            for key, value in change.items():
                setattr(trial, key, value)

    return ctx.store.sweeps.update(record.sweep_id, apply)


def stop_trials_early(
    ctx: StepContext,
    record: SweepRecord,
    jobs: dict[str, JobState],
    runs: dict[str, RunRecord],
) -> SweepRecord:
    policy = record.spec.early_termination
    if policy is None:
        return record
    progress = [
        TrialProgress(
            trial=str(t.index),
            values=tuple(t.series),
            # Only a trial whose job still runs can be stopped.
            active=t.active
            and t.stopped_at_interval is None
            and _job_running(ctx, runs.get(t.run_id), jobs),
        )
        for t in record.trials
        if t.series
    ]
    doomed = trials_to_stop(policy, record.spec.objective.goal, progress)
    if not doomed:
        return record
    stopped: dict[int, int] = {}
    for index_text in doomed:
        trial = record.trials[int(index_text)]
        interval = len(trial.series)
        _stop_trial(ctx, record, trial, f"stopped early by {policy.type} at interval {interval}")
        stopped[trial.index] = interval
    saved = _node_seconds_saved(ctx, record, stopped)

    def mark(current: SweepRecord) -> None:
        for index, interval in stopped.items():
            current.trials[index].stopped_at_interval = interval
        current.node_seconds_saved += saved

    return ctx.store.sweeps.update(record.sweep_id, mark)


def _job_running(ctx: StepContext, run: RunRecord | None, jobs: dict[str, JobState]) -> bool:
    if run is None:
        return False
    job = jobs.get(ctx.names(run).job)
    return job is not None and job.execution_state == "running"


def _node_seconds_saved(ctx: StepContext, record: SweepRecord, stopped: dict[int, int]) -> float:
    """For each stopped trial: the mean runtime of the trials that ran to the
    end (else its own runtime so far, doubled: a lower bound) minus its own."""
    now = ctx.clock()
    full = [
        t.ended_at - t.started_at
        for t in record.trials
        if t.status is RunStatus.SUCCEEDED and t.started_at and t.ended_at
    ]
    nodes = record.spec.trial.cluster.node_count
    saved = 0.0
    for index in stopped:
        trial = record.trials[index]
        ran = now - (trial.started_at or now)
        expected = statistics.fmean(full) if full else 2 * ran
        saved += max(0.0, expected - ran) * nodes
    return saved


def _stop_trial(ctx: StepContext, record: SweepRecord, trial: TrialRecord, why: str) -> None:
    """End the trial cancelled/early_terminated: its job is terminated now (the
    slot frees at once), and its chain goes to cleanup at its next step."""
    store = ctx.store
    try:
        run = store.decide_ending(
            trial.run_id, RunStatus.CANCELLED, FailureReason.EARLY_TERMINATED, why
        )
    except RunNotFound:
        return
    run = store.request_cancel(trial.run_id, by=f"sweep:{record.sweep_id}")
    ctx.gateway.terminate_job(ctx.names(run))
    hurry_waiting_step(store, run)
    get_logger(sweep_id=record.sweep_id, run_id=trial.run_id).info("trial_stopped_early", why=why)


def apply_failure_rule(ctx: StepContext, record: SweepRecord) -> SweepRecord:
    limits = record.spec.limits
    ended = [t for t in record.trials if not t.active]
    failed = sum(t.status is RunStatus.FAILED for t in ended)
    if not limits.too_many_failures(failed, len(ended)):
        return record
    return decide(
        ctx,
        record.sweep_id,
        SweepStatus.FAILED,
        "too_many_failed_trials",
        f"{failed} trials failed (threshold {limits.failure_threshold})",
    )


def _finished_trials(record: SweepRecord) -> list[FinishedTrial]:
    return [
        FinishedTrial(
            parameters=t.parameters,
            value=t.value if t.status is RunStatus.SUCCEEDED else None,
        )
        for t in record.trials
        if not t.active
    ]


def start_trials(ctx: StepContext, record: SweepRecord) -> SweepRecord:
    """Enqueue trials not enqueued yet (a tick died between the two writes),
    then new ones while fewer than max_concurrent_trials are active."""
    book = ctx.store.sweeps
    for trial in record.trials:
        if not trial.enqueued:
            record = _enqueue_trial(ctx, record, trial)
    limit = record.spec.limits.max_concurrent_trials + _prefetch(record.spec)
    total = record.spec.total_trials
    while len(record.trials) < total and sum(t.active for t in record.trials) < limit:
        index = len(record.trials)
        parameters = suggest(record.spec, index, _finished_trials(record))
        trial = TrialRecord(
            index=index, run_id=trial_run_id(record.sweep_id, index), parameters=parameters
        )

        def add(current: SweepRecord, trial: TrialRecord = trial) -> None:
            if len(current.trials) == trial.index:
                current.trials.append(trial)

        # The values are fixed before the run exists: a redone tick enqueues these.
        record = book.update(record.sweep_id, add)
        record = _enqueue_trial(ctx, record, record.trials[index])
    return record


def _prefetch(spec: SweepSpec) -> int:
    """Trials prepared ahead of a free slot (their steps up to the slot done), so
    a slot that frees is filled at once. Bayesian sampling prefetches one only:
    a trial's values are drawn when it is enqueued, from the results known then."""
    if spec.sampling_algorithm is SamplingAlgorithm.BAYESIAN:
        return 1
    return spec.limits.max_concurrent_trials


def _enqueue_trial(ctx: StepContext, record: SweepRecord, trial: TrialRecord) -> SweepRecord:
    spec = trial_run_spec(record, trial)
    enqueue_run(
        spec,
        store=ctx.store,
        broker_url=ctx.settings.redis_target,
        run_id=trial.run_id,
        input_roots=ctx.settings.input_roots,
        submitted_by=record.submitted_by,
        sweep_id=record.sweep_id,
    )
    get_logger(sweep_id=record.sweep_id, run_id=trial.run_id).info(
        "trial_enqueued", index=trial.index, parameters=trial.parameters
    )

    def mark(current: SweepRecord) -> None:
        current.trials[trial.index].enqueued = True

    return ctx.store.sweeps.update(record.sweep_id, mark)


def natural_end(ctx: StepContext, record: SweepRecord) -> SweepRecord:
    if len(record.trials) < record.spec.total_trials or any(t.active for t in record.trials):
        return record
    if any(t.status is RunStatus.SUCCEEDED for t in record.trials):
        return decide(ctx, record.sweep_id, SweepStatus.SUCCEEDED, None, None)
    return decide(
        ctx, record.sweep_id, SweepStatus.FAILED, "all_trials_failed", "no trial succeeded"
    )


def decide(
    ctx: StepContext, sweep_id: str, status: SweepStatus, reason: str | None, error: str | None
) -> SweepRecord:
    """The sweep's ending; the first decision wins."""

    def change(record: SweepRecord) -> None:
        if record.ending is None:
            record.ending = SweepEnding(status=status, reason=reason, error=error)

    record = ctx.store.sweeps.update(sweep_id, change)
    get_logger(sweep_id=sweep_id).info(
        "sweep_ending_decided", status=record.ending.status if record.ending else None
    )
    return record
