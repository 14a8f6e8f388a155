"""ARM and Batch AI calls: resource group, workspace, experiment, clusters, jobs.

Every call is idempotent: creating adopts what already exists under the same
name, deleting tolerates what is already gone, so a redelivered task can call
it again. Long-running operations are started without polling (`polling=False`)
and their progress is read back by later polls, because a Celery worker must
never sit in the SDK's own poll loop.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batchai import models as bai

from orchestrator.azure.clients import AzureClients
from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.job_params import job_parameters, mount_volumes
from orchestrator.azure.types import AzureResource, JobState, NodeCounts, OutputFile
from orchestrator.domain.naming import AzureNames
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import FailureReason
from orchestrator.observability.logs import redact_text

ADMIN_USER_NAME = "orchestrator"


class BatchAICalls(AzureClients):
    # ------------------------------------------------------ resource group
    def ensure_resource_group(self, name: str) -> None:
        with self._call():
            if self.resources.resource_groups.check_existence(name):
                return
            self.resources.resource_groups.create_or_update(
                name, {"location": self.settings.azure_location}
            )

    def ensure_workspace(self, resource_group: str, workspace: str) -> bool:
        """True when the workspace is ready to use (provisioningState succeeded)."""
        return self._ensure_provisioned(
            "workspace",
            workspace,
            lambda: self.batchai.workspaces.get(resource_group, workspace),
            lambda: self.batchai.workspaces.begin_create(
                resource_group,
                workspace,
                bai.WorkspaceCreateParameters(location=self.settings.azure_location),
                polling=False,
            ),
        )

    def ensure_experiment(self, resource_group: str, workspace: str, experiment: str) -> bool:
        """True when the experiment is ready to use (provisioningState succeeded)."""
        return self._ensure_provisioned(
            "experiment",
            experiment,
            lambda: self.batchai.experiments.get(resource_group, workspace, experiment),
            lambda: self.batchai.experiments.begin_create(
                resource_group, workspace, experiment, polling=False
            ),
        )

    def _ensure_provisioned(
        self, kind: str, name: str, get: Callable[[], Any], begin_create: Callable[[], Any]
    ) -> bool:
        """Adopt the resource `get` finds, else start creating it (polling=False);
        True once its provisioningState is succeeded, False while it is not yet."""
        with self._call():
            try:
                return _provisioned(get().provisioning_state, kind, name)
            except ResourceNotFoundError:
                pass
            created = begin_create().result()
            # 200 with the resource: maybe ready now; 202: poll again later.
            return created is not None and _provisioned(created.provisioning_state, kind, name)

    # ----------------------------------------------------------- clusters
    def ensure_cluster(self, names: AzureNames, spec: RunSpec) -> bool:
        """Create the cluster unless it exists; True if it already existed (adopted)."""
        if self.cluster_exists(names):
            return True
        with self._call():
            params = bai.ClusterCreateParameters(
                vm_size=spec.cluster.vm_size,
                vm_priority=spec.cluster.vm_priority.value,
                scale_settings=bai.ScaleSettings(
                    manual=bai.ManualScaleSettings(target_node_count=spec.cluster.node_count)
                ),
                user_account_settings=bai.UserAccountSettings(
                    admin_user_name=ADMIN_USER_NAME,
                    # Nobody logs in; a random password satisfies the API.
                    admin_user_password=secrets.token_urlsafe(24),
                ),
                # No storage at the cluster level: each job mounts its run's share.
            )
            self.batchai.clusters.begin_create(
                names.resource_group, names.workspace, names.cluster, params, polling=False
            )
            return False

    def cluster_id(self, names: AzureNames) -> str:
        """ARM id of the run's cluster (built, not fetched: one request fewer)."""
        return (
            f"/subscriptions/{self._subscription()}/resourceGroups/{names.resource_group}"
            f"/providers/Microsoft.BatchAI/workspaces/{names.workspace}/clusters/{names.cluster}"
        )

    def get_cluster_nodes(self, names: AzureNames) -> NodeCounts:
        with self._call():
            try:
                cluster = self.batchai.clusters.get(
                    names.resource_group, names.workspace, names.cluster
                )
            except ResourceNotFoundError:
                raise PermanentAzureError(
                    f"cluster {names.cluster} disappeared", reason=FailureReason.AZURE_ERROR
                ) from None
        counts = cluster.node_state_counts
        target = 0
        if cluster.scale_settings and cluster.scale_settings.manual:
            target = cluster.scale_settings.manual.target_node_count or 0
        return NodeCounts(
            idle=(counts.idle_node_count or 0) if counts else 0,
            preparing=(counts.preparing_node_count or 0) if counts else 0,
            unusable=(counts.unusable_node_count or 0) if counts else 0,
            running=(counts.running_node_count or 0) if counts else 0,
            leaving=(counts.leaving_node_count or 0) if counts else 0,
            target=target,
            allocation_state=str(cluster.allocation_state or ""),
            errors=_errors(cluster.errors),
        )

    def delete_cluster(self, resource_group: str, workspace: str, cluster: str) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.clusters.begin_delete(resource_group, workspace, cluster, polling=False)

    def list_clusters(self, resource_group: str, workspace: str) -> list[AzureResource]:
        with self._call():
            try:
                return [
                    AzureResource(name=c.name or "", created=c.creation_time)
                    for c in _items(
                        self.batchai.clusters.list_by_workspace(resource_group, workspace)
                    )
                ]
            except ResourceNotFoundError:
                return []

    # --------------------------------------------------------------- jobs
    def create_job(self, names: AzureNames, spec: RunSpec, *, known_absent: bool = False) -> bool:
        """Create the job unless it exists; True if it already existed (adopted).
        `known_absent`: the caller knows no job of this name exists (no read first)."""
        if not known_absent and self.job_exists(names):
            return True
        with self._call():
            mounts = mount_volumes(
                self.files.account_name, self.files.account_key, self.share_url(names.run_share)
            )
            params = job_parameters(names, spec, cluster_id=self.cluster_id(names), mounts=mounts)
            self.batchai.jobs.begin_create(
                names.resource_group,
                names.workspace,
                names.experiment,
                names.job,
                params,
                polling=False,
            )
            return False

    def get_job(self, names: AzureNames) -> JobState:
        with self._call():
            try:
                job = self.batchai.jobs.get(
                    names.resource_group, names.workspace, names.experiment, names.job
                )
            except ResourceNotFoundError:
                raise PermanentAzureError(
                    f"job {names.job} disappeared", reason=FailureReason.AZURE_ERROR
                ) from None
        return _job_state(job)

    def list_jobs(
        self, resource_group: str, workspace: str, experiment: str
    ) -> dict[str, JobState]:
        """Every job of one experiment and its state, in one listing call
        (a sweep's batch poll: one read per interval whatever the number of trials)."""
        with self._call():
            try:
                jobs = _items(
                    self.batchai.jobs.list_by_experiment(resource_group, workspace, experiment)
                )
            except ResourceNotFoundError:
                return {}
        return {job.name or "": _job_state(job) for job in jobs}

    def list_job_resources(self, resource_group: str, workspace: str) -> list[AzureResource]:
        """Every job of every experiment in the workspace (for the reaper)."""
        found: list[AzureResource] = []
        with self._call():
            try:
                experiments = _items(
                    self.batchai.experiments.list_by_workspace(resource_group, workspace)
                )
            except ResourceNotFoundError:
                return []
            for experiment in experiments:
                name = experiment.name or ""
                try:
                    jobs = _items(
                        self.batchai.jobs.list_by_experiment(resource_group, workspace, name)
                    )
                except ResourceNotFoundError:
                    continue
                found += [
                    AzureResource(name=j.name or "", created=j.creation_time, experiment=name)
                    for j in jobs
                ]
        return found

    def terminate_job(self, names: AzureNames) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.jobs.begin_terminate(
                names.resource_group, names.workspace, names.experiment, names.job, polling=False
            )

    def delete_job(self, resource_group: str, workspace: str, experiment: str, job: str) -> None:
        with self._call(), suppress(ResourceNotFoundError):  # already gone
            self.batchai.jobs.begin_delete(
                resource_group, workspace, experiment, job, polling=False
            )

    def job_exists(self, names: AzureNames) -> bool:
        with self._call():
            try:
                self.batchai.jobs.get(
                    names.resource_group, names.workspace, names.experiment, names.job
                )
                return True
            except ResourceNotFoundError:
                return False

    def cluster_exists(self, names: AzureNames) -> bool:
        with self._call():
            try:
                self.batchai.clusters.get(names.resource_group, names.workspace, names.cluster)
                return True
            except ResourceNotFoundError:
                return False

    def list_output_files(
        self, names: AzureNames, output_id: str, directory: str = "."
    ) -> list[OutputFile]:
        """Files of one output directory (recursively), names relative to it."""
        found: list[OutputFile] = []
        pending = [directory]
        with self._call():
            while pending:
                current = pending.pop()
                listing = _items(
                    self.batchai.jobs.list_output_files(
                        names.resource_group,
                        names.workspace,
                        names.experiment,
                        names.job,
                        bai.JobsListOutputFilesOptions(
                            outputdirectoryid=output_id, directory=current, linkexpiryinminutes=60
                        ),
                    )
                )
                for item in listing:
                    relative = item.name or ""
                    if current not in (".", ""):
                        base = current.strip("/")
                        relative = (
                            relative if relative.startswith(base + "/") else f"{base}/{relative}"
                        )
                    is_dir = str(item.file_type or "").lower() == "directory"
                    if is_dir:
                        pending.append(relative)
                    url = item.download_url
                    share = names.run_share
                    props = getattr(item, "properties", None)
                    size = getattr(props, "content_length", None)
                    found.append(
                        OutputFile(
                            relative,
                            url,
                            is_dir,
                            size=int(size) if size is not None else None,
                            share_path=_share_path_of_url(share, url) if url else None,
                        )
                    )
        return found


def _share_path_of_url(share: str, url: str) -> str | None:
    """The share-relative path a download URL of `share` names, else None."""
    path = unquote(urlsplit(url).path)
    marker = f"/{share}/"
    at = path.find(marker)
    return path[at + len(marker) :] if at >= 0 else None


def _errors(items: list[bai.BatchAIError] | None) -> list[str]:
    return [redact_text(f"{e.code}: {e.message}") for e in items or []]


def _items(paged: Any) -> list[Any]:
    """The SDK's list methods are annotated as paging *ListResult; they yield items."""
    return list(paged)


def _provisioned(state: Any, kind: str, name: str) -> bool:
    value = str(state or "succeeded").lower()
    if value == "failed":
        raise PermanentAzureError(
            f"{kind} {name} failed to provision", reason=FailureReason.AZURE_ERROR
        )
    return value == "succeeded"


def _job_state(job: bai.Job) -> JobState:
    info = job.execution_info
    return JobState(
        execution_state=str(job.execution_state or "queued").lower(),
        exit_code=info.exit_code if info else None,
        errors=_errors(info.errors if info else None),
        start_time=info.start_time if info else None,
        end_time=info.end_time if info else None,
    )
