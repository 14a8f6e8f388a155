# Over 400 lines (about 410): the eight steps, one function each, plus the
# collection of the job's logs that two of them share.
"""The eight steps of a run, one function each: `(ctx, run_id) -> StepOutcome`.

Step functions hold the logic and know nothing of Celery: they read the run
record, call the gateway (idempotent, adopting), write what they learnt to the
store, and say what should happen next:

- Done(detail)      the step is finished; the chain moves to the next step
- Wait(detail)      not yet (nodes preparing, job running); run this step again
                    after the adaptive poll interval (poll_countdown).
- Fail(reason, ..)  the run cannot succeed; its ending is decided and cleanup runs

Classified gateway errors propagate: PermanentAzureError is turned into a Fail
by the chain runner, TransientAzureError into a Celery retry by workers/policy.
Bookkeeping shared by every step (status transitions, dedupe, cancel, step
states) lives in orchestrator/chain/runner.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.artifacts import RunArtifacts
from orchestrator.azure.errors import AzureGatewayError, PermanentAzureError
from orchestrator.azure.gateway import Gateway
from orchestrator.azure.job_params import STDOUTERR_OUTPUT_ID
from orchestrator.azure.types import JobState, OutputFile
from orchestrator.chain.trial_poll import cached_job_state, fresh_snapshot
from orchestrator.domain.naming import AzureNames, azure_names
from orchestrator.domain.spec import ClusterPolicy
from orchestrator.domain.status import FailureReason, RunStatus, Step, StepState
from orchestrator.domain.sweep import TRIAL_TAG
from orchestrator.inputs.placement import InputPlacer, InputProblem
from orchestrator.observability.logs import get_logger, redact_text
from orchestrator.observability.training_metrics import parse_metrics
from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore, StoredOutput


@dataclass(frozen=True)
class Done:
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait:
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fail:
    reason: FailureReason
    error: str


StepOutcome = Done | Wait | Fail


@dataclass
class StepContext:
    settings: Settings
    store: RunStore
    gateway: Gateway
    clock: Callable[[], float] = time.time
    # Called after a step's Azure work and before its outcome is recorded, the
    # worst moment for a worker to die. Production installs nothing; the test
    # worker (tests/support/held_worker.py) holds there so a test can SIGKILL it.
    after_step_work: Callable[[StepContext, Step, str], None] | None = None

    def names(self, record: RunRecord) -> AzureNames:
        return azure_names(record.run_id, record.spec, self.settings, record.sweep_id)


def safe_countdown(settings: Settings, seconds: float) -> float:
    """`seconds`, but at most half the broker's visibility timeout: a message
    waiting out a longer countdown would be redelivered to another worker while
    still waiting. Every countdown the chain sends goes through this."""
    return min(seconds, settings.visibility_timeout_seconds / 2)


def poll_countdown(
    settings: Settings, polls: int, poll_by: float | None = None, now: float = 0.0
) -> float:
    """Short at first, growing by poll_backoff up to poll_max (and safe_countdown).

    At the defaults (1 s, x1.5, 120 s) the waits are about half the time waited
    so far until 120 s: the polling budget of benchmarks/poll_budget.py. A step
    that expects its wait to end at `poll_by` (a clock time still ahead of
    `now`) polls then rather than later: one read more at most."""
    try:
        countdown = settings.poll_initial_seconds * settings.poll_backoff ** max(0, polls)
    except OverflowError:  # thousands of polls: long past the maximum
        countdown = settings.poll_max_seconds
    countdown = min(countdown, settings.poll_max_seconds)
    if poll_by is not None and poll_by > now:
        countdown = min(countdown, max(poll_by - now, settings.poll_initial_seconds))
    return safe_countdown(settings, countdown)


# The hint poll comes this long after a job's expected end (plus 2% of its runtime).
EXPECTED_END_MARGIN_SECONDS = 1.0


def _expected_end(
    ctx: StepContext, record: RunRecord, job: JobState, since: float
) -> dict[str, Any]:
    """poll_job's hint: when the job should end, from the runtimes of earlier runs
    of the same name (store/runtimes.py), read at the first poll and kept."""
    previous = record.step(Step.POLL_JOB).detail
    typical = (
        previous["typical_runtime_seconds"]
        if "typical_runtime_seconds" in previous
        else ctx.store.runtimes.typical(record.spec.name)
    )
    hint: dict[str, Any] = {"typical_runtime_seconds": typical}
    if typical is not None:
        started = job.start_time.timestamp() if job.start_time is not None else since
        margin = EXPECTED_END_MARGIN_SECONDS + 0.02 * float(typical)
        hint["poll_by"] = started + float(typical) + margin
    return hint


# A failed job's error quotes the end of its stderr, bounded so the record and
# a `status` line stay small: the last lines, then the last characters of those.
STDERR_TAIL_LINES = 5
STDERR_TAIL_CHARS = 1000
# Bytes read from the end of stderr to find those lines.
_STDERR_TAIL_READ = 16 * 1024


def _waiting_since(ctx: StepContext, record: RunRecord, step: Step) -> float:
    """When this step first started waiting, by ctx.clock (kept in the step's detail)."""
    since = record.step(step).detail.get("since")
    return float(since) if since is not None else ctx.clock()


# ------------------------------------------------------------------ steps
def ensure_resource_group(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    # A sweep's trial: the sweep ensured both before it enqueued the trial.
    ready = record.sweep_id is not None
    if not ready:
        ctx.gateway.ensure_resource_group(names.resource_group)
        ready = ctx.gateway.ensure_workspace(names.resource_group, names.workspace)
    ctx.store.update(
        run_id,
        lambda r: r.resources.update(
            resource_group=names.resource_group, workspace=names.workspace
        ),
    )
    if not ready:
        return Wait()
    return Done({"by_sweep": record.sweep_id} if record.sweep_id else {})


def prepare_share(ctx: StepContext, run_id: str) -> StepOutcome:
    """Place every input where the job reads it (orchestrator/inputs/placement.py)."""
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    if record.sweep_id is not None:
        return _inputs_of_sweep(ctx, record, names)
    placer = InputPlacer(ctx.gateway, ctx.store.uploads, names, ctx.settings.input_roots)
    try:
        placed = placer.place_all(record.spec.input_refs())
    except InputProblem as exc:
        return Fail(FailureReason.INVALID_SPEC, str(exc))

    def note(r: RunRecord) -> None:
        r.resources.update(share=names.share)
        r.inputs = dict(placed.inputs)

    ctx.store.update(run_id, note)
    return Done(
        {
            "copied": placed.copied,
            "uploaded": placed.uploaded,
            "skipped": placed.skipped,
            "uploaded_bytes": placed.uploaded_bytes,
        }
    )


def _inputs_of_sweep(ctx: StepContext, record: RunRecord, names: AzureNames) -> StepOutcome:
    """A trial's inputs were placed once for its whole sweep, on the sweep's share."""
    assert record.sweep_id is not None
    placed = ctx.store.sweeps.get(record.sweep_id).inputs

    def note(r: RunRecord) -> None:
        r.resources.update(share=names.run_share)
        r.inputs = dict(placed)

    ctx.store.update(record.run_id, note)
    return Done({"by_sweep": record.sweep_id})


def create_cluster(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    shared = record.spec.cluster.policy is ClusterPolicy.SHARED
    if record.sweep_id is not None:
        adopted, detail = True, {"by_sweep": record.sweep_id}  # the sweep's cluster
    else:
        adopted, detail = ctx.gateway.ensure_cluster(names, record.spec), {}
    ctx.store.update(run_id, lambda r: r.resources.update(cluster=names.cluster))
    return Done({"adopted": adopted, "shared": shared, **detail})


def _job_state(ctx: StepContext, record: RunRecord, names: AzureNames) -> JobState:
    snapshot = fresh_snapshot(ctx.store, record, ctx.clock())
    if snapshot is not None:
        submitted = record.step(Step.SUBMIT_JOB).finished_at
        cached = cached_job_state(snapshot, names.job, submitted)
        if cached is not None:
            return cached
    return ctx.gateway.get_job(names)


def _wait_for_slot(ctx: StepContext, record: RunRecord) -> StepOutcome:
    """A trial waits for a slot of its sweep instead: at most max_concurrent_trials
    trials hold one, in index order, each until it has ended (a trial that ends
    passes its slot on and brings the next one's wait forward: chain/sweeps.py).
    Batch AI queues the job until a node of the sweep's cluster is idle."""
    assert record.sweep_id is not None
    since = _waiting_since(ctx, record, Step.WAIT_FOR_NODES)
    index = int(record.spec.tags.get(TRIAL_TAG, "0"))
    if ctx.store.sweeps.take_slot(record.sweep_id, record.run_id, index):
        return Done({"since": since, "slot_of": record.sweep_id})
    return Wait({"since": since, "waiting_for": f"a slot of sweep {record.sweep_id}"})


def wait_for_nodes(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    if record.sweep_id is not None:
        return _wait_for_slot(ctx, record)
    names = ctx.names(record)
    needed = record.spec.cluster.node_count
    nodes = ctx.gateway.get_cluster_nodes(names)
    since = _waiting_since(ctx, record, Step.WAIT_FOR_NODES)
    detail = {
        "since": since,
        "idle": nodes.idle,
        "preparing": nodes.preparing,
        "unusable": nodes.unusable,
        "running": nodes.running,
    }
    if nodes.idle >= needed:
        return Done(detail)
    if nodes.errors:
        return Fail(
            FailureReason.ALLOCATION_FAILED,
            f"cluster {names.cluster} could not allocate nodes: " + "; ".join(nodes.errors),
        )
    usable_possible = nodes.target - nodes.unusable
    if nodes.target > 0 and nodes.unusable > 0 and usable_possible < needed:
        return Fail(
            FailureReason.ALLOCATION_FAILED,
            f"cluster {names.cluster}: {nodes.unusable} of {nodes.target} nodes are unusable; "
            f"the job needs {needed}",
        )
    if ctx.clock() - since > ctx.settings.node_wait_timeout_seconds:
        return Fail(
            FailureReason.TIMEOUT,
            f"{needed} idle node(s) not available after "
            f"{ctx.settings.node_wait_timeout_seconds:.0f}s ({nodes.idle} idle)",
        )
    return Wait(detail=detail)


def submit_job(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    # A sweep's trial: the sweep ensured the experiment before enqueueing it.
    if record.sweep_id is None and not ctx.gateway.ensure_experiment(
        names.resource_group, names.workspace, names.experiment
    ):
        return Wait()
    adopted = ctx.gateway.create_job(names, record.spec, known_absent=_job_known_absent(record))
    ctx.store.update(
        run_id, lambda r: r.resources.update(experiment=names.experiment, job=names.job)
    )
    return Done({"adopted": adopted})


def _job_known_absent(record: RunRecord) -> bool:
    """A trial's first attempt at submitting: no earlier attempt could have made
    its job, so the read that looks for one is skipped (its sweep's batch poll
    keeps a sweep's Azure reads constant; a retried submit still looks)."""
    return record.sweep_id is not None and record.step(Step.SUBMIT_JOB).attempts <= 1


def poll_job(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    job = _job_state(ctx, record, names)
    since = _waiting_since(ctx, record, Step.POLL_JOB)
    previous = record.step(Step.POLL_JOB).detail
    # running -> queued: a lowpriority node was preempted and Batch AI requeued
    # the job; it will run again, so keep waiting (and count it, to be seen).
    requeues = int(previous.get("requeues", 0))
    if previous.get("execution_state") == "running" and job.execution_state == "queued":
        requeues += 1
    detail: dict[str, Any] = {
        "execution_state": job.execution_state,
        "since": since,
        "requeues": requeues,
    }
    if job.runtime_seconds is not None:
        detail["job_runtime_seconds"] = job.runtime_seconds
    if job.execution_state == "succeeded":
        if job.runtime_seconds is not None:
            ctx.store.runtimes.record(record.spec.name, job.runtime_seconds)
        return Done(detail)
    if job.execution_state == "failed":
        problems = "; ".join(job.errors)
        message = f"job {names.job} failed with exit code {job.exit_code}" + (
            f": {problems}" if problems else ""
        )
        return Fail(FailureReason.JOB_FAILED, _failed_job_error(ctx, record, message))
    if ctx.clock() - since > ctx.settings.job_timeout_seconds:
        ctx.gateway.terminate_job(names)
        return Fail(
            FailureReason.TIMEOUT,
            f"job {names.job} still {job.execution_state} after "
            f"{ctx.settings.job_timeout_seconds:.0f}s; terminated",
        )
    return Wait(detail={**detail, **_expected_end(ctx, record, job, since)})


@dataclass
class Collected:
    """Files collected from the job: artifact path -> where it lies on the share.

    Bounded per run (ORCH_OUTPUT_MAX_FILES, ORCH_OUTPUT_MAX_BYTES by the apparent
    size the listing gives, so a sparse file counts in full): past either, what
    fits is kept and `truncated` is set, so no job can fill the worker's disk or
    grow the record without bound."""

    max_files: int
    max_bytes: int
    share: str  # the run's own share, where the job wrote them
    files: dict[str, StoredOutput] = field(default_factory=dict)
    downloaded_bytes: int = 0
    truncated: bool = False

    @classmethod
    def bounded_by(cls, settings: Settings, names: AzureNames) -> Collected:
        return cls(
            max_files=settings.output_max_files,
            max_bytes=settings.output_max_bytes,
            share=names.run_share,
        )

    def add(self, ctx: StepContext, item: OutputFile, dest: Path, root: Path) -> None:
        assert item.download_url is not None
        announced = item.size or 0
        if len(self.files) >= self.max_files or self.downloaded_bytes + announced > self.max_bytes:
            self.truncated = True
            return
        size = ctx.gateway.download(item.download_url, dest)
        self.downloaded_bytes += size
        relative = dest.relative_to(root).as_posix()
        # Without a share path (not on a share mount) it is the worker's copy only.
        self.files[relative] = StoredOutput(
            share_path=item.share_path or "", size=size, share=self.share
        )


def collect_job_logs(ctx: StepContext, record: RunRecord) -> Collected:
    """Download the job's stdout/stderr into the run's artifacts; idempotent
    (a second call downloads the same files over themselves)."""
    names = ctx.names(record)
    artifacts = RunArtifacts.of(ctx.settings.artifacts_dir, record.run_id)
    collected = Collected.bounded_by(ctx.settings, names)
    for item in ctx.gateway.list_output_files(names, STDOUTERR_OUTPUT_ID):
        if item.is_directory or not item.download_url:
            continue
        dest = artifacts.root / RunArtifacts.safe_relative(item.name)
        collected.add(ctx, item, dest, artifacts.root)
    return collected


def _add_outputs(ctx: StepContext, run_id: str, collected: Collected) -> None:
    def add(r: RunRecord) -> None:
        r.outputs = sorted(set(r.outputs) | set(collected.files))
        r.output_files = {**r.output_files, **collected.files}

    ctx.store.update(run_id, add)


def stderr_tail(path: Path) -> str:
    """The last non-blank lines of a collected stderr, as one redacted line
    ("" when the file is missing or blank)."""
    if not path.is_file():
        return ""
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - _STDERR_TAIL_READ))
        text = log.read().decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-STDERR_TAIL_LINES:])
    if len(tail) > STDERR_TAIL_CHARS:
        tail = "…" + tail[-(STDERR_TAIL_CHARS - 1) :]
    return redact_text(tail)


def _failed_job_error(ctx: StepContext, record: RunRecord, message: str) -> str:
    """`message`, followed by the end of the job's stderr when it can be read.

    The logs are collected here, while the job still exists: cleanup deletes
    it, and the cause of a failure is usually the last thing on stderr. Best
    effort: a failure to read the logs must not hide the job's own failure
    (cleanup tries the collection again).
    """
    try:
        collected = collect_job_logs(ctx, record)
    except AzureGatewayError as exc:
        get_logger(run_id=record.run_id).warning("job_logs_not_collected", error=str(exc))
        return message
    _add_outputs(ctx, record.run_id, collected)
    artifacts = RunArtifacts.of(ctx.settings.artifacts_dir, record.run_id)
    tail = stderr_tail(artifacts.log("stderr"))
    return f"{message}; stderr: {tail}" if tail else message


def collect_outputs(ctx: StepContext, run_id: str) -> StepOutcome:
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    artifacts = RunArtifacts.of(ctx.settings.artifacts_dir, run_id)
    collected = collect_job_logs(ctx, record)
    targets = [(output_id, artifacts.output_dir(output_id)) for output_id in record.spec.outputs]
    for output_id, destination in targets:
        for item in ctx.gateway.list_output_files(names, output_id):
            if item.is_directory or not item.download_url:
                continue
            dest = destination / RunArtifacts.safe_relative(item.name)
            collected.add(ctx, item, dest, artifacts.root)
    stdout = artifacts.log("stdout")
    parsed = parse_metrics(stdout.read_text(errors="replace")) if stdout.exists() else None

    def record_outputs(r: RunRecord) -> None:
        r.outputs = sorted(collected.files)
        r.output_files = dict(collected.files)
        r.outputs_truncated = collected.truncated
        if parsed is not None:
            r.metrics_truncated = parsed.truncated
            r.metrics = dict(parsed.values)
            r.metric_series = {k: list(v) for k, v in parsed.series.items()}

    ctx.store.update(run_id, record_outputs)
    detail = {"files": len(collected.files), "downloaded_bytes": collected.downloaded_bytes}
    return Done({**detail, "truncated": collected.truncated})


def _logs_pending(record: RunRecord) -> bool:
    """A job was created and its logs were not collected yet (the run was
    cancelled or timed out, or the failed job's logs could not be read then)."""
    if "job" not in record.resources:
        return False
    if {"stdout.txt", "stderr.txt"} & set(record.outputs):
        return False  # collect_outputs, or poll_job on a failed job, has them
    return not record.step(Step.CLEANUP).detail.get("logs_collected")


def _keep_partial_metrics(ctx: StepContext, record: RunRecord) -> None:
    """A run that ended before collect_outputs (cancelled, stopped early, timed
    out) keeps the metrics its job printed until then."""
    if record.metric_series:
        return
    stdout = RunArtifacts.of(ctx.settings.artifacts_dir, record.run_id).log("stdout")
    if not stdout.is_file():
        return
    parsed = parse_metrics(stdout.read_text(errors="replace"))

    def keep(r: RunRecord) -> None:
        r.metrics = dict(parsed.values)
        r.metric_series = {k: list(v) for k, v in parsed.series.items()}
        r.metrics_truncated = parsed.truncated

    ctx.store.update(record.run_id, keep)


def cleanup(ctx: StepContext, run_id: str) -> StepOutcome:
    """Delete the job and a per-run cluster (never a shared one), then wait
    until Azure no longer lists them; the chain then ends the run."""
    record = ctx.store.get(run_id)
    names = ctx.names(record)
    gateway = ctx.gateway
    detail = record.step(Step.CLEANUP).detail
    requested: dict[str, bool] = dict(detail.get("delete_requested", {}))
    since = _waiting_since(ctx, record, Step.CLEANUP)
    if _logs_pending(record):
        # Whatever the ending, the job's stdout/stderr outlive it: collected
        # before the job (and its output listing) is deleted.
        try:
            collected = collect_job_logs(ctx, record)
        except PermanentAzureError as exc:
            # Nothing to collect from (the job is already gone): cleanup goes on.
            get_logger(run_id=run_id).warning("job_logs_not_collected", error=str(exc))
            collected = Collected.bounded_by(ctx.settings, names)
        _add_outputs(ctx, run_id, collected)
        _keep_partial_metrics(ctx, record)
        ctx.store.set_step(run_id, Step.CLEANUP, StepState.RUNNING, detail={"logs_collected": True})
    # Delete first (tolerant of "already gone"), then check: when Azure
    # deletes quickly this finishes in one pass.
    if not requested.get("job"):
        gateway.delete_job(names.resource_group, names.workspace, names.experiment, names.job)
        requested["job"] = True
    per_run = record.spec.cluster.policy is ClusterPolicy.PER_RUN
    if per_run and not requested.get("cluster"):
        gateway.delete_cluster(names.resource_group, names.workspace, names.cluster)
        requested["cluster"] = True
    # A trial's inputs are its sweep's: the sweep deletes them when it ends.
    if not requested.get("inputs") and record.sweep_id is None:
        # The run's own copies of its inputs (uploads stay, for the next run; the
        # outputs stay on the run's share until output retention).
        gateway.delete_tree(names.run_share, names.inputs_root)
        requested["inputs"] = True
    remaining: list[str] = []
    # A trial does not wait to see its job gone: its sweep checks its listing
    # for leftovers before it ends (one read for all trials, not one each).
    if record.sweep_id is None and gateway.job_exists(names):
        remaining.append("job")
    if per_run and gateway.cluster_exists(names):
        remaining.append("cluster")
    if remaining and ctx.clock() - since < ctx.settings.node_wait_timeout_seconds:
        return Wait(detail={"delete_requested": requested, "remaining": remaining, "since": since})
    # Past the deadline whatever remains is left to the reaper.
    return Done({"delete_requested": requested, "remaining": remaining})


STEP_FUNCTIONS: dict[Step, Callable[[StepContext, str], StepOutcome]] = {
    Step.ENSURE_RESOURCE_GROUP: ensure_resource_group,
    Step.PREPARE_SHARE: prepare_share,
    Step.CREATE_CLUSTER: create_cluster,
    Step.WAIT_FOR_NODES: wait_for_nodes,
    Step.SUBMIT_JOB: submit_job,
    Step.POLL_JOB: poll_job,
    Step.COLLECT_OUTPUTS: collect_outputs,
    Step.CLEANUP: cleanup,
}


def final_status(record: RunRecord) -> tuple[RunStatus, FailureReason | None, str | None]:
    """The status a run ends with after cleanup: its decided ending, else success."""
    if record.ending is not None:
        return record.ending.status, record.ending.reason, record.ending.error
    if record.status is RunStatus.COLLECTING:
        return RunStatus.SUCCEEDED, None, None
    return (
        RunStatus.FAILED,
        FailureReason.AZURE_ERROR,
        f"run reached cleanup from {record.status} without a decided ending",
    )
