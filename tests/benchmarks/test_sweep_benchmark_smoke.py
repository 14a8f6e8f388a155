"""benchmarks/sweep_vs_runs.py end to end with tiny parameters: every figure sane
and equal to what it is computed from (no speed is compared with a target)."""

from __future__ import annotations

import pytest

from tests.benchmarks.test_benchmarks_smoke import assert_close, run_benchmark

pytestmark = pytest.mark.integration


def test_sweep_against_independent_runs() -> None:
    summary = run_benchmark(
        "sweep_vs_runs.py",
        "--trials",
        "6",
        "--small",
        "3",
        "--concurrent",
        "3",
        "--job-seconds",
        "1",
    )
    for name, trials in (("small_sweep", 3), ("sweep", 6)):
        sweep = summary[name]
        assert (sweep["trials"], sweep["succeeded"]) == (trials, trials)
        assert sweep["ideal_seconds"] == (trials // 3) * 1
        # A sweep cannot beat its ideal: its waves run one after another.
        assert sweep["makespan_to_ideal"] >= 1
        assert_close(
            sweep["makespan_to_ideal"],
            sweep["makespan_seconds"] / sweep["ideal_seconds"],
            absolute=0.002,
        )
        ops = sweep["requests_by_operation"]
        assert sweep["poll_intervals"] == ops["Jobs_ListByExperiment"] > 0
        assert sweep["jobs_get"] == ops.get("Jobs_Get", 0) == 0
        assert (ops["Jobs_Create"], ops["Jobs_Delete"]) == (trials, trials)
        assert (ops["Clusters_Create"], ops["Clusters_Delete"]) == (1, 1)
        # One listing per interval, and a cluster read now and then: never per trial.
        assert 1 <= sweep["polling_reads_per_interval"] < 3
        assert sweep["requests_total"] == sum(ops.values())
    runs = summary["independent_runs"]
    assert runs["runs"] == 6
    assert runs["requests_by_operation"]["Clusters_Create"] == 6
    assert_close(
        summary["sweep_to_independent_requests"],
        summary["sweep"]["requests_total"] / runs["requests_total"],
        absolute=0.0005,
    )
    assert 0 < summary["sweep_to_independent_requests"] < 1
