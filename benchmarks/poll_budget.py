"""The polling budget: Azure reads per job-hour and how late a job's end is noticed.

Part 1, from the schedule (no process started): the chain's own poll_countdown
at the settings in force (the defaults unless ORCH_POLL_* are set) gives the
times of poll_job's Jobs_Get after the job is created: the first at once, then
after poll_countdown(0), poll_countdown(1), ... For a job of about T seconds
(its end uniform over [0.8 T, 1.2 T], 2001 points) the delay from its end to
the first poll at or after it: p50 and p95, for 30 s, 10 min and 2 h jobs; and
the Jobs_Get a job of 1 h and 2 h costs (reads per job-hour).

Part 2, `--confirm 10,25`: real runs at every ORCH_* default (its own
redis-server, the emulator with provision delay 0, one worker), one job per
length, submitted together. Each job writes its end time (time.time()) into its
MODEL output; the run's poll_job finished_at minus that time is the measured
delay, set beside the schedule's prediction for that job (its end relative to
poll_job's first poll). Also the run's Azure requests by operation.

    .venv/bin/python benchmarks/poll_budget.py [--confirm 10,25] [--json]

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.chain.steps import poll_countdown
from orchestrator.settings import Settings

JOB_LENGTHS = {"30 s": 30.0, "10 min": 600.0, "2 h": 7200.0}
SAMPLES = 2001

# The job of the real runs: sleeps, then writes when it ended into its output.
END_SCRIPT = """\
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=0)
args = parser.parse_args()
time.sleep(args.seconds)
out = os.environ["AZ_BATCHAI_OUTPUT_MODEL"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "end.txt"), "w") as handle:
    handle.write(repr(time.time()))
"""


def poll_times(settings: Settings, horizon: float) -> list[float]:
    """Seconds after poll_job's first poll of each Jobs_Get, up to past `horizon`."""
    times = [0.0]
    polls = 0
    while times[-1] < horizon:
        times.append(times[-1] + poll_countdown(settings, polls))
        polls += 1
    return times


def noticed_after(times: list[float], end: float) -> float:
    """Delay from a job's end (seconds after the first poll) to the poll that sees it."""
    return next(t for t in times if t >= end) - end


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def schedule_figures(settings: Settings) -> dict[str, Any]:
    times = poll_times(settings, 2 * 7200.0)
    delays: dict[str, Any] = {}
    for label, length in JOB_LENGTHS.items():
        ends = [length * (0.8 + 0.4 * i / (SAMPLES - 1)) for i in range(SAMPLES)]
        found = [noticed_after(times, end) for end in ends]
        delays[label] = {
            "job_seconds": length,
            "p50_seconds": round(percentile(found, 0.50), 2),
            "p95_seconds": round(percentile(found, 0.95), 2),
            "p50_share_of_job": round(percentile(found, 0.50) / length, 4),
        }
    # A job of exactly 1 h / 2 h: the polls up to and including the one that sees its end.
    reads_1h = len([t for t in times if t < 3600.0]) + 1
    reads_2h = len([t for t in times if t < 7200.0]) + 1
    return {
        "poll_initial_seconds": settings.poll_initial_seconds,
        "poll_backoff": settings.poll_backoff,
        "poll_max_seconds": settings.poll_max_seconds,
        "jobs_get_1h_job": reads_1h,
        "jobs_get_2h_job": reads_2h,
        "jobs_get_per_hour_after_first": round(3600.0 / poll_countdown(settings, 1000), 1),
        "delays": delays,
    }


