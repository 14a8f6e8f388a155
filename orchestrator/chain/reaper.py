"""The reaper: last line of defence after a SIGKILL or a lost message.

Run periodically (task `batchai.reap`, scheduled by beat). It

1. deletes this orchestrator's clusters and jobs -- recognised by their names
   (naming.parse_*_run_id; shared clusters are never recognised) -- whose run
   is terminal or unknown to the store, once they are older than
   settings.reaper_grace_seconds (so a run being created is never raced);
2. re-drives runs that are not terminal but made no progress for a long time
   (longer than a broker redelivery could take): it re-sends their current
   step's task with the expected task id, which the chain accepts exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.runner import Dispatch, new_task_id
from orchestrator.chain.steps import StepContext
from orchestrator.domain.naming import parse_cluster_run_id, parse_job_run_id
from orchestrator.domain.status import STEP_ORDER, TERMINAL, RunStatus, Step, StepState
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunNotFound, RunRecord

_FINISHED = frozenset({StepState.DONE, StepState.SKIPPED})


@dataclass
class ReapReport:
    deleted_clusters: list[str] = field(default_factory=list)
    deleted_jobs: list[str] = field(default_factory=list)
    redriven: list[Dispatch] = field(default_factory=list)


def stale_after_seconds(ctx: StepContext) -> float:
    """No progress for this long means the run's message was lost: longer than
    a redelivery (visibility timeout) plus the longest poll countdown."""
    s = ctx.settings
    return 2 * s.visibility_timeout_seconds + s.poll_max_seconds


def _age(ctx: StepContext, resource: AzureResource) -> float:
    if resource.created is None:
        return float("inf")
    created: datetime = resource.created
    return ctx.clock() - created.timestamp()


def _owner_gone(ctx: StepContext, run_id: str) -> bool:
    try:
        return ctx.store.get(run_id).terminal
    except RunNotFound:
        return True


def _leaked(ctx: StepContext, resource: AzureResource, run_id: str | None) -> bool:
    """Ours (a run id in its name), past the grace period, and its run is over or unknown."""
    return (
        run_id is not None
        and _age(ctx, resource) >= ctx.settings.reaper_grace_seconds
        and _owner_gone(ctx, run_id)
    )


def _delete(kind: str, name: str, run_id: str | None, delete: Callable[[], None]) -> bool:
    """One deletion; a failure is logged and leaves this resource to the next
    sweep without stopping the sweep (one undeletable job must not leak every
    cluster)."""
    log = get_logger(component="reaper")
    try:
        delete()
    except AzureGatewayError as exc:
        log.warning("reap_failed", kind=kind, name=name, run_id=run_id, error=str(exc))
        return False
    log.warning(f"reaped_{kind}", **{kind: name}, run_id=run_id)
    return True


def reap_jobs(ctx: StepContext, report: ReapReport) -> None:
    gateway = ctx.gateway
    rg, ws = ctx.settings.azure_resource_group, ctx.settings.azure_workspace
    for job in gateway.list_job_resources(rg, ws):
        run_id = parse_job_run_id(job.name, job.experiment)
        if not _leaked(ctx, job, run_id):
            continue
        experiment = job.experiment
        assert experiment is not None
        if _delete(
            "job", job.name, run_id, partial(gateway.delete_job, rg, ws, experiment, job.name)
        ):
            report.deleted_jobs.append(job.name)


def reap_clusters(ctx: StepContext, report: ReapReport) -> None:
    gateway = ctx.gateway
    rg, ws = ctx.settings.azure_resource_group, ctx.settings.azure_workspace
    for cluster in gateway.list_clusters(rg, ws):
        run_id = parse_cluster_run_id(cluster.name)
        if not _leaked(ctx, cluster, run_id):
            continue
        if _delete(
            "cluster", cluster.name, run_id, partial(gateway.delete_cluster, rg, ws, cluster.name)
        ):
            report.deleted_clusters.append(cluster.name)


def redrive_step(record: RunRecord) -> Step:
    """The step a stalled run should continue with.

    A cancel request with no decided ending yet is not a reason to go straight
    to cleanup: the current step's message is what decides the run cancelled
    (and terminates its job) before sending it to cleanup.
    """
    failed = any(record.step(s).state is StepState.FAILED for s in STEP_ORDER)
    if record.ending is not None or failed:
        return Step.CLEANUP
    for step in STEP_ORDER:
        if record.step(step).state not in _FINISHED:
            return step
    return Step.CLEANUP


def redrive_stalled(ctx: StepContext, report: ReapReport) -> None:
    log = get_logger(component="reaper")
    now = ctx.clock()
    threshold = stale_after_seconds(ctx)
    for record in _active_runs(ctx):
        run_id = record.run_id
        if record.terminal or not record.dispatched or now - record.updated_at < threshold:
            continue
        if ctx.store.redis.exists(ctx.store.keys.lock(run_id)):
            continue  # a step is executing right now
        step = redrive_step(record)
        task_id = record.step(step).task_id
        if task_id is None:
            task_id = new_task_id(run_id, step)
            ctx.store.set_step(run_id, step, StepState.PENDING, task_id=task_id)
        else:
            # Touch the record so the next sweep waits another full period.
            ctx.store.append_event(run_id, "redriven", step=step.value, task_id=task_id)
            ctx.store.set_step(run_id, step, record.step(step).state, detail={"redriven_at": now})
        report.redriven.append(Dispatch(step, run_id, task_id))
        log.warning("redriven_run", run_id=run_id, step=step.value, task_id=task_id)


def _active_runs(ctx: StepContext) -> Iterator[RunRecord]:
    """Every non-terminal run, through the status indexes (ended runs are not read)."""
    for status in RunStatus:
        if status in TERMINAL:
            continue
        cursor: str | None = None
        while True:
            page, cursor = ctx.store.list_runs(status=status, limit=200, cursor=cursor)
            yield from page
            if cursor is None:
                break


def reap(ctx: StepContext) -> list[Dispatch]:
    """One sweep; returns the task messages to send (re-driven steps)."""
    report = ReapReport()
    for reap_kind in (reap_jobs, reap_clusters):
        try:
            reap_kind(ctx, report)
        except AzureGatewayError as exc:  # listing failed: the next sweep tries again
            get_logger(component="reaper").warning(
                "reap_resources_failed", kind=reap_kind.__name__, error=str(exc)
            )
    redrive_stalled(ctx, report)
    return report.redriven
