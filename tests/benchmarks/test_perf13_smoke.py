"""Smoke runs of the issue-13 benchmarks (poll budget, seed procedure, runs in
flight): tiny parameters, exit 0, and every figure sane and consistent with the
figures it is computed from. Never a speed."""

from __future__ import annotations

import pytest

from tests.benchmarks.test_benchmarks_smoke import assert_close, run_benchmark

pytestmark = pytest.mark.integration


def test_poll_budget_schedule_and_one_real_run() -> None:
    summary = run_benchmark("poll_budget.py", "--confirm", "2")
    schedule = summary["schedule"]
    # The defaults are the product: these are the budget's own figures.
    assert schedule["poll_max_seconds"] == 120
    assert 0 < schedule["jobs_get_1h_job"] <= 60
    assert schedule["jobs_get_1h_job"] < schedule["jobs_get_2h_job"] <= 120
    assert schedule["jobs_get_per_hour_after_first"] == 30
    for row in schedule["delays"].values():
        assert 0 <= row["p50_seconds"] <= row["p95_seconds"] <= schedule["poll_max_seconds"]
        assert_close(
            row["p50_share_of_job"], row["p50_seconds"] / row["job_seconds"], absolute=0.0002
        )
    (run,) = summary["confirm"]["runs"]
    assert run["job_seconds"] == 2 and run["polls"] >= 2
    assert 0 <= run["predicted_delay_seconds"] <= schedule["poll_max_seconds"]
    assert run["measured_delay_seconds"] > 0
    assert_close(
        run["lateness_seconds"],
        run["measured_delay_seconds"] - run["predicted_delay_seconds"],
        absolute=0.0015,
    )
    # One job creation check (404) and one Jobs_Get per poll.
    assert summary["confirm"]["jobs_get_total"] >= run["polls"]


def test_seed_procedure_side_by_side() -> None:
    summary = run_benchmark("seed_procedure.py", "--jobs", "1", "--provision-seconds", "0")
    (row,) = summary["jobs"]
    assert row["job_seconds"] == 1
    for name in ("chain", "chain_repeat", "script"):
        side = row[name]
        counts = side["requests_by_operation"]
        assert side["requests_total"] == sum(counts.values()) > 0
        assert counts["Jobs_Create"] == counts["Clusters_Create"] == 1
        assert counts["Jobs_Delete"] == counts["Clusters_Delete"] == 1
        assert side["jobs_get"] == counts["Jobs_Get"] >= 1
        assert 0 < side["arm_reads"] < side["requests_total"]
        assert side["wall_seconds"] > 1
    for key, figure in (
        ("ratio_requests_chain_to_script", "requests_total"),
        ("ratio_arm_reads_chain_to_script", "arm_reads"),
        ("ratio_wall_chain_to_script", "wall_seconds"),
    ):
        assert_close(
            row[key], row["chain"][figure] / row["script"][figure], absolute=0.0005, relative=0.01
        )
    assert_close(
        row["ratio_wall_chain_repeat_to_script"],
        row["chain_repeat"]["wall_seconds"] / row["script"]["wall_seconds"],
        absolute=0.0005,
        relative=0.01,
    )


def test_runs_in_flight_small() -> None:
    summary = run_benchmark("runs_in_flight.py", "--runs", "20", "--window", "3")
    (row,) = summary["levels"]
    assert row["runs"] == 20 and row["window_seconds"] == 3
    assert row["worker_processes"] == 2  # prefork: the main process and one child
    assert row["worker_rss_mib_max"] >= row["worker_rss_mib_before_window"] > 0
    assert row["redis_used_memory_mib"] > 0 and row["redis_memory_per_run_kib"] > 0
    assert row["polls"] >= 0 and row["worker_cpu_seconds"] >= 0
    assert_close(row["polls_per_second"], row["polls"] / 3, absolute=0.005)
    # Waiting runs are in the due index, not in the broker: at most the message of the
    # step executing is unacked, and nothing is delivered twice.
    assert row["broker_unacked_end"] <= 1
    assert row["duplicates_dropped"] == 0 and row["runs_redriven"] == 0
    assert row["due_index_end"] + row["broker_queue_length_end"] <= 20


def test_make_bench_table_quick() -> None:
    summary = run_benchmark("bench_all.py", "--quick", "--only", "poll_budget,enqueue")
    assert summary["failed"] == []
    assert set(summary["summaries"]) == {"poll_budget", "enqueue"}
    rows = summary["table"]
    assert all(len(row) == 4 for row in rows)
    assert all(row[3] in ("yes", "NO", "-") for row in rows)
    budget = next(row for row in rows if row[0].startswith("polls: Jobs_Get"))
    assert budget[3] == "yes"  # the defaults keep the budget
    levels = summary["summaries"]["enqueue"]["levels"]
    # One row per ratio per concurrency, and the c=16 goal row.
    assert sum(row[0].startswith("enqueue, 1 API worker") for row in rows) == 2 * len(levels) + 1
