"""Sweeps: many trials on one cluster, driven one tick at a time.

A sweep is not a chain of its own: its trials are ordinary runs (the same
chain, store and record, with `sweep_id`), and the sweep itself is a tick that
any worker runs when the sweeps' due index says so (claimed by the chain
clock, executed as the task `batchai.sweep_tick` under the sweep's lease).
One tick:

1. provisions once what every trial shares: resource group, workspace,
   experiment, unless the trial names a shared cluster a cluster of the
   sweep's own sized max_concurrent_trials x the trial's node_count, and the
   trial's inputs on the sweep's share;
2. polls: one Jobs_ListByExperiment, written to the poll cache the trials'
   steps read (steps.py, trial_poll.py), whatever the number of trials;
   trials whose job ended are brought forward in the due index so they
   notice at once; the cluster is read only while a job waits for nodes;
3. reads the running trials' new stdout lines (sweep_metrics.py) and applies
   the early termination policy (domain/early_termination.py);
4. decides the sweep's ending (cancel, timeout, failure threshold, or all
   trials done) or prepares trials and passes free slots on;
5. once an ending is decided and every trial has ended: makes sure no trial
   job is left, deletes the inputs and the sweep's cluster and ends the sweep.

The trials' part of a tick (their runs mirrored, stopped early, started,
their slots) is chain/sweep_trials.py; what callers see of a sweep,
chain/sweep_view.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.azure.errors import PermanentAzureError, TransientAzureError
from orchestrator.azure.types import JobState
from orchestrator.chain.cancel import RunAlreadyEnded, cancel_run
from orchestrator.chain.lease import Lease
from orchestrator.chain.steps import StepContext
from orchestrator.chain.sweep_trials import (
    JOB_ENDED,
    apply_failure_rule,
    cluster_of,
    decide,
    natural_end,
    owns_cluster,
    pass_slots_on,
    refresh_trials,
    start_trials,
    stop_trials_early,
    trial_run_id,
    trial_runs,
)
from orchestrator.domain.naming import AzureNames, azure_names
from orchestrator.domain.status import (
    FailureReason,
    RunStatus,
    Step,
    StepState,
    SweepStatus,
)
from orchestrator.domain.sweep import SweepSpec
from orchestrator.inputs.checks import check_inputs
from orchestrator.inputs.placement import InputPlacer, InputProblem
from orchestrator.observability.logs import get_logger
from orchestrator.store import InputRecord, RunNotFound, RunRecord, RunStore
from orchestrator.store.sweeps import SweepRecord, TrialRecord

# The tick interval grows with the age of the youngest running job (next_interval).
SWEEP_POLL_GROWTH = 0.1
SWEEP_POLL_MAX_SECONDS = 120.0
# A tick aimed at a job's expected end (next_interval) comes this long after it,
# and never sooner than MIN_TICK_SECONDS after the last tick.
END_MARGIN_SECONDS = 0.2
MIN_TICK_SECONDS = 0.2
# How long a lease-busy tick waits before it looks again.
BUSY_RETRY_SECONDS = 1.0


# ------------------------------------------------------------- submission
def submit_sweep(
    spec: SweepSpec,
    *,
    store: RunStore,
    input_roots: Sequence[Any] = (),
    idempotency_key: str | None = None,
    submitted_by: str | None = None,
) -> tuple[SweepRecord, bool]:
    """Check the trial's inputs (InputRejected names the field), then record the
    sweep, due at once; the chain clock starts it. (record, created)."""
    check_inputs(spec.trial, input_roots=input_roots, book=store.uploads, now=time.time())
    return store.sweeps.create(spec, idempotency_key=idempotency_key, submitted_by=submitted_by)


def cancel_sweep(store: RunStore, sweep_id: str) -> SweepRecord:
    """Flag the sweep; its next tick (brought forward) cancels every trial and cleans up."""
    return store.sweeps.request_cancel(sweep_id)


# ------------------------------------------------------------------ names
def sweep_names(ctx: StepContext, record: SweepRecord) -> AzureNames:
    """Names the sweep shares with all its trials (job and run share are trial 0's)."""
    probe = TrialRecord(index=0, run_id=trial_run_id(record.sweep_id, 0), parameters={})
    spec = record.spec.trial.model_copy(update={"name": record.spec.name})
    names = azure_names(probe.run_id, spec, ctx.settings, record.sweep_id)
    return AzureNames(
        **{**names.__dict__, "cluster": cluster_of(record.sweep_id, record.spec)},
    )


# ------------------------------------------------------------------- tick
def run_tick(ctx: StepContext, sweep_id: str, owner: str) -> None:
    """One tick of the sweep under its lease; schedules the next one."""
    book = ctx.store.sweeps
    lease = Lease.acquire(
        ctx.store.redis, ctx.store.keys, f"sweep:{sweep_id}", owner, ctx.settings.lease_seconds
    )
    if lease is None:
        book.schedule(sweep_id, ctx.clock() + BUSY_RETRY_SECONDS)
        return
    with lease:
        log = get_logger(sweep_id=sweep_id)
        try:
            next_in = _tick(ctx, sweep_id)
        except TransientAzureError as exc:
            log.warning("sweep_tick_transient_error", error=str(exc))
            next_in = ctx.settings.sweep_poll_seconds
        if lease.lost:
            return
        if next_in is None:
            book.unschedule(sweep_id)
        else:
            # LT keeps a nudge that came during the tick (a trial ended).
            ctx.store.redis.zadd(
                ctx.store.keys.sweeps_due,
                {sweep_id: ctx.clock() + next_in},
                xx=True,
                lt=True,
            )


def _tick(ctx: StepContext, sweep_id: str) -> float | None:
    book = ctx.store.sweeps
    record = book.get(sweep_id)
    if record.terminal:
        return None
    interval = ctx.settings.sweep_poll_seconds
    now = ctx.clock()
    if record.status is SweepStatus.QUEUED:
        record = book.transition(sweep_id, SweepStatus.RUNNING, started_at=now)
        get_logger(sweep_id=sweep_id).info("sweep_started")
    names = sweep_names(ctx, record)
    record = _decide_limits(ctx, record, now)
    if record.ending is None and not record.provisioned:
        try:
            placed = _provision(ctx, record, names)
            if placed is None:
                return interval
        except PermanentAzureError as exc:
            record = decide(ctx, sweep_id, SweepStatus.FAILED, exc.reason.value, str(exc))
        except InputProblem as exc:
            record = decide(ctx, sweep_id, SweepStatus.FAILED, "invalid_spec", f"trial.{exc}")
        else:
            record = book.update(sweep_id, _mark_provisioned(names, placed))
            book.set_slot_limit(sweep_id, record.spec.limits.max_concurrent_trials)
    jobs: dict[str, JobState] = {}
    if record.provisioned:
        jobs = _poll(ctx, record, names)
    runs = trial_runs(ctx, record)
    _bring_forward(ctx, jobs, runs)
    record = refresh_trials(ctx, record, jobs, runs)
    if record.ending is None:
        record = stop_trials_early(ctx, record, jobs, runs)
        record = apply_failure_rule(ctx, record)
    if record.ending is None and record.provisioned:
        problem = _allocation_problem(ctx, record, names, jobs)
        if problem is not None:
            record = decide(ctx, sweep_id, SweepStatus.FAILED, "allocation_failed", problem)
    if record.ending is None and not record.cancel_requested:
        record = start_trials(ctx, record)
        pass_slots_on(ctx, record)
        record = natural_end(ctx, record)
    if record.ending is not None:
        return _wind_down(ctx, record, names, jobs)
    return next_interval(ctx, record)


def next_interval(ctx: StepContext, record: SweepRecord) -> float:
    """The shortest interval while a slotted trial's job has not started yet (a
    job may be short); then growing with the age of the youngest running job,
    SWEEP_POLL_GROWTH of it, up to SWEEP_POLL_MAX_SECONDS: a job's end is
    noticed within a tenth of its runtime, and a sweep of long jobs reads Azure
    a few times an hour, not every second."""
    base = ctx.settings.sweep_poll_seconds
    now = ctx.clock()
    slotted = ctx.store.sweeps.slots(record.sweep_id)
    ages: list[float] = []
    for trial in record.trials:
        if not trial.active or trial.run_id not in slotted:
            continue
        if trial.started_at is None:
            return base
        ages.append(now - trial.started_at)
    if not ages:
        return base
    interval = min(SWEEP_POLL_MAX_SECONDS, max(base, SWEEP_POLL_GROWTH * min(ages)))
    expected = _next_expected_end(record, slotted, now)
    if expected is not None:
        # Just after the next job is expected to end: noticed then, not up to
        # an interval later (one read more when it is late).
        interval = min(interval, max(MIN_TICK_SECONDS, expected - now + END_MARGIN_SECONDS))
    return interval


def _next_expected_end(record: SweepRecord, slotted: set[str], now: float) -> float | None:
    """The soonest expected end of a running job: its start (from the listing)
    plus the median runtime of the trials' jobs that ended; None before any did,
    or when every expected end has passed."""
    runtimes = [t.job_seconds for t in record.trials if t.job_seconds is not None]
    if not runtimes:
        return None
    typical = statistics.median(runtimes)
    ends = [
        t.job_started_at + typical
        for t in record.trials
        if t.active and t.run_id in slotted and t.job_started_at is not None
    ]
    upcoming = [end for end in ends if end + END_MARGIN_SECONDS > now]
    return min(upcoming) if upcoming else None


def _mark_provisioned(names: AzureNames, placed: dict[str, InputRecord]) -> Any:
    def change(record: SweepRecord) -> None:
        record.provisioned = True
        record.inputs = dict(placed)
        record.resources.update(
            resource_group=names.resource_group,
            workspace=names.workspace,
            experiment=names.experiment,
            cluster=names.cluster,
            share=names.run_share,
        )

    return change


def _provision(
    ctx: StepContext, record: SweepRecord, names: AzureNames
) -> dict[str, InputRecord] | None:
    """Resource group, workspace, experiment, cluster and the trial's inputs on
    the sweep's share, once for all trials; what was placed once all are ready,
    None while not yet (each call adopts what exists, and places again)."""
    gateway = ctx.gateway
    gateway.ensure_resource_group(names.resource_group)
    if not gateway.ensure_workspace(names.resource_group, names.workspace):
        return None
    if not gateway.ensure_experiment(names.resource_group, names.workspace, names.experiment):
        return None
    trial = record.spec.trial
    if owns_cluster(record.spec):
        # Sized for every concurrent trial at once (validation bounds a run's own
        # cluster; the sweep's may be larger, so the copy skips it).
        nodes = record.spec.limits.max_concurrent_trials * trial.cluster.node_count
        cluster = trial.cluster.model_copy(update={"node_count": nodes})
        gateway.ensure_cluster(names, trial.model_copy(update={"cluster": cluster}))
    else:
        gateway.ensure_cluster(names, trial)
    placer = InputPlacer(gateway, ctx.store.uploads, names, ctx.settings.input_roots)
    return placer.place_all(trial.input_refs()).inputs


def _poll(ctx: StepContext, record: SweepRecord, names: AzureNames) -> dict[str, JobState]:
    """The batch poll: one listing of the experiment's jobs per tick, cached for
    the trials' steps; trials whose job ended are brought forward. The cluster
    is read only while a trial's job waits for nodes (to notice that they never
    come)."""
    now = ctx.clock()
    jobs = ctx.gateway.list_jobs(names.resource_group, names.workspace, names.experiment)
    snapshot: dict[str, Any] = {"at": now, "jobs": {n: _job_json(j) for n, j in jobs.items()}}
    ctx.store.sweeps.put_poll(record.sweep_id, snapshot)
    return jobs


def _allocation_problem(
    ctx: StepContext, record: SweepRecord, names: AzureNames, jobs: dict[str, JobState]
) -> str | None:
    """Why the cluster cannot run the trials' jobs (allocation errors, too many
    unusable nodes), read only while a job of a slotted trial is queued."""
    if record.cluster_deleted or record.ending is not None:
        return None
    slotted = ctx.store.sweeps.slots(record.sweep_id)
    queued = any(t.active and t.run_id in slotted and t.started_at is None for t in record.trials)
    if not queued:
        return None
    try:
        nodes = ctx.gateway.get_cluster_nodes(names)
    except PermanentAzureError as exc:
        return str(exc)
    if nodes.errors:
        return f"cluster {names.cluster} could not allocate nodes: " + "; ".join(nodes.errors)
    needed = record.spec.trial.cluster.node_count
    if nodes.target > 0 and nodes.target - nodes.unusable < needed:
        return f"cluster {names.cluster}: {nodes.unusable} of {nodes.target} nodes are unusable"
    return None


def _job_json(job: JobState) -> dict[str, Any]:
    return {
        "execution_state": job.execution_state,
        "exit_code": job.exit_code,
        "errors": job.errors,
        "start_time": job.start_time.isoformat() if job.start_time else None,
        "end_time": job.end_time.isoformat() if job.end_time else None,
    }


def _bring_forward(
    ctx: StepContext, jobs: dict[str, JobState], runs: dict[str, RunRecord]
) -> None:
    """Trials whose job the listing shows ended get their waiting poll moved to now."""
    now = ctx.clock()
    for run in runs.values():
        job = jobs.get(ctx.names(run).job)
        poll = run.step(Step.POLL_JOB)
        ended = job is not None and job.execution_state in JOB_ENDED
        if ended and poll.state is StepState.WAITING and poll.task_id:
            ctx.store.due.bring_forward(poll.task_id, now)


# ----------------------------------------------------------------- ending
def _decide_limits(ctx: StepContext, record: SweepRecord, now: float) -> SweepRecord:
    if record.ending is not None:
        return record
    if record.cancel_requested:
        return decide(
            ctx, record.sweep_id, SweepStatus.CANCELLED, "cancelled", "cancelled by request"
        )
    timeout = record.spec.limits.timeout_seconds
    if timeout is not None and now - (record.started_at or now) > timeout:
        return decide(
            ctx,
            record.sweep_id,
            SweepStatus.CANCELLED,
            "timeout",
            f"the sweep's timeout ({record.spec.limits.timeout}) passed",
        )
    return record


def _wind_down(
    ctx: StepContext, record: SweepRecord, names: AzureNames, jobs: dict[str, JobState]
) -> float | None:
    """Cancel what runs, wait for every trial to end, then delete the sweep's
    cluster and end the sweep. None once it has ended."""
    interval = ctx.settings.sweep_poll_seconds
    assert record.ending is not None
    still_active = 0
    for trial in record.trials:
        if not trial.active:
            continue
        if not trial.enqueued:
            record = ctx.store.sweeps.update(record.sweep_id, _never_started(trial.index))
            continue
        try:
            run = cancel_run(ctx.store, trial.run_id, by=f"sweep:{record.sweep_id}")
        except (RunAlreadyEnded, RunNotFound):
            continue
        still_active += not run.terminal
    # The trials' own chains clean up what they started; the sweep waits for them.
    record = refresh_trials(ctx, record, jobs, trial_runs(ctx, record))
    if still_active:
        return interval
    if record.provisioned:
        # The trials' cleanups deleted their jobs; a job left by one whose
        # cleanup gave up is deleted here (the listing is this tick's).
        ours = {ctx.names(ctx.store.get(t.run_id)).job for t in record.trials if t.enqueued}
        leftover = sorted(ours & set(jobs))
        for job in leftover:
            ctx.gateway.delete_job(names.resource_group, names.workspace, names.experiment, job)
        if leftover:
            return interval
        if not record.inputs_deleted:
            # The trials' copies of the inputs; their outputs stay on the share.
            ctx.gateway.delete_tree(names.run_share, names.inputs_root)
            record = ctx.store.sweeps.update(record.sweep_id, _mark_inputs_deleted)
        if owns_cluster(record.spec) and not record.cluster_deleted:
            ctx.gateway.delete_cluster(names.resource_group, names.workspace, names.cluster)
            if ctx.gateway.cluster_exists(names):
                return interval
            record = ctx.store.sweeps.update(record.sweep_id, _mark_cluster_deleted)
    ending = record.ending
    assert ending is not None
    ctx.store.sweeps.transition(
        record.sweep_id,
        ending.status,
        reason=ending.reason,
        error=ending.error,
        finished_at=ctx.clock(),
    )
    ctx.store.sweeps.delete_poll(record.sweep_id)
    get_logger(sweep_id=record.sweep_id).info(
        "sweep_finished", status=ending.status.value, reason=ending.reason
    )
    return None


def _never_started(index: int) -> Any:
    def change(record: SweepRecord) -> None:
        record.trials[index].status = RunStatus.CANCELLED
        record.trials[index].reason = FailureReason.CANCELLED

    return change


def _mark_inputs_deleted(record: SweepRecord) -> None:
    record.inputs_deleted = True


def _mark_cluster_deleted(record: SweepRecord) -> None:
    record.cluster_deleted = True
