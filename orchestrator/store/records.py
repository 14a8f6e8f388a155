"""What the store keeps per run: the record (one JSON value) and its events."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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
    # Paths relative to the run's artifacts directory.
    outputs: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    metric_series: dict[str, list[float]] = Field(default_factory=dict)
    ending: Ending | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    # Who submitted the run: an API key's name, "admin" for ORCH_API_TOKEN, "cli",
    # "schedule:<name>"; None for runs recorded before keys existed.
    submitted_by: str | None = None
    # The webhook to call when the run ends (signed with submitted_by's key).
    notify: NotifySpec | None = None
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
