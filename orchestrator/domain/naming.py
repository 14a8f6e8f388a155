"""Azure names of a run, derived deterministically from its id and spec.

Deterministic names are what make every step idempotent: a redelivered task
finds the cluster or job it created before under the same name. The reaper goes
the other way, from names it finds in Azure back to run ids, so the parsers
recognise only names this module produces.

- resource group, workspace, share: from Settings (shared by all runs)
- experiment: spec.name, so runs of one name (a sweep) share an experiment
- cluster: ``orch-<run_id>`` for a per-run cluster, spec.cluster.name for a shared one,
  ``orchsweep-<sweep_id>`` for the cluster a sweep creates for its trials
- job: ``<spec.name>-<run_id>``
- sweep share: ``orch-run-<sha256("sweep:" + sweep_id)[:20]>``, the one share every
  trial of a sweep mounts instead of a share of its own: the sweep places the
  trial's inputs there once, and Batch AI writes each job's outputs under a path
  of its own (its job name and uid), so trials never collide. A trial can read
  the other trials' files: they are the same submitter's, of the same sweep
- run share: ``orch-run-<sha256(run_id)[:20]>``, a file share of the run's own,
  the only storage its job mounts: ``inputs/<INPUT_ID>`` (filled by server-side
  copies, deleted at cleanup) and ``outputs`` (the job's stdout/stderr and
  output directories). One share per run because Azure Files mounts whole
  shares: a folder of a common share cannot be mounted alone, and a job that
  mounts a common share can read and write every run's files on it
- uploads: ``uploads/sha256/<digest>`` on the configured share, one file per
  distinct content, so an unchanged file is never sent twice, whoever sends it;
  never mounted by a job
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from orchestrator.domain.ids import RUN_ID_PATTERN
from orchestrator.domain.spec import ClusterPolicy, RunSpec
from orchestrator.settings import Settings

AZURE_NAME_PATTERN = r"^[-\w_]+$"
AZURE_NAME_MAX_LENGTH = 64
CLUSTER_PREFIX = "orch-"
SWEEP_CLUSTER_PREFIX = "orchsweep-"
# The tag every trial of a sweep carries (the run index by tag finds them).
SWEEP_TAG = "sweep"
RUN_SHARE_PREFIX = "orch-run-"
UPLOAD_BLOBS = "uploads/sha256"
RUN_INPUTS = "inputs"
RUN_OUTPUTS = "outputs"

_AZURE_NAME = re.compile(AZURE_NAME_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)
_GENERATED_RUN_ID = re.compile(r"^[0-9a-f]{16}$")


def _check_azure_name(kind: str, value: str) -> None:
    if len(value) > AZURE_NAME_MAX_LENGTH or not _AZURE_NAME.fullmatch(value):
        raise ValueError(
            f"{kind} name {value!r} is not a valid Batch AI name "
            f"({AZURE_NAME_PATTERN}, at most {AZURE_NAME_MAX_LENGTH} characters)"
        )


@dataclass(frozen=True)
class AzureNames:
    resource_group: str
    workspace: str
    experiment: str
    cluster: str
    job: str
    # The configured share: uploads (and share: inputs) live there.
    share: str
    # The run's own share, the only one its job mounts.
    run_share: str
    # Directory of the run share holding the run's input folders (one per INPUT_ID).
    inputs_root: str
    # Directory of the run share under which the job writes stdout/stderr and outputs.
    output_prefix: str

    def __post_init__(self) -> None:
        for kind in ("resource_group", "workspace", "experiment", "cluster", "job", "share"):
            _check_azure_name(kind, getattr(self, kind))

    def input_dir(self, input_id: str) -> str:
        """Share-relative directory of one input (no trailing slash)."""
        return f"{self.inputs_root}/{input_id}"


def run_share_name(run_id: str) -> str:
    """A share name (3-63 lowercase letters, digits, hyphens) from any run id."""
    return RUN_SHARE_PREFIX + hashlib.sha256(run_id.encode()).hexdigest()[:20]


def sweep_share_name(sweep_id: str) -> str:
    """The share every trial of the sweep mounts (see the module docstring)."""
    return run_share_name(f"sweep:{sweep_id}")


def upload_blob_path(digest: str) -> str:
    """Share-relative path of the uploaded content whose SHA-256 is `digest`."""
    return f"{UPLOAD_BLOBS}/{digest}"


def cluster_name(run_id: str, spec: RunSpec) -> str:
    if spec.cluster.policy is ClusterPolicy.SHARED:
        assert spec.cluster.name is not None  # the spec validator guarantees it
        return spec.cluster.name
    return f"{CLUSTER_PREFIX}{run_id}"


def sweep_cluster_name(sweep_id: str) -> str:
    return f"{SWEEP_CLUSTER_PREFIX}{sweep_id}"


def parse_cluster_sweep_id(cluster: str) -> str | None:
    """The sweep id of a cluster a sweep created, else None."""
    if not cluster.startswith(SWEEP_CLUSTER_PREFIX):
        return None
    candidate = cluster[len(SWEEP_CLUSTER_PREFIX) :]
    return candidate if _RUN_ID.fullmatch(candidate) else None


def job_name(run_id: str, spec: RunSpec) -> str:
    return f"{spec.name}-{run_id}"


def azure_names(
    run_id: str, spec: RunSpec, settings: Settings, sweep_id: str | None = None
) -> AzureNames:
    """All Azure names of one run (a trial of `sweep_id`: on its sweep's share);
    ValueError if any would be invalid."""
    return AzureNames(
        resource_group=settings.azure_resource_group,
        workspace=settings.azure_workspace,
        experiment=spec.name,
        cluster=cluster_name(run_id, spec),
        job=job_name(run_id, spec),
        share=settings.azure_file_share,
        run_share=sweep_share_name(sweep_id) if sweep_id else run_share_name(run_id),
        inputs_root=RUN_INPUTS,
        output_prefix=RUN_OUTPUTS,
    )


def parse_cluster_run_id(cluster: str) -> str | None:
    """The run id of a per-run cluster this orchestrator created, else None.

    Shared clusters are not recognised: no run owns them, so none may reap them.
    """
    if not cluster.startswith(CLUSTER_PREFIX):
        return None
    candidate = cluster[len(CLUSTER_PREFIX) :]
    return candidate if _RUN_ID.fullmatch(candidate) else None


def parse_job_run_id(job: str, experiment: str | None = None) -> str | None:
    """The run id in a job name ``<spec.name>-<run_id>``, else None.

    Both parts may contain '-', so the split is only certain when the caller
    knows the experiment (= spec.name; jobs are always listed per experiment).
    Without it, only a generated id (16 hex characters) after the last '-' is
    recognised; caller-supplied ids with '-' need the experiment.
    """
    if experiment is not None:
        prefix = f"{experiment}-"
        if not job.startswith(prefix):
            return None
        candidate = job[len(prefix) :]
        return candidate if _RUN_ID.fullmatch(candidate) else None
    _, dash, candidate = job.rpartition("-")
    return candidate if dash and _GENERATED_RUN_ID.fullmatch(candidate) else None
