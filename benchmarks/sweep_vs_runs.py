"""A sweep against the same trials run as independent runs, side by side in one run.

Starts its own redis-server, the emulator (`--provision-seconds 0`) and two
`orchestrator worker` processes at their DEFAULT settings (nothing tuned), then:

1. a sweep of --small trials (default 10), --concurrent at once (default 10);
2. a sweep of --trials trials (default 100), --concurrent at once;
3. --trials independent runs of the same job, all submitted at once.

Every trial and run is the same job: it prints `loss=<x>` once a second for
--job-seconds seconds (default 3). Printed, for the sweeps:

- makespan (the sweep's first tick to its end) as a ratio to the ideal
  ceil(trials / concurrent) x job seconds (the goal: <= 1.15), and the same for
  the trials alone (first trial created to last trial ended: without the
  sweep's provisioning and clean-up);
- Azure reads per poll interval: the batch poll's reads (Jobs_ListByExperiment,
  Clusters_Get, and any Jobs_Get a trial made itself) divided by the sweep's
  ticks (one listing each), at --small and at --trials trials (the goal: the
  same constant); and every read the sweep made, trials' own steps included;
- total Azure requests of the big sweep against the independent runs (the
  goal: <= 1/5).

    .venv/bin/python benchmarks/sweep_vs_runs.py
    .venv/bin/python benchmarks/sweep_vs_runs.py --trials 20 --small 5 --concurrent 5 --json

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.chain.sweeps import submit_sweep
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus, SweepStatus
from orchestrator.domain.sweep import parse_sweep
from orchestrator.observability.logs import configure_logging
from orchestrator.store.sweeps import SweepRecord
from tests.support.chain_stack import Stack, wait_for

JOB_SCRIPT = """\
import argparse, time
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--seconds", type=int, default=3)
args = parser.parse_args()
for second in range(args.seconds):
    time.sleep(1)
    print(f"loss={abs(args.lr - 0.5) + 1.0 / (second + 1):.6f}", flush=True)
