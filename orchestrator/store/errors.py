"""The run store's errors: every one a StoreError, so a CLI or API catches them in one place."""

from __future__ import annotations

from orchestrator.domain.status import RunStatus


class StoreError(Exception):
    """Base of the store's errors."""


class RunNotFound(StoreError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")
        self.run_id = run_id


class IllegalTransition(StoreError):
    def __init__(self, run_id: str, current: RunStatus, target: RunStatus) -> None:
        super().__init__(f"run {run_id!r} cannot go from {current} to {target}")
        self.run_id = run_id
        self.current = current
        self.target = target


class IdempotencyConflict(StoreError):
    """The idempotency key or run id is already used by a run with a different spec.

    `field` is the one in conflict: "run_id" or "Idempotency-Key".
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidCursor(StoreError, ValueError):
    """A list_runs cursor this store did not return."""


class StoreContention(StoreError):
    """A compare-and-set lost CAS_ATTEMPTS races in a row."""
