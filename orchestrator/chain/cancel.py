"""Cancelling a run: flag it; the chain acts at its next step boundary or poll
(a waiting step's message is brought forward, so that comes at once).

A run still queued has touched no per-run cloud resource, so it is ended
right away (its first task then finds it terminal and does nothing). A running
one is only flagged: the chain terminates its job, cleans up and ends it
cancelled, so nothing is left behind. A run that has already ended cannot be
cancelled: the CLI and the API both refuse it with RunAlreadyEnded.
"""

from __future__ import annotations

import time

from orchestrator.chain import webhooks
from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, StepState
from orchestrator.store import IllegalTransition, RunRecord, RunStore, StoreError

CANCEL_ERROR = "cancelled by request"


class RunAlreadyEnded(StoreError):
    def __init__(self, run_id: str, status: RunStatus) -> None:
        super().__init__(f"run {run_id!r} has already ended ({status.value})")
        self.run_id = run_id
        self.status = status


def cancel_run(
    store: RunStore, run_id: str, by: str | None = None, broker_url: str | None = None
) -> RunRecord:
    """Request cancellation; returns the record afterwards.

    Raises RunNotFound for an unknown run and RunAlreadyEnded for one that
    ended before this call (request_cancel never ends a run itself). A queued
    run it ends has its webhook announced on `broker_url` (the delivery is a task).
    """
    record = store.request_cancel(run_id, by=by)
    if record.terminal:
        raise RunAlreadyEnded(run_id, record.status)
    if record.status is RunStatus.QUEUED:
        store.decide_ending(run_id, RunStatus.CANCELLED, FailureReason.CANCELLED, CANCEL_ERROR)
        try:
            # Only while still queued: a first step that started meanwhile
            # leaves the cancel to the chain, which cleans up first.
            record = store.transition(
                run_id,
                RunStatus.CANCELLED,
                reason=FailureReason.CANCELLED,
                error=CANCEL_ERROR,
                expected=RunStatus.QUEUED,
            )
        except IllegalTransition:
            return store.get(run_id)
        if broker_url is not None:
            webhooks.announce(store, broker_url, record)
        return record
    hurry_waiting_step(store, record)
    return record


def hurry_waiting_step(store: RunStore, record: RunRecord) -> None:
    """Bring a waiting step's message forward to now: the chain acts on the
    cancel (or the decided ending) at once, not after a poll countdown that may
    be minutes long (ORCH_POLL_MAX_SECONDS)."""
    for step in STEP_ORDER:
        current = record.step(step)
        if current.state is StepState.WAITING and current.task_id:
            store.due.bring_forward(current.task_id, time.time())
