"""What a sweep's trial reads instead of polling Azure itself: the sweep's poll
cache (one Jobs_ListByExperiment per sweep tick, chain/sweeps.py). A trial
falls back on its own request only when the cache is stale (the sweep has
ended, or its ticks stopped: no worker runs them) or cannot answer (a job the
listing should show and does not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.azure.types import JobState
from orchestrator.store import RunRecord, RunStore

# The cache is trusted while the sweep's next tick is overdue by less than this:
# its ticks still come, so what the cache lacks comes with the next one. An old
# entry only delays a trial: a job's ended state, once listed, never changes.
STALE_SECONDS = 10.0
# A job is in a listing taken at least this long after it was created (clock
# skew between workers and Azure's own listing lag).
LISTING_LAG_SECONDS = 1.0


def fresh_snapshot(store: RunStore, record: RunRecord, now: float) -> dict[str, Any] | None:
    if record.sweep_id is None:
        return None
    due = store.sweeps.due_at(record.sweep_id)
    if due is None or due < now - STALE_SECONDS:
        return None  # the sweep has ended, or no worker ticks it: ask Azure
    return store.sweeps.poll(record.sweep_id)


def cached_job_state(
    snapshot: dict[str, Any], job: str, submitted_at: float | None
) -> JobState | None:
    """The job's state as the sweep last listed it; `queued` when the listing
    predates the job; None when the listing should show the job and does not."""
    found = snapshot["jobs"].get(job)
    if found is None:
        listed_at = float(snapshot["at"])
        if submitted_at is not None and listed_at < submitted_at + LISTING_LAG_SECONDS:
            return JobState("queued", None, [], None, None)
        return None
    return JobState(
        execution_state=str(found["execution_state"]),
        exit_code=found.get("exit_code"),
        errors=list(found.get("errors") or []),
        start_time=_time(found.get("start_time")),
        end_time=_time(found.get("end_time")),
    )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
