"""What the store keeps per run: the record (one JSON value) and its events."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator.domain.inputs import InputKind
from orchestrator.domain.notify import NotifySpec
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import TERMINAL, FailureReason, RunStatus, Step, StepState


class StepRecord(BaseModel):
    state: StepState = StepState.PENDING
    attempts: int = 0
    task_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Ending(BaseModel):
    """The terminal outcome decided for a run, recorded before cleanup runs."""

    status: RunStatus
    reason: FailureReason | None = None
    error: str | None = None
    decided_at: float


class InputRecord(BaseModel):
    """What one input gave the run, for provenance: which data trained which model."""

    kind: InputKind
    ref: str  # the spec's value: upload:<id>, share:<path>, or the worker path
    # The upload id; for share: and worker inputs the SHA-256 of the listing seen
    # (each file's path, size and MD5), so two runs can be compared.
    digest: str
    files: int
    bytes: int
    # share: inputs: the listing the run saw (at most LISTING_LIMIT entries).
    listing: list[dict[str, Any]] = Field(default_factory=list)


class StoredOutput(BaseModel):
    """An output file where the job wrote it, on the share: the copy of record."""

    share_path: str
    size: int
    # The share it is on: the run's own (empty in records older than run shares:
    # the configured share).
    share: str = ""


class RunRecord(BaseModel):
    run_id: str
    spec: RunSpec
    status: RunStatus = RunStatus.QUEUED
    reason: FailureReason | None = None
    error: str | None = None
    current_step: Step | None = None
    steps: dict[Step, StepRecord] = Field(default_factory=dict)
    # Azure ids and names of what the run created or adopted.
    resources: dict[str, str] = Field(default_factory=dict)
    # Input id -> what prepare_share placed (kind, digest, files, bytes).
    inputs: dict[str, InputRecord] = Field(default_factory=dict)
    # Paths relative to the run's artifacts directory.
    outputs: list[str] = Field(default_factory=list)
    # The same paths -> where each lies on the share (served by the API from there).
    output_files: dict[str, StoredOutput] = Field(default_factory=dict)
    # True when collection stopped at ORCH_OUTPUT_MAX_FILES or ORCH_OUTPUT_MAX_BYTES.
    outputs_truncated: bool = False
    # True once output retention deleted the share's copy (ORCH_OUTPUT_RETENTION).
    outputs_expired: bool = False
    metrics: dict[str, float] = Field(default_factory=dict)
    metric_series: dict[str, list[float]] = Field(default_factory=dict)
    # The job printed more metrics than kept (training_metrics' bounds): some were cut.
    metrics_truncated: bool = False
    ending: Ending | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    # Who submitted the run: an API key's name, "admin" for ORCH_API_TOKEN, "cli",
    # "schedule:<name>"; None for runs recorded before keys existed.
    submitted_by: str | None = None
    # The webhook to call when the run ends (signed with submitted_by's key).
    notify: NotifySpec | None = None
    # The sweep this run is a trial of (set by the sweep only; the run's spec
    # carries the tag sweep=<id> for the index).
    sweep_id: str | None = None
    spec_fingerprint: str
    dispatched: bool = False
    created_at: float
    updated_at: float
    finished_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def step(self, step: Step) -> StepRecord:
        """The record of one step (a pending one if never touched)."""
        return self.steps.get(step) or StepRecord()


class RunEvent(BaseModel):
    id: str
    kind: str
    data: dict[str, Any]
    ts: float
