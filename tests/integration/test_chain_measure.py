"""Figures of one run: Azure requests by operation, and orchestration overhead
(enqueue -> succeeded, minus the job's own runtime), with provision delay 0."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.status import RunStatus, Step
from orchestrator.observability.azure_stats import request_counts
from tests.support.chain_stack import Stack

pytestmark = pytest.mark.integration

# Generous bounds on a shared 2-core machine: they catch a regression such as
# a poll loop gone wild or a step waiting for nothing, not jitter.
MAX_REQUESTS_PER_RUN = 60
MAX_OVERHEAD_SECONDS = 15.0


def test_requests_per_run_and_orchestration_overhead(stack: Stack) -> None:
    stack.start_worker()
    # Warm-up run: the worker's first task pays imports and connections, and
    # the inputs are uploaded. Its figures are printed too.
    first = stack.wait_terminal(stack.submit())
    assert first.status is RunStatus.SUCCEEDED
    assert first.finished_at is not None
    first_requests = {
        operation: sum(outcomes.values())
        for operation, outcomes in sorted(stack.stats()["requests"].items())
    }
    print(
        json.dumps(
            {
                "first_run_requests_by_operation": first_requests,
                "first_run_requests_total": sum(first_requests.values()),
                "first_run_enqueue_to_succeeded_seconds": round(
                    first.finished_at - first.created_at, 3
                ),
            },
            indent=2,
        )
    )
    stack.emulator.reset(state=False)  # stats only; the shared resources stay

    record = stack.wait_terminal(stack.submit())

    assert record.status is RunStatus.SUCCEEDED
    requests = {
        operation: sum(outcomes.values())
        for operation, outcomes in sorted(stack.stats()["requests"].items())
    }
    runtime = float(record.step(Step.POLL_JOB).detail["job_runtime_seconds"])
    assert record.finished_at is not None
    total = record.finished_at - record.created_at
    overhead = total - runtime
    figures = {
        "requests_by_operation": requests,
        "requests_total": sum(requests.values()),
        "enqueue_to_succeeded_seconds": round(total, 3),
        "job_runtime_seconds": round(runtime, 3),
        "overhead_seconds": round(overhead, 3),
    }
    print(json.dumps(figures, indent=2))
    (stack.tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
    assert 0 < sum(requests.values()) <= MAX_REQUESTS_PER_RUN
    assert requests["Clusters_Create"] == requests["Jobs_Create"] == 1
    # The workers' own count (shared in Redis for /metrics) agrees with the
    # emulator's: both runs created one cluster and one job each.
    counted = request_counts(stack.client, stack.store.keys)
    for operation in ("Clusters_Create", "Jobs_Create"):
        assert sum(n for (op, _), n in counted.items() if op == operation) == 2
    assert 0 <= overhead < MAX_OVERHEAD_SECONDS
