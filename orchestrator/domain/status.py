"""Run lifecycle: the user-facing status, the internal steps, and the legal
transitions between statuses, written down as data (the store enforces them
with compare-and-set)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """What a user sees. Internal progress lives in Step/StepState."""

    QUEUED = "queued"  # accepted and enqueued; no cloud resource touched yet
    PROVISIONING = "provisioning"  # resource group, share, upload, cluster, waiting for nodes
    RUNNING = "running"  # the training job is submitted or executing
    COLLECTING = "collecting"  # the job ended well; outputs and metrics are being fetched
    SUCCEEDED = "succeeded"  # terminal: outputs collected and cloud resources cleaned up
    FAILED = "failed"  # terminal: see FailureReason; cloud resources cleaned up
    CANCELLED = "cancelled"  # terminal: cancelled by a user; job terminated, resources cleaned up


class FailureReason(StrEnum):
    """One terminal reason per kind of failure, carried by FAILED/CANCELLED runs."""

    QUOTA = "quota"  # Azure refused for lack of quota (cores, clusters)
    ALLOCATION_FAILED = (
        "allocation_failed"  # nodes never came up (allocation error, unusable nodes)
    )
    JOB_FAILED = "job_failed"  # the training process exited non-zero
    TIMEOUT = "timeout"  # waiting for nodes or for the job exceeded its limit
    AUTH = "auth"  # credentials rejected (401/403)
    INVALID_SPEC = "invalid_spec"  # the spec could not be carried out (missing input, bad field)
    CANCELLED = "cancelled"  # a user asked for it
    EARLY_TERMINATED = "early_terminated"  # a sweep's early termination policy stopped the trial
    AZURE_ERROR = "azure_error"  # a permanent Azure error, or transient ones past every retry


TERMINAL: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
)

# Legal status transitions. Anything not listed is refused by the store.
# Every non-terminal status may end in FAILED or CANCELLED, because a failure
# or a cancel can happen during any step.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.PROVISIONING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.PROVISIONING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.COLLECTING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COLLECTING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


class Step(StrEnum):
    """The eight steps of the chain, in order. Each is one Celery task."""

    ENSURE_RESOURCE_GROUP = "ensure_resource_group"  # create or adopt the resource group
    PREPARE_SHARE = "prepare_share"  # create the share, upload inputs whose MD5 differs
    CREATE_CLUSTER = "create_cluster"  # create a per-run cluster or adopt the shared one
    WAIT_FOR_NODES = "wait_for_nodes"  # until enough nodes are idle for this job
    SUBMIT_JOB = "submit_job"  # create the job in the run's experiment
    POLL_JOB = "poll_job"  # until the job succeeds or fails
    COLLECT_OUTPUTS = "collect_outputs"  # download stdout/stderr and outputs, parse metrics
    CLEANUP = "cleanup"  # delete the job and a per-run cluster; runs on every path

    @property
    def position(self) -> int:
        """0-based place in STEP_ORDER."""
        return STEP_ORDER.index(self)

    def next(self) -> Step | None:
        """The step after this one, or None after cleanup."""
        following = self.position + 1
        return STEP_ORDER[following] if following < len(STEP_ORDER) else None


STEP_ORDER: tuple[Step, ...] = tuple(Step)

# The user-facing status a run has while a step is in progress. Cleanup runs
# under whatever status the run had when it was decided to end (see the store).
STATUS_DURING_STEP: dict[Step, RunStatus] = {
    Step.ENSURE_RESOURCE_GROUP: RunStatus.PROVISIONING,
    Step.PREPARE_SHARE: RunStatus.PROVISIONING,
    Step.CREATE_CLUSTER: RunStatus.PROVISIONING,
    Step.WAIT_FOR_NODES: RunStatus.PROVISIONING,
    Step.SUBMIT_JOB: RunStatus.RUNNING,
    Step.POLL_JOB: RunStatus.RUNNING,
    Step.COLLECT_OUTPUTS: RunStatus.COLLECTING,
}


class StepState(StrEnum):
    """Internal progress of one step, recorded per run."""

    PENDING = "pending"  # not started
    RUNNING = "running"  # a task is executing it (or was, before a worker died)
    WAITING = "waiting"  # rescheduled itself with a countdown (nodes, job)
    DONE = "done"  # finished; a redelivered task skips it
    FAILED = "failed"  # ended the run (its error is on the run record)
    SKIPPED = "skipped"  # not needed on this path (e.g. collect after a failure)


class SweepStatus(StrEnum):
    """What a user sees of a sweep; its trials are runs with their own statuses."""

    QUEUED = "queued"  # accepted; nothing provisioned yet
    RUNNING = "running"  # provisioning, or trials running
    SUCCEEDED = "succeeded"  # terminal: at least one trial succeeded
    FAILED = "failed"  # terminal: every trial failed, or the failure threshold was passed
    CANCELLED = "cancelled"  # terminal: cancelled by a user, or its timeout passed


SWEEP_TERMINAL: frozenset[SweepStatus] = frozenset(
    {SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED}
)

SWEEP_TRANSITIONS: dict[SweepStatus, frozenset[SweepStatus]] = {
    SweepStatus.QUEUED: frozenset({SweepStatus.RUNNING, SweepStatus.CANCELLED}),
    SweepStatus.RUNNING: frozenset(
        {SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED}
    ),
    SweepStatus.SUCCEEDED: frozenset(),
    SweepStatus.FAILED: frozenset(),
    SweepStatus.CANCELLED: frozenset(),
}
