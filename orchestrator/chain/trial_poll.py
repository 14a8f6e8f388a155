"""What a sweep's trial reads instead of polling Azure itself: the sweep's poll
cache (one Jobs_ListByExperiment and one Clusters_Get per sweep tick,
chain/sweeps.py). A trial falls back on its own request only when the cache is
stale (the sweep's ticks stopped: no worker ran one for STALE_TICKS intervals)
or cannot answer (a job the listing should show and does not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.azure.types import JobState, NodeCounts
from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore

# The cache is trusted while younger than this many sweep intervals.
STALE_TICKS = 3.0
# A job is in a listing taken at least this long after it was created (clock
# skew between workers and Azure's own listing lag).
LISTING_LAG_SECONDS = 1.0


def fresh_snapshot(
    store: RunStore, settings: Settings, record: RunRecord, now: float
) -> dict[str, Any] | None:
    if record.sweep_id is None:
        return None
    snapshot = store.sweeps.poll(record.sweep_id)
    if snapshot is None or now - float(snapshot["at"]) > STALE_TICKS * settings.sweep_poll_seconds:
        return None
    return snapshot


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


def cached_nodes(snapshot: dict[str, Any]) -> NodeCounts | None:
    nodes = snapshot.get("nodes")
    if nodes is None:
        return None
    return NodeCounts(
        idle=int(nodes["idle"]),
        preparing=int(nodes["preparing"]),
        unusable=int(nodes["unusable"]),
        running=int(nodes["running"]),
        leaving=0,
        target=int(nodes["target"]),
        allocation_state="",
        errors=list(nodes.get("errors") or []),
    )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
