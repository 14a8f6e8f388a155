"""The reaper: the last line of defence against leaked Azure resources.

Run every few minutes (task `batchai.reap`, scheduled by beat), it deletes this
orchestrator's clusters and jobs -- recognised by their names
(naming.parse_*_run_id; shared clusters are never recognised) -- whose run is
terminal or unknown to the store, once they are older than
settings.reaper_grace_seconds (so a run being created is never raced).

Re-driving runs that lost their worker is the other, faster job: it reads
Redis only and runs every few seconds in every worker's chain clock
(chain/redrive.py, chain/clock.py), so recovery costs no Azure reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.steps import StepContext
from orchestrator.domain.naming import parse_cluster_run_id, parse_job_run_id
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunNotFound


@dataclass
class ReapReport:
    deleted_clusters: list[str] = field(default_factory=list)
    deleted_jobs: list[str] = field(default_factory=list)


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


def reap(ctx: StepContext) -> ReapReport:
    """One sweep over the workspace's clusters and jobs."""
    report = ReapReport()
    for reap_kind in (reap_jobs, reap_clusters):
        try:
            reap_kind(ctx, report)
        except AzureGatewayError as exc:  # listing failed: the next sweep tries again
            get_logger(component="reaper").warning(
                "reap_resources_failed", kind=reap_kind.__name__, error=str(exc)
            )
    return report