"""
# Requests that read (the rest create, change or delete).
READ_PREFIXES = ("Get", "List", "CheckExistence")
POLL_OPERATIONS = ("Jobs_ListByExperiment", "Clusters_Get", "Jobs_Get")
TIMEOUT_SECONDS = 1800.0


def request_counts(stack: Stack) -> Counter[str]:
    requests: dict[str, dict[str, int]] = stack.stats()["requests"]
    return Counter({op: sum(outcomes.values()) for op, outcomes in requests.items()})


def is_read(operation: str) -> bool:
    verb = operation.split("_", 1)[-1]
    return verb.startswith(READ_PREFIXES) or operation == "File_Download"


def trial_spec(stack: Stack, seconds: int) -> dict[str, Any]:
    (stack.code_dir / "job.py").write_text(JOB_SCRIPT)
    spec = stack.spec("bench", seconds=seconds).model_dump(mode="json")
    spec["job"]["script"] = "job.py"
    spec["outputs"] = []
    return spec


def run_sweep(
    stack: Stack, trial: dict[str, Any], trials: int, concurrent: int, seconds: int
) -> dict[str, Any]:
    spec = parse_sweep(
        {
            "name": f"bench{trials}",
            "trial": trial,
            "search_space": {"lr": {"type": "uniform", "min_value": 0.0, "max_value": 1.0}},
            "sampling_algorithm": "random",
            "seed": trials,
            "objective": {"primary_metric": "loss", "goal": "minimize"},
            "limits": {"max_total_trials": trials, "max_concurrent_trials": concurrent},
        }
    )
    before = request_counts(stack)
    record, _ = submit_sweep(spec, store=stack.store)

    def ended() -> SweepRecord | None:
        current = stack.store.sweeps.get(record.sweep_id)
        return current if current.terminal else None

    done = wait_for(ended, TIMEOUT_SECONDS, f"sweep of {trials} trials", interval=0.5)
    requests = request_counts(stack) - before
    if done.status is not SweepStatus.SUCCEEDED:
        raise SystemExit(f"FAILED: sweep {done.sweep_id} ended {done.status}: {done.error}")
    assert done.started_at is not None and done.finished_at is not None
    makespan = done.finished_at - done.started_at
    ideal = math.ceil(trials / concurrent) * seconds
    # The trials alone: the first trial's run created -> the last one's ended
    # (without the sweep's provisioning before, and its clean-up after).
    runs = [stack.store.get(t.run_id) for t in done.trials]
    span = max(r.finished_at or 0.0 for r in runs) - min(r.created_at for r in runs)
    intervals = requests["Jobs_ListByExperiment"]
    polling = sum(requests[op] for op in POLL_OPERATIONS)
    reads = sum(count for op, count in requests.items() if is_read(op))
    return {
        "trials": trials,
        "concurrent": concurrent,
        "succeeded": sum(t.status is RunStatus.SUCCEEDED for t in done.trials),
        "makespan_seconds": round(makespan, 3),
        "ideal_seconds": ideal,
        "makespan_to_ideal": round(makespan / ideal, 3),
        "trials_span_seconds": round(span, 3),
        "trials_span_to_ideal": round(span / ideal, 3),
        "poll_intervals": intervals,
        "polling_reads_per_interval": round(polling / intervals, 3),
        "all_reads_per_interval": round(reads / intervals, 3),
        "jobs_get": requests["Jobs_Get"],
        "requests_total": sum(requests.values()),
        "requests_by_operation": dict(sorted(requests.items())),
    }


def run_independent(stack: Stack, trial: dict[str, Any], runs: int) -> dict[str, Any]:
    before = request_counts(stack)
    started = time.time()
    spec = parse_spec(trial)
    run_ids = [stack.submit(spec.with_parameters({"lr": i / runs})) for i in range(runs)]
    records = [stack.wait_terminal(run_id, timeout=TIMEOUT_SECONDS) for run_id in run_ids]
    requests = request_counts(stack) - before
    failed = [r.run_id for r in records if r.status is not RunStatus.SUCCEEDED]
    if failed:
        raise SystemExit(f"FAILED: independent runs {failed} did not succeed")
    finished = max(r.finished_at or 0.0 for r in records)
    return {
        "runs": runs,
        "makespan_seconds": round(finished - started, 3),
        "requests_total": sum(requests.values()),
        "jobs_get": requests["Jobs_Get"],
        "requests_by_operation": dict(sorted(requests.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--small", type=int, default=10, help="trials of the small sweep")
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--job-seconds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    if min(args.trials, args.small, args.concurrent, args.job_seconds) < 1:
        parser.error("every count must be at least 1")
    if args.concurrent > min(args.trials, args.small):
        parser.error("--concurrent must be at most --small and --trials")
    configure_logging("WARNING")

    from orchestrator.devstack.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="orch-bench-sweep-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            try:
                for _ in range(2):
                    stack.start_worker(defaults=True, concurrency=2)
                trial = stack.upload(parse_spec(trial_spec(stack, args.job_seconds)))
                body = trial.model_dump(mode="json")
                small = run_sweep(stack, body, args.small, args.concurrent, args.job_seconds)
                big = run_sweep(stack, body, args.trials, args.concurrent, args.job_seconds)
                independent = run_independent(stack, body, args.trials)
            finally:
                stack.close()
    summary = {
        "job_seconds": args.job_seconds,
        "workers": "2 x --concurrency 2, default settings",
        "cpus": os.cpu_count(),
        "small_sweep": small,
        "sweep": big,
        "independent_runs": independent,
        "sweep_to_independent_requests": round(
            big["requests_total"] / independent["requests_total"], 3
        ),
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return
    for name in ("small_sweep", "sweep"):
        s = summary[name]
        print(
            f"sweep of {s['trials']:>4} trials, {s['concurrent']} at once: makespan "
            f"{s['makespan_seconds']:.1f} s = {s['makespan_to_ideal']:.2f} x ideal "
            f"({s['ideal_seconds']} s), trials alone {s['trials_span_to_ideal']:.2f} x; "
            f"polling reads per interval "
            f"{s['polling_reads_per_interval']:.2f} (all reads {s['all_reads_per_interval']:.2f}, "
            f"{s['poll_intervals']} intervals); Jobs_Get {s['jobs_get']}; "
            f"{s['requests_total']} requests"
        )
    i = summary["independent_runs"]
    print(
        f"{i['runs']} independent runs: {i['requests_total']} requests, makespan "
        f"{i['makespan_seconds']:.1f} s; sweep / independent requests = "
        f"{summary['sweep_to_independent_requests']:.3f}"
    )


if __name__ == "__main__":
    main()
