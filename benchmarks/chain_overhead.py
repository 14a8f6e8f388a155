"""Orchestration overhead of the chain: enqueue -> succeeded vs the job's own runtime.

Starts its own redis-server (RedisServer, free port), the emulator
(`orchestrator emulator --provision-seconds 0`, EmulatorProcess) and
`orchestrator worker` subprocesses with the chain tests' short poll knobs
(tests/support/chain_stack.py: polls from 0.2 s growing to at most 1 s),
then submits tiny runs whose job sleeps --job-seconds (default 2).

Sequential mode (default): --runs N runs one after another on one worker. Per
run: wall time from enqueue (record.created_at) to succeeded
(record.finished_at), the job's own runtime (the emulator's executionInfo
start/end, recorded by poll_job), overhead = wall - job, the ratio
overhead/job, and the Azure requests the run made by operation (the emulator's
/_emulator/stats `requests`, diffed around the run). Run 1 is cold: the worker's
first task pays imports and connections, and the resource group, workspace,
experiment and input files are created; the summary gives it apart.

Concurrent mode (--concurrent K): two workers; one warm-up run, one single run
(the baseline), then K runs submitted at once. Reports their total wall time
(first enqueue -> last succeeded) and the ratio total / (K x single): 1.0
means no parallelism, 1/K perfect parallelism.

    .venv/bin/python benchmarks/chain_overhead.py --runs 5
    .venv/bin/python benchmarks/chain_overhead.py --concurrent 4 --json

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

# The chain tests' Stack is reused, not copied: `tests` is importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.status import RunStatus, Step
from orchestrator.observability.logs import configure_logging
from orchestrator.store import RunRecord
from tests.support.chain_stack import Stack

RUN_TIMEOUT_SECONDS = 120.0


def request_counts(stack: Stack) -> Counter[str]:
    """Azure requests served so far by the emulator, by operation (all outcomes)."""
    requests: dict[str, dict[str, int]] = stack.stats()["requests"]
    return Counter({op: sum(outcomes.values()) for op, outcomes in requests.items()})


def run_figures(record: RunRecord, requests: Counter[str] | None) -> dict[str, Any]:
    if record.status is not RunStatus.SUCCEEDED or record.finished_at is None:
        raise SystemExit(f"FAILED: run {record.run_id} ended {record.status.value}: {record.error}")
    wall = record.finished_at - record.created_at
    job = float(record.step(Step.POLL_JOB).detail["job_runtime_seconds"])
    figures: dict[str, Any] = {
        "run_id": record.run_id,
        "enqueue_to_succeeded_seconds": round(wall, 3),
        "job_runtime_seconds": round(job, 3),
        "overhead_seconds": round(wall - job, 3),
        "overhead_to_job_ratio": round((wall - job) / job, 3) if job > 0 else None,
    }
    if requests is not None:
        figures["requests_by_operation"] = dict(sorted(requests.items()))
        figures["requests_total"] = sum(requests.values())
    return figures


def sequential(stack: Stack, runs: int, job_seconds: float) -> dict[str, Any]:
    stack.start_worker()
    per_run: list[dict[str, Any]] = []
    for _ in range(runs):
        before = request_counts(stack)
        record = stack.wait_terminal(stack.submit(stack.spec(seconds=job_seconds)))
        after = request_counts(stack)
        per_run.append(run_figures(record, after - before))
    summary: dict[str, Any] = {"mode": "sequential", "runs": per_run, "cold": per_run[0]}
    warm = per_run[1:]
    if warm:
        summary["warm_median"] = {
            key: round(statistics.median(run[key] for run in warm), 3)
            for key in (
                "enqueue_to_succeeded_seconds",
                "job_runtime_seconds",
                "overhead_seconds",
                "overhead_to_job_ratio",
                "requests_total",
            )
        }
    return summary


def concurrent(stack: Stack, k: int, job_seconds: float) -> dict[str, Any]:
    stack.start_worker()
    stack.start_worker()
    # Warm-up: both workers boot meanwhile; shared resources and inputs are created.
    warmup = stack.wait_terminal(stack.submit(stack.spec(seconds=job_seconds)))
    run_figures(warmup, None)
    single = run_figures(stack.wait_terminal(stack.submit(stack.spec(seconds=job_seconds))), None)
    run_ids = [stack.submit(stack.spec(seconds=job_seconds)) for _ in range(k)]
    records = [stack.wait_terminal(run_id) for run_id in run_ids]
    per_run = [run_figures(record, None) for record in records]
    first_enqueue = min(record.created_at for record in records)
    last_finished = max(record.finished_at or 0.0 for record in records)
    total = last_finished - first_enqueue
    single_wall = single["enqueue_to_succeeded_seconds"]
    return {
        "mode": "concurrent",
        "workers": 2,
        "k": k,
        "single_run": single,
        "runs": per_run,
        "total_wall_seconds": round(total, 3),
        "k_times_single_seconds": round(k * single_wall, 3),
        "ratio_total_to_k_times_single": round(total / (k * single_wall), 3),
    }


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"{'run':>4} {'wall s':>8} {'job s':>7} {'overhead s':>11} "
        f"{'overhead/job':>13} {'requests':>9}"
    )
    for index, run in enumerate(summary["runs"], start=1):
        ratio = run["overhead_to_job_ratio"]
        print(
            f"{index:>4} {run['enqueue_to_succeeded_seconds']:>8.2f} "
            f"{run['job_runtime_seconds']:>7.2f} {run['overhead_seconds']:>11.2f} "
            f"{'-' if ratio is None else f'{ratio:.2f}':>13} {run.get('requests_total', '-'):>9}"
        )
    if summary["mode"] == "sequential":
        cold = summary["cold"]
        print(f"\nrequests of run 1 (cold): {cold['requests_by_operation']}")
        if len(summary["runs"]) > 1:
            print(f"requests of run 2 (warm): {summary['runs'][1]['requests_by_operation']}")
            median = summary["warm_median"]
            print(
                f"warm median: overhead/job {median['overhead_to_job_ratio']}, "
                f"overhead {median['overhead_seconds']} s, wall "
                f"{median['enqueue_to_succeeded_seconds']} s, job "
                f"{median['job_runtime_seconds']} s, {median['requests_total']:.0f} requests"
            )
    else:
        print(
            f"\n{summary['k']} runs at once on 2 workers: {summary['total_wall_seconds']:.2f} s; "
            f"{summary['k']} x single run ({summary['single_run']['enqueue_to_succeeded_seconds']}"
            f" s) = {summary['k_times_single_seconds']:.2f} s; "
            f"ratio {summary['ratio_total_to_k_times_single']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="sequential runs")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="the job's sleep")
    parser.add_argument(
        "--concurrent", type=int, default=0, metavar="K", help="K runs at once on 2 workers"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    if args.runs < 1 or args.concurrent < 0 or args.job_seconds < 0:
        parser.error("--runs must be >= 1, --concurrent and --job-seconds >= 0")
    configure_logging("WARNING")  # this process's own log lines ("run enqueued")

    with tempfile.TemporaryDirectory(prefix="orch-bench-chain-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            try:
                if args.concurrent:
                    summary = concurrent(stack, args.concurrent, args.job_seconds)
                else:
                    summary = sequential(stack, args.runs, args.job_seconds)
            finally:
                stack.close()
    summary["job_seconds"] = args.job_seconds
    summary["cpus"] = os.cpu_count()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
