"""Sweeps: many trials on one cluster, driven one tick at a time.

A sweep is not a chain of its own: its trials are ordinary runs (the same
chain, store and record, with `sweep_id`), and the sweep itself is a tick that
any worker runs when the sweeps' due index says so (claimed by the chain
clock, executed as the task `batchai.sweep_tick` under the sweep's lease).
One tick:

1. provisions once what every trial shares: resource group, workspace,
   experiment and, unless the trial names a shared cluster, a cluster of the
   sweep's own sized max_concurrent_trials x the trial's node_count;
2. polls: one Jobs_ListByExperiment and one Clusters_Get, written to the poll
   cache the trials' steps read (steps.py), whatever the number of trials;
   trials whose job ended, or that wait for nodes now idle, are brought
   forward in the due index so they notice at once;
3. reads the running trials' new stdout lines (sweep_metrics.py) and applies
   the early termination policy (domain/early_termination.py);
4. decides the sweep's ending (cancel, timeout, failure threshold, or all
   trials done) or starts trials up to max_concurrent_trials;
5. once an ending is decided and every trial has ended: makes sure no trial
   job is left, deletes the sweep's cluster and ends the sweep.

Crash safety: a trial's parameters are written to the sweep record before its
run is enqueued under the run id `<sweep_id>-<index>` (idempotent), so a tick
redone after a SIGKILL enqueues the same trial, never a second one; a trial
index is only ever added by the lease holder.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.azure.errors import PermanentAzureError, TransientAzureError
from orchestrator.azure.types import JobState
from orchestrator.chain import sweep_metrics
from orchestrator.chain.cancel import RunAlreadyEnded, cancel_run
from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.lease import Lease
from orchestrator.chain.steps import StepContext
from orchestrator.domain.early_termination import TrialProgress, trials_to_stop
from orchestrator.domain.naming import SWEEP_TAG, AzureNames, azure_names, sweep_cluster_name
from orchestrator.domain.sampling import FinishedTrial, suggest
from orchestrator.domain.spec import ClusterPolicy, RunSpec, parse_spec
from orchestrator.domain.status import (
    FailureReason,
    RunStatus,
    Step,
    StepState,
    SweepStatus,
)
from orchestrator.domain.sweep import Goal, SamplingAlgorithm, SweepSpec
from orchestrator.inputs.checks import check_inputs
from orchestrator.inputs.placement import InputPlacer, InputProblem
from orchestrator.observability.logs import get_logger
from orchestrator.store import InputRecord, RunNotFound, RunStore
from orchestrator.store.sweeps import SweepEnding, SweepRecord, TrialRecord

# The tick interval grows with the age of the youngest running job (next_interval).
SWEEP_POLL_GROWTH = 0.1
SWEEP_POLL_MAX_SECONDS = 120.0
# How long a lease-busy tick waits before it looks again.
BUSY_RETRY_SECONDS = 1.0
# Without early termination, live values only feed the leaderboard: a running
# trial's stdout is read every this many ticks, not every tick (2 reads each).
LIVE_READ_EVERY_TICKS = 5
# Job states the listing gives for a job that has ended.
_JOB_ENDED = frozenset({"succeeded", "failed"})


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
            record = _decide(ctx, sweep_id, SweepStatus.FAILED, exc.reason.value, str(exc))
        except InputProblem as exc:
            record = _decide(ctx, sweep_id, SweepStatus.FAILED, "invalid_spec", f"trial.{exc}")
        else:
            record = book.update(sweep_id, _mark_provisioned(names, placed))
            book.set_slot_limit(sweep_id, record.spec.limits.max_concurrent_trials)
    jobs: dict[str, JobState] = {}
    if record.provisioned:
        jobs = _poll(ctx, record, names)
    record = _refresh_trials(ctx, record, jobs)
    if record.ending is None:
        record = _early_termination(ctx, record, jobs)
        record = _failure_rule(ctx, record)
    if record.ending is None and record.provisioned:
        problem = _allocation_problem(ctx, record, names, jobs)
        if problem is not None:
            record = _decide(ctx, sweep_id, SweepStatus.FAILED, "allocation_failed", problem)
    if record.ending is None and not record.cancel_requested:
        record = _start_trials(ctx, record)
        _pass_slots(ctx, record)
        record = _natural_end(ctx, record)
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
    return min(SWEEP_POLL_MAX_SECONDS, max(base, SWEEP_POLL_GROWTH * min(ages)))


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
    _bring_forward(ctx, record, jobs)
    return jobs


def _allocation_problem(
    ctx: StepContext, record: SweepRecord, names: AzureNames, jobs: dict[str, JobState]
) -> str | None:
    """Why the cluster cannot run the trials' jobs (allocation errors, too many
    unusable nodes), read only while a job of a slotted trial is queued."""
    if record.cluster_deleted or record.ending is not None:
        return None
    slotted = ctx.store.sweeps.slots(record.sweep_id)
    queued = any(
        t.active and t.run_id in slotted and t.started_at is None for t in record.trials
    )
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


def _bring_forward(ctx: StepContext, record: SweepRecord, jobs: dict[str, JobState]) -> None:
    """Trials whose job the listing shows ended get their waiting poll moved to now."""
    now = ctx.clock()
    for trial in record.trials:
        if not trial.active or not trial.enqueued:
            continue
        try:
            run = ctx.store.get(trial.run_id)
        except RunNotFound:
            continue
        job = jobs.get(ctx.names(run).job)
        poll = run.step(Step.POLL_JOB)
        ended = job is not None and job.execution_state in _JOB_ENDED
        if ended and poll.state is StepState.WAITING and poll.task_id:
            ctx.store.due.bring_forward(poll.task_id, now)


def _pass_slots(ctx: StepContext, record: SweepRecord) -> None:
    """Free the slots of trials that ended without passing theirs on (cancelled
    while queued, or their worker died between the two writes), and give free
    slots to the lowest waiting trials."""
    ended = [t.run_id for t in record.trials if not t.active]
    granted = ctx.store.sweeps.pass_slots(record.sweep_id, ended)
    _hurry_waits(ctx, granted)


def _hurry_waits(ctx: StepContext, run_ids: list[str]) -> None:
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
    _hurry_waits(ctx, ctx.store.sweeps.pass_slots(sweep_id, [run_id]))
    ctx.store.sweeps.nudge(sweep_id, ctx.clock())


# ----------------------------------------------------------------- trials
def _refresh_trials(
    ctx: StepContext, record: SweepRecord, jobs: dict[str, JobState]
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
        try:
            run = ctx.store.get(trial.run_id)
        except RunNotFound:
            continue  # not enqueued yet (see _start_trials)
        names = ctx.names(run)
        job = jobs.get(names.job)
        if job is not None and job.execution_state == "running" and trial.started_at is None:
            change["started_at"] = now
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
            last = trial.live_read_at or (trial.started_at if ticks > 1 else None)
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


def _early_termination(
    ctx: StepContext, record: SweepRecord, jobs: dict[str, JobState]
) -> SweepRecord:
    policy = record.spec.early_termination
    if policy is None:
        return record
    progress = [
        TrialProgress(
            trial=str(t.index),
            values=tuple(t.series),
            # Only a trial whose job still runs can be stopped.
            active=t.active and t.stopped_at_interval is None and _job_running(ctx, t, jobs),
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


def _job_running(ctx: StepContext, trial: TrialRecord, jobs: dict[str, JobState]) -> bool:
    try:
        run = ctx.store.get(trial.run_id)
    except RunNotFound:
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
    store.request_cancel(trial.run_id, by=f"sweep:{record.sweep_id}")
    ctx.gateway.terminate_job(ctx.names(run))
    for step in (Step.POLL_JOB, Step.WAIT_FOR_NODES):
        task_id = run.step(step).task_id
        if run.step(step).state is StepState.WAITING and task_id:
            store.due.bring_forward(task_id, ctx.clock())
    get_logger(sweep_id=record.sweep_id, run_id=trial.run_id).info("trial_stopped_early", why=why)


def _failure_rule(ctx: StepContext, record: SweepRecord) -> SweepRecord:
    limits = record.spec.limits
    ended = [t for t in record.trials if not t.active]
    failed = sum(t.status is RunStatus.FAILED for t in ended)
    if not limits.too_many_failures(failed, len(ended)):
        return record
    return _decide(
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


def _start_trials(ctx: StepContext, record: SweepRecord) -> SweepRecord:
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


def _natural_end(ctx: StepContext, record: SweepRecord) -> SweepRecord:
    if len(record.trials) < record.spec.total_trials or any(t.active for t in record.trials):
        return record
    if any(t.status is RunStatus.SUCCEEDED for t in record.trials):
        return _decide(ctx, record.sweep_id, SweepStatus.SUCCEEDED, None, None)
    return _decide(
        ctx, record.sweep_id, SweepStatus.FAILED, "all_trials_failed", "no trial succeeded"
    )


# ----------------------------------------------------------------- ending
def _decide(
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


def _decide_limits(ctx: StepContext, record: SweepRecord, now: float) -> SweepRecord:
    if record.ending is not None:
        return record
    if record.cancel_requested:
        return _decide(
            ctx, record.sweep_id, SweepStatus.CANCELLED, "cancelled", "cancelled by request"
        )
    timeout = record.spec.limits.timeout_seconds
    if timeout is not None and now - (record.started_at or now) > timeout:
        return _decide(
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
    record = _refresh_trials(ctx, record, jobs)
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


# ---------------------------------------------------------------- leaderboard
def leaderboard(record: SweepRecord) -> list[TrialRecord]:
    """Trials sorted by the objective: those with a value first, best first."""
    goal = record.spec.objective.goal
    sign = 1.0 if goal is Goal.MINIMIZE else -1.0
    return sorted(
        record.trials,
        key=lambda t: (t.value is None, sign * t.value if t.value is not None else 0.0, t.index),
    )


def best_trial(record: SweepRecord) -> TrialRecord | None:
    """The best succeeded trial by the objective."""
    for trial in leaderboard(record):
        if trial.status is RunStatus.SUCCEEDED and trial.value is not None:
            return trial
    return None


def trial_view(trial: TrialRecord) -> dict[str, Any]:
    return {
        "index": trial.index,
        "run_id": trial.run_id,
        "status": trial.status.value,
        "reason": trial.reason.value if trial.reason else None,
        "parameters": trial.parameters,
        "value": trial.value,
        "metrics": trial.metrics,
        "series": trial.series,
        "stopped_at_interval": trial.stopped_at_interval,
    }


def sweep_view(record: SweepRecord) -> dict[str, Any]:
    """The sweep as the API, the client and `sweep status --json` show it: status,
    counts by status, the best trial and the leaderboard (trials by the objective)."""
    best = best_trial(record)
    spec = record.spec
    return {
        "sweep_id": record.sweep_id,
        "name": spec.name,
        "status": record.status.value,
        "reason": record.reason,
        "error": record.error,
        "cancel_requested": record.cancel_requested,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "ended_at": record.finished_at,
        "objective": spec.objective.model_dump(mode="json"),
        "sampling_algorithm": spec.sampling_algorithm.value,
        "search_space": {k: v.model_dump(mode="json") for k, v in spec.search_space.items()},
        "early_termination": spec.early_termination.model_dump(mode="json")
        if spec.early_termination
        else None,
        "limits": spec.limits.model_dump(mode="json"),
        "total_trials": spec.total_trials,
        "counts": record.counts(),
        "cluster": record.resources.get("cluster"),
        "node_seconds_saved": round(record.node_seconds_saved, 3),
        "best": None
        if best is None
        else {"run_id": best.run_id, "parameters": best.parameters, "value": best.value},
        "trials": [trial_view(t) for t in leaderboard(record)],
    }
