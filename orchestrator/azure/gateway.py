"""The gateway: everything the chain asks of Azure, as one Protocol.

The steps, the reaper and the log reader depend on `Gateway`, never on the
SDKs; `AzureGateway` is the implementation on the real SDKs (pointed at Azure
or at the emulator), and the unit tests' fake satisfies the same Protocol.
The azure/ package is the only code that imports the Azure SDKs:

- clients.py     SDK clients from Settings; `_call` classifies what they raise
- pipeline.py    credential, bounded inline retry, per-attempt request counting
- operations.py  operation names of requests (metric labels)
- errors.py      Transient / Permanent errors and their classification
- batchai.py     ARM + Batch AI calls;  files.py  Azure Files calls
- job_params.py  the JobCreateParameters a run spec becomes
- types.py       the plain values the calls return
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from orchestrator.azure.batchai import BatchAICalls
from orchestrator.azure.files import FileCalls
from orchestrator.azure.types import AzureResource, JobState, NodeCounts, OutputFile
from orchestrator.domain.naming import AzureNames
from orchestrator.domain.spec import RunSpec


class Gateway(Protocol):
    """Idempotent Azure operations. Failures raise TransientAzureError or
    PermanentAzureError (orchestrator/azure/errors.py), never an SDK error."""

    @property
    def last_request_id(self) -> str | None:
        """x-ms-request-id of the last answered request of this thread's last call."""

    # Resource group, workspace, experiment: True once ready to use.
    def ensure_resource_group(self, name: str) -> None: ...
    def ensure_workspace(self, resource_group: str, workspace: str) -> bool: ...
    def ensure_experiment(self, resource_group: str, workspace: str, experiment: str) -> bool: ...

    # The file share.
    def ensure_share(self, share: str) -> None: ...
    def ensure_directory(self, share: str, path: str) -> None: ...
    def file_md5(self, share: str, directory: str, name: str) -> str | None: ...
    def upload_file(
        self, share: str, directory: str, name: str, local_path: Path, md5: str
    ) -> None: ...

    # Clusters: ensure_cluster is True when it adopted an existing one.
    def ensure_cluster(self, names: AzureNames, spec: RunSpec) -> bool: ...
    def cluster_exists(self, names: AzureNames) -> bool: ...
    def get_cluster_nodes(self, names: AzureNames) -> NodeCounts: ...
    def delete_cluster(self, resource_group: str, workspace: str, cluster: str) -> None: ...
    def list_clusters(self, resource_group: str, workspace: str) -> list[AzureResource]: ...

    # Jobs: create_job is True when it adopted an existing one.
    def create_job(self, names: AzureNames, spec: RunSpec) -> bool: ...
    def job_exists(self, names: AzureNames) -> bool: ...
    def get_job(self, names: AzureNames) -> JobState: ...
    def terminate_job(self, names: AzureNames) -> None: ...
    def delete_job(
        self, resource_group: str, workspace: str, experiment: str, job: str
    ) -> None: ...
    def list_job_resources(self, resource_group: str, workspace: str) -> list[AzureResource]: ...

    # A job's output files, read through their SAS download URLs.
    def list_output_files(
        self, names: AzureNames, output_id: str, directory: str = "."
    ) -> list[OutputFile]: ...
    def download(self, url: str, dest: Path) -> int: ...
    def file_size(self, url: str) -> int: ...
    def read_range(self, url: str, start: int, end: int) -> bytes: ...


class AzureGateway(BatchAICalls, FileCalls):
    """The Gateway on the Azure SDKs: Batch AI and ARM calls, and Azure Files calls."""
