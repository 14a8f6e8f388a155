"""The reaper: the last line of defence against leaked Azure resources.

Run every few minutes (task `batchai.reap`, scheduled by beat), it deletes this
orchestrator's clusters and jobs -- recognised by their names
(naming.parse_*_run_id; shared clusters are never recognised) -- whose run is
terminal or unknown to the store, once they are older than
settings.reaper_grace_seconds (so a run being created is never raced).

It also applies the retention of data on the share: uploads no live run or
schedule names, unused for ORCH_UPLOAD_RETENTION, and (when
ORCH_OUTPUT_RETENTION is set) the outputs of runs that ended longer ago.

Re-driving runs that lost their worker is the other, faster job: it reads
Redis only and runs every few seconds in every worker's chain clock
(chain/redrive.py, chain/clock.py), so recovery costs no Azure reads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from orchestrator.azure.errors import AzureGatewayError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.redrive import active_runs
from orchestrator.chain.steps import StepContext
from orchestrator.domain.inputs import InputKind
from orchestrator.domain.naming import (
    parse_cluster_run_id,
    parse_cluster_sweep_id,
    parse_job_run_id,
    upload_blob_path,
)
from orchestrator.domain.status import TERMINAL
from orchestrator.observability.logs import get_logger
from orchestrator.store import RunNotFound, RunRecord
from orchestrator.store.schedules import ScheduleBook, ScheduleNotFound
from orchestrator.store.sweeps import SweepNotFound


@dataclass
class ReapReport:
    deleted_clusters: list[str] = field(default_factory=list)
    deleted_jobs: list[str] = field(default_factory=list)
    deleted_uploads: list[str] = field(default_factory=list)
    deleted_contents: list[str] = field(default_factory=list)
    expired_outputs: list[str] = field(default_factory=list)


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


def _delete(kind: str, name: str, run_id: str | None, delete: Callable[[], object]) -> bool:
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


def _sweep_gone(ctx: StepContext, resource: AzureResource, sweep_id: str) -> bool:
    """A sweep's cluster past the grace period whose sweep has ended or is unknown."""
    if _age(ctx, resource) < ctx.settings.reaper_grace_seconds:
        return False
    try:
        return ctx.store.sweeps.get(sweep_id).terminal
    except SweepNotFound:
        return True


def reap_clusters(ctx: StepContext, report: ReapReport) -> None:
    gateway = ctx.gateway
    rg, ws = ctx.settings.azure_resource_group, ctx.settings.azure_workspace
    for cluster in gateway.list_clusters(rg, ws):
        run_id = parse_cluster_run_id(cluster.name)
        sweep_id = parse_cluster_sweep_id(cluster.name)
        if sweep_id is not None:
            if not _sweep_gone(ctx, cluster, sweep_id):
                continue
        elif not _leaked(ctx, cluster, run_id):
            continue
        if _delete(
            "cluster", cluster.name, run_id, partial(gateway.delete_cluster, rg, ws, cluster.name)
        ):
            report.deleted_clusters.append(cluster.name)


def _uploads_in_use(ctx: StepContext) -> tuple[set[str], set[str]]:
    """(upload ids, content digests) that live runs and schedules name."""
    specs = [record.spec for record in active_runs(ctx)]
    schedules = ScheduleBook(ctx.store.redis, ctx.store.keys)
    for name in schedules.names():
        with suppress(ScheduleNotFound):
            specs.append(schedules.get(name).spec.run_template)
    upload_ids = {
        ref.value
        for spec in specs
        for ref in spec.input_refs().values()
        if ref.kind is InputKind.UPLOAD
    }
    digests: set[str] = set()
    for upload_id in upload_ids:
        manifest = ctx.store.uploads.get(upload_id)
        if manifest is not None:
            digests |= {entry.sha256 for entry in manifest.files}
    return upload_ids, digests


def reap_uploads(ctx: StepContext, report: ReapReport) -> None:
    """Uploads, and their contents on the share, unused for ORCH_UPLOAD_RETENTION
    and named by no live run or schedule (a queued run's upload stays)."""
    retention = ctx.settings.upload_retention_seconds
    if retention is None:
        return
    before = ctx.clock() - retention
    book = ctx.store.uploads
    stale_uploads, stale_contents = book.unused_since(before)
    if not stale_uploads and not stale_contents:
        return
    used_uploads, used_contents = _uploads_in_use(ctx)
    for upload_id in stale_uploads:
        if upload_id not in used_uploads:
            book.forget_upload(upload_id)
            report.deleted_uploads.append(upload_id)
    share = ctx.settings.azure_file_share
    for digest in stale_contents:
        if digest in used_contents or not book.unused_since_check(digest, before):
            continue
        delete = partial(ctx.gateway.delete_file, share, upload_blob_path(digest))
        if _delete("upload", digest, None, delete):
            book.forget_blob(digest, before)
            report.deleted_contents.append(digest)


def reap_outputs(ctx: StepContext, report: ReapReport) -> None:
    """The share's copy of the outputs of runs ended ORCH_OUTPUT_RETENTION ago."""
    retention = ctx.settings.output_retention_seconds
    if retention is None:
        return
    before = ctx.clock() - retention
    for status in TERMINAL:
        cursor: str | None = None
        while True:
            page, cursor = ctx.store.list_runs(status=status, limit=200, cursor=cursor)
            for record in page:
                if record.outputs_expired or (record.finished_at or before) > before:
                    continue
                names = ctx.names(record)
                # The run's share holds nothing else by now (cleanup took its
                # inputs); a trial's share is its sweep's: only its own files go.
                delete: Callable[[], object] = partial(ctx.gateway.delete_share, names.run_share)
                if record.sweep_id is not None:
                    delete = partial(_delete_output_files, ctx, record)
                if _delete("outputs", names.run_share, record.run_id, delete):
                    ctx.store.update(record.run_id, _mark_outputs_expired)
                    report.expired_outputs.append(record.run_id)
            if cursor is None:
                break


def _delete_output_files(ctx: StepContext, record: RunRecord) -> None:
    for stored in record.output_files.values():
        if stored.share and stored.share_path:
            ctx.gateway.delete_file(stored.share, stored.share_path)


def _mark_outputs_expired(record: RunRecord) -> None:
    record.outputs_expired = True


def reap(ctx: StepContext) -> ReapReport:
    """One sweep: leaked clusters and jobs, then the share's retention."""
    report = ReapReport()
    for reap_kind in (reap_jobs, reap_clusters, reap_uploads, reap_outputs):
        try:
            reap_kind(ctx, report)
        except AzureGatewayError as exc:  # listing failed: the next sweep tries again
            get_logger(component="reaper").warning(
                "reap_resources_failed", kind=reap_kind.__name__, error=str(exc)
            )
    return report
