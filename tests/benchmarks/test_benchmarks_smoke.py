"""The benchmark scripts run end to end with tiny parameters and print their summary.

Never a speed: only that each script exits 0 and its --json summary has the
expected keys (speed lives in the benchmarks themselves, see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUN_KEYS = {
    "run_id",
    "enqueue_to_succeeded_seconds",
    "job_runtime_seconds",
    "overhead_seconds",
    "overhead_to_job_ratio",
}


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary: dict[str, Any] = json.loads(completed.stdout)
    return summary


def test_enqueue_throughput_measures_api_and_direct() -> None:
    summary = run_benchmark("enqueue_throughput.py", "--requests", "20", "--warmup", "2")
    assert {"requests", "concurrency", "api", "direct", "ratio_api_to_direct"} <= summary.keys()
    for phase in ("api", "direct"):
        assert {"requests_per_second", "latency_ms", "seconds"} <= summary[phase].keys()
        assert summary[phase]["runs_created"] == summary[phase]["first_tasks_queued"] == 20
    assert summary["api"]["statuses"] == {"202": 20}


def test_chain_overhead_sequential() -> None:
    summary = run_benchmark("chain_overhead.py", "--runs", "1", "--job-seconds", "0")
    assert summary["mode"] == "sequential"
    [run] = summary["runs"]
    assert RUN_KEYS | {"requests_by_operation", "requests_total"} <= run.keys()
    assert run["requests_by_operation"]["Jobs_Create"] == 1
    assert run["requests_total"] == sum(run["requests_by_operation"].values())


def test_chain_overhead_concurrent() -> None:
    summary = run_benchmark("chain_overhead.py", "--concurrent", "2", "--job-seconds", "0")
    assert summary["mode"] == "concurrent"
    assert len(summary["runs"]) == summary["k"] == 2
    assert summary["single_run"].keys() >= RUN_KEYS
    assert {"total_wall_seconds", "k_times_single_seconds", "ratio_total_to_k_times_single"} <= (
        summary.keys()
    )
