"""A sweep as callers see it: the leaderboard (trials by the objective), the
best trial, and the JSON view the API, the client, the CLI and the dashboard
share."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.status import (
    RunStatus,
)
from orchestrator.domain.sweep import Goal
from orchestrator.store.sweeps import SweepRecord, TrialRecord


# ---------------------------------------------------------------- leaderboard
def leaderboard(record: SweepRecord) -> list[TrialRecord]:
    """Trials sorted by the objective: those with a value first, best first."""
    goal = record.spec.objective.goal
    sign = 1.0 if goal is Goal.MINIMIZE else -1.0
    return sorted(
        record.trials,
        key=lambda t: (t.value is None, sign * t.value if t.value is not None else 0.0, t.index),
    )


def best_trial(record: SweepRecord) -> TrialRecord | None:
    """The best succeeded trial by the objective."""
    for trial in leaderboard(record):
        if trial.status is RunStatus.SUCCEEDED and trial.value is not None:
            return trial
    return None


def trial_view(trial: TrialRecord) -> dict[str, Any]:
    return {
        "index": trial.index,
        "run_id": trial.run_id,
        "status": trial.status.value,
        "reason": trial.reason.value if trial.reason else None,
        "parameters": trial.parameters,
        "value": trial.value,
        "metrics": trial.metrics,
        "series": trial.series,
        "stopped_at_interval": trial.stopped_at_interval,
    }


def sweep_view(record: SweepRecord) -> dict[str, Any]:
    """The sweep as the API, the client and `sweep status --json` show it: status,
    counts by status, the best trial and the leaderboard (trials by the objective)."""
    best = best_trial(record)
    spec = record.spec
    return {
        "sweep_id": record.sweep_id,
        "name": spec.name,
        "status": record.status.value,
        "reason": record.reason,
        "error": record.error,
        "cancel_requested": record.cancel_requested,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "ended_at": record.finished_at,
        "objective": spec.objective.model_dump(mode="json"),
        "sampling_algorithm": spec.sampling_algorithm.value,
        "search_space": {k: v.model_dump(mode="json") for k, v in spec.search_space.items()},
        "early_termination": spec.early_termination.model_dump(mode="json")
        if spec.early_termination
        else None,
        "limits": spec.limits.model_dump(mode="json"),
        "total_trials": spec.total_trials,
        "counts": record.counts(),
        "cluster": record.resources.get("cluster"),
        "node_seconds_saved": round(record.node_seconds_saved, 3),
        "best": None
        if best is None
        else {"run_id": best.run_id, "parameters": best.parameters, "value": best.value},
        "trials": [trial_view(t) for t in leaderboard(record)],
    }