def confirm(lengths: list[float]) -> dict[str, Any]:
    from emulator.testing import EmulatorProcess
    from orchestrator.artifacts import RunArtifacts
    from orchestrator.devstack.redis_server import RedisServer
    from orchestrator.domain.status import RunStatus, Step
    from tests.support.chain_stack import Stack

    settings = Settings(_env_file=None)
    times = poll_times(settings, max(lengths) * 3 + 600)
    with tempfile.TemporaryDirectory(prefix="orch-bench-poll-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            (stack.code_dir / "train.py").write_text(END_SCRIPT)
            try:
                stack.start_worker(defaults=True)
                before = stack.stats()["requests"]
                run_ids = [stack.submit(stack.spec(seconds=length)) for length in lengths]
                timeout = max(lengths) * 2 + 120
                records = [stack.wait_terminal(run_id, timeout=timeout) for run_id in run_ids]
                after = stack.stats()["requests"]
                ends = [
                    float(
                        (RunArtifacts.of(stack.artifacts, record.run_id).output_dir("MODEL"))
                        .joinpath("end.txt")
                        .read_text()
                    )
                    if record.status is RunStatus.SUCCEEDED
                    else 0.0
                    for record in records
                ]
            finally:
                stack.close()
    runs = []
    for length, record, job_end in zip(lengths, records, ends, strict=True):
        if record.status is not RunStatus.SUCCEEDED:
            raise SystemExit(f"FAILED: run {record.run_id} ended {record.status.value}")
        poll = record.step(Step.POLL_JOB)
        assert poll.finished_at is not None
        since = float(poll.detail["since"])
        predicted = noticed_after(times, job_end - since)
        measured = poll.finished_at - job_end
        runs.append(
            {
                "job_seconds": length,
                "polls": int(poll.detail.get("polls", 0)) + 1,
                "predicted_delay_seconds": round(predicted, 3),
                "measured_delay_seconds": round(measured, 3),
                "lateness_seconds": round(measured - predicted, 3),
            }
        )
    requests: Counter[str] = Counter()
    for op, outcomes in after.items():
        requests[op] = sum(outcomes.values()) - sum(before.get(op, {}).values())
    return {
        "runs": runs,
        "lateness_median_seconds": round(statistics.median(r["lateness_seconds"] for r in runs), 3),
        "requests_by_operation": {op: n for op, n in sorted(requests.items()) if n},
        "jobs_get_total": requests["Jobs_Get"],
    }


def print_table(summary: dict[str, Any]) -> None:
    sched = summary["schedule"]
    print(
        f"poll schedule: first after {sched['poll_initial_seconds']} s, x{sched['poll_backoff']}, "
        f"at most {sched['poll_max_seconds']} s"
    )
    print(
        f"Jobs_Get: {sched['jobs_get_1h_job']} for a 1 h job, {sched['jobs_get_2h_job']} for 2 h, "
        f"{sched['jobs_get_per_hour_after_first']}/h after the first hour"
    )
    print(f"{'job':>8} {'delay p50 s':>12} {'delay p95 s':>12} {'p50/job':>8}")
    for label, row in sched["delays"].items():
        print(
            f"{label:>8} {row['p50_seconds']:>12.2f} {row['p95_seconds']:>12.2f} "
            f"{row['p50_share_of_job']:>8.3f}"
        )
    if "confirm" in summary:
        print(f"\n{'job s':>6} {'polls':>6} {'predicted s':>12} {'measured s':>11} {'late s':>7}")
        for run in summary["confirm"]["runs"]:
            print(
                f"{run['job_seconds']:>6.0f} {run['polls']:>6} "
                f"{run['predicted_delay_seconds']:>12.2f} {run['measured_delay_seconds']:>11.2f} "
                f"{run['lateness_seconds']:>7.2f}"
            )
        print(f"requests: {summary['confirm']['requests_by_operation']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--confirm", default="", help="comma-separated job seconds to run for real (e.g. 10,25)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    lengths = [float(part) for part in args.confirm.split(",") if part.strip()]
    if any(length < 0 for length in lengths):
        parser.error("--confirm lengths must be >= 0")
    summary: dict[str, Any] = {"schedule": schedule_figures(Settings(_env_file=None))}
    if lengths:
        from orchestrator.observability.logs import configure_logging

        configure_logging("WARNING")
        summary["confirm"] = confirm(lengths)
    summary["cpus"] = os.cpu_count()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
