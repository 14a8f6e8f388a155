"""The benchmark scripts run end to end with tiny parameters and print their summary.

Never a speed: no figure is compared with a target (speed lives in the
benchmarks themselves, see docs/benchmarks.md). But every figure must be sane:
durations and throughputs positive, ratios in (0, a generous bound] and equal to
the figures they are computed from, counts equal to what the parameters asked for.
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


def assert_close(value: float, expected: float, *, absolute: float, relative: float = 0) -> None:
    """`value` is `expected` but for the rounding of the printed figures: up to
    `absolute`, plus `relative` of it (what rounding its inputs can move it)."""
    assert abs(value - expected) <= absolute + relative * abs(expected), (value, expected)


def assert_sane_phase(phase: dict[str, Any], requests: int) -> None:
    assert phase["requests"] == requests
    assert phase["runs_created"] == phase["first_tasks_queued"] == requests
    assert phase["seconds"] > 0
    assert phase["requests_per_second"] > 0
    assert_close(
        phase["requests_per_second"],
        requests / phase["seconds"],
        absolute=0.05,  # requests/s is printed to 0.1, seconds to 0.001
        relative=0.0006 / phase["seconds"],
    )
    latency = phase["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert 0 < latency["mean"] <= latency["p99"] + 0.01
    # No request of the phase took longer than the whole phase.
    assert latency["p99"] <= phase["seconds"] * 1000 + 1


def assert_sane_run(run: dict[str, Any]) -> None:
    wall, job = run["enqueue_to_succeeded_seconds"], run["job_runtime_seconds"]
    assert wall > 0 and job >= 0
    assert run["overhead_seconds"] > 0  # enqueue, provisioning and cleanup take time
    assert_close(run["overhead_seconds"], wall - job, absolute=0.0015)  # each to 0.001 s
    if job > 0:
        assert run["overhead_to_job_ratio"] > 0
        assert_close(
            run["overhead_to_job_ratio"],
            run["overhead_seconds"] / job,
            absolute=0.0005,
            relative=0.0006 / job + 0.0006 / run["overhead_seconds"],
        )
    else:
        assert run["overhead_to_job_ratio"] is None


def test_enqueue_throughput_measures_raw_direct_and_api() -> None:
    summary = run_benchmark(
        "enqueue_throughput.py", "--requests", "20", "--warmup", "2", "--concurrency", "1,4"
    )
    assert (summary["requests"], summary["concurrencies"]) == (20, [1, 4])
    assert [level["concurrency"] for level in summary["levels"]] == [1, 4]
    for level in summary["levels"]:
        raw = level["raw"]
        assert raw["requests"] == raw["first_tasks_queued"] == 20 and raw["runs_created"] == 0
        for phase in ("api", "direct"):
            assert_sane_phase(level[phase], 20)
        assert level["api"]["statuses"] == {"202": 20}
        assert level["api"]["server_cpu_ms_per_request"] > 0
        assert level["direct"]["outcomes"] == {"created": 20}
        rates = {p: level[p]["requests_per_second"] for p in ("raw", "direct", "api")}
        # The API is a separate process, so on two cores it may even beat the
        # in-process threads; ten times faster would be a broken measurement.
        for ratio, upper, lower in (
            ("ratio_direct_to_raw", "direct", "raw"),
            ("ratio_api_to_direct", "api", "direct"),
        ):
            assert 0 < level[ratio] <= 10
            assert_close(
                level[ratio],
                rates[upper] / rates[lower],
                absolute=0.0005,
                relative=0.06 / rates[upper] + 0.06 / rates[lower],
            )


def test_chain_overhead_sequential() -> None:
    summary = run_benchmark("chain_overhead.py", "--runs", "1", "--job-seconds", "0")
    assert summary["mode"] == "sequential"
    assert summary["job_seconds"] == 0
    [run] = summary["runs"]
    assert RUN_KEYS | {"requests_by_operation", "requests_total"} <= run.keys()
    assert summary["cold"] == run
    assert "warm_median" not in summary  # one run: nothing warm to take a median of
    assert_sane_run(run)
    # One run: one job and one per-run cluster, each created and deleted once.
    operations = run["requests_by_operation"]
    for operation in ("Jobs_Create", "Jobs_Delete", "Clusters_Create", "Clusters_Delete"):
        assert operations[operation] == 1, (operation, operations)
    assert all(count > 0 for count in operations.values()), operations
    assert run["requests_total"] == sum(operations.values())


def test_chain_overhead_concurrent() -> None:
    summary = run_benchmark("chain_overhead.py", "--concurrent", "2", "--job-seconds", "0")
    assert summary["mode"] == "concurrent"
    assert (summary["k"], summary["workers"]) == (2, 2)
    assert len(summary["runs"]) == summary["k"]
    assert summary["single_run"].keys() >= RUN_KEYS
    run_ids = {run["run_id"] for run in [summary["single_run"], *summary["runs"]]}
    assert len(run_ids) == 3  # the baseline and the two concurrent runs are distinct runs
    for run in [summary["single_run"], *summary["runs"]]:
        assert run.keys() >= RUN_KEYS
        assert_sane_run(run)
    total = summary["total_wall_seconds"]
    # From the first enqueue to the last finish spans every run's own wall time.
    assert total >= max(run["enqueue_to_succeeded_seconds"] for run in summary["runs"]) - 0.002
    single = summary["single_run"]["enqueue_to_succeeded_seconds"]
    assert_close(summary["k_times_single_seconds"], 2 * single, absolute=0.0015)
    ratio = summary["ratio_total_to_k_times_single"]
    # 0.5 is perfect parallelism on two workers and 1.0 none; a loaded machine
    # may be slower still, but not four times slower than running them in turn.
    assert 0 < ratio <= 4
    k_times_single = summary["k_times_single_seconds"]
    assert_close(
        ratio,
        total / k_times_single,
        absolute=0.0005,
        relative=0.0006 / total + 0.0016 / k_times_single,
    )


def test_upload_throughput_measures_the_api_and_the_sdk() -> None:
    summary = run_benchmark("upload_throughput.py", "--files", "2", "--mib", "1", "--rounds", "1")
    assert (summary["files"], summary["mib_per_file"], summary["rounds"]) == (2, 1.0, 1)
    direct, api = summary["direct_mib_per_second"], summary["api_mib_per_second"]
    assert direct > 0 and api > 0
    # The API adds a hop; ten times faster than the SDK alone would be a broken measurement.
    assert 0 < summary["ratio_api_to_direct"] <= 10
    assert_close(
        summary["ratio_api_to_direct"],
        api / direct,
        absolute=0.001,
        relative=0.06 / api + 0.06 / direct,
    )
    assert summary["client_hash_seconds"] >= 0 and summary["resubmit_seconds"] > 0


def test_rate_limit_burst_counts_refusals_and_paces_to_the_rate() -> None:
    # A 5 s window, so that the 8 requests of the burst surely land in one window.
    summary = run_benchmark(
        "rate_limit_burst.py", "--requests", "8", "--rate", "4/5s", "--window-seconds", "5"
    )
    assert (summary["requests"], summary["rate"], summary["api_processes"]) == (8, "4/5s", 2)
    burst = summary["burst"]
    # 8 at once against 4 per window shared by both processes: 4 through, 4 refused,
    # all with a Retry-After within the window.
    assert burst["statuses"] == {"202": 4, "429": 4}
    assert burst["refused_with_retry_after"] == 4
    assert all(1 <= value <= 5 for value in burst["retry_after_values"])
    paced = summary["paced"]
    assert paced["accepted"] == 8
    assert paced["seconds"] > 0 and paced["accepted_per_second"] > 0
    assert summary["runs_in_redis"] == 4 + 8


def test_webhook_latency_delivers_one_verified_webhook_per_run() -> None:
    summary = run_benchmark("webhook_latency.py", "--runs", "3", "--wave", "3", "--workers", "1")
    assert (summary["runs"], summary["workers"], summary["wave"]) == (3, 1, 3)
    assert summary["statuses"] == {"succeeded": 3}
    assert summary["deliveries"] == 3
    latency = summary["latency_seconds"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert summary["elapsed_seconds"] > 0
