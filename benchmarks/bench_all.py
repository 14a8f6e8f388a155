"""`make bench`: the performance benchmarks of issue 13 with modest defaults, one table.

Runs, one after another (each starts and stops what it needs, on 127.0.0.1):

* enqueue_throughput.py --requests 1000 --concurrency 1,16,64, then --workers 2 at 16
* poll_budget.py --confirm 10,30
* seed_procedure.py --jobs 10,120
* runs_in_flight.py --runs 1000,10000 --window 60

and prints one row per figure: what is measured, the figure, the goal and whether
it is met. `--quick` runs each with tiny parameters instead (a minute or so; the
figures are then only a smoke check), `--only` a subset. `--json` prints every
script's summary and the table's rows.
A script that fails is reported in the table and makes the exit status 1.

    .venv/bin/python benchmarks/bench_all.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

FULL: dict[str, list[str]] = {
    "enqueue": ["enqueue_throughput.py", "--requests", "1000", "--concurrency", "1,16,64"],
    "enqueue_2_workers": [
        "enqueue_throughput.py",
        "--requests",
        "1000",
        "--concurrency",
        "16",
        "--workers",
        "2",
    ],
    "poll_budget": ["poll_budget.py", "--confirm", "10,30"],
    "seed_procedure": ["seed_procedure.py", "--jobs", "10,120"],
    "runs_in_flight": ["runs_in_flight.py", "--runs", "1000,10000", "--window", "60"],
}
QUICK: dict[str, list[str]] = {
    "enqueue": ["enqueue_throughput.py", "--requests", "100", "--concurrency", "1,16,64"],
    "enqueue_2_workers": [
        "enqueue_throughput.py",
        "--requests",
        "100",
        "--concurrency",
        "16",
        "--workers",
        "2",
    ],
    "poll_budget": ["poll_budget.py", "--confirm", "3"],
    "seed_procedure": ["seed_procedure.py", "--jobs", "2", "--provision-seconds", "0"],
    "runs_in_flight": ["runs_in_flight.py", "--runs", "100", "--window", "5"],
}

Row = tuple[str, str, str, str]  # what, figure, goal, met


def run(argv: list[str]) -> tuple[dict[str, Any] | None, float, str]:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(HERE / argv[0]), *argv[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        return None, elapsed, (completed.stderr or completed.stdout)[-600:]
    return json.loads(completed.stdout), elapsed, ""


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def enqueue_rows(summary: dict[str, Any], label: str) -> list[Row]:
    rows: list[Row] = []
    for level in summary["levels"]:
        c = level["concurrency"]
        api = level["api"]
        rows.append(
            (
                f"{label} c={c}: direct / raw send_task",
                f"{level['ratio_direct_to_raw']:.2f} ({level['direct']['requests_per_second']:.0f}"
                f" / {level['raw']['requests_per_second']:.0f} req/s)",
                ">= 0.5",
                met(level["ratio_direct_to_raw"] >= 0.5),
            )
        )
        rows.append(
            (
                f"{label} c={c}: API / direct",
                f"{level['ratio_api_to_direct']:.2f}",
                ">= 0.7",
                met(level["ratio_api_to_direct"] >= 0.7),
            )
        )
        if c == 16:
            rows.append(
                (
                    f"{label} c=16: API req/s, p99",
                    f"{api['requests_per_second']:.0f} req/s, "
                    f"p99 {api['latency_ms']['p99']:.0f} ms",
                    ">= 1000, <= 50 ms",
                    met(api["requests_per_second"] >= 1000 and api["latency_ms"]["p99"] <= 50),
                )
            )
    return rows


def poll_rows(summary: dict[str, Any]) -> list[Row]:
    schedule = summary["schedule"]
    rows: list[Row] = [
        (
            "polls: Jobs_Get of a 1 h job (2 h job)",
            f"{schedule['jobs_get_1h_job']} ({schedule['jobs_get_2h_job']}); "
            f"{schedule['jobs_get_per_hour_after_first']}/h after",
            "<= 60 per job-hour",
            met(schedule["jobs_get_1h_job"] <= 60 and schedule["jobs_get_2h_job"] <= 120),
        )
    ]
    for label, delay in schedule["delays"].items():
        rows.append(
            (
                f"polls: end noticed after, {label} job",
                f"p50 {delay['p50_seconds']:.1f} s, p95 {delay['p95_seconds']:.1f} s",
                "report",
                "-",
            )
        )
    for run_row in summary.get("confirm", {}).get("runs", []):
        rows.append(
            (
                f"polls: real {run_row['job_seconds']:.0f} s job, measured vs schedule",
                f"{run_row['measured_delay_seconds']:.2f} s vs "
                f"{run_row['predicted_delay_seconds']:.2f} s ({run_row['lateness_seconds']:+.2f})",
                "report",
                "-",
            )
        )
    return rows


def seed_rows(summary: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for job in summary["jobs"]:
        seconds = job["job_seconds"]
        chain, script = job["chain"], job["script"]
        long_job = seconds >= 120
        rows.append(
            (
                f"seed: {seconds:.0f} s job, requests chain / script",
                f"{job['ratio_requests_chain_to_script']:.2f} ({chain['requests_total']} / "
                f"{script['requests_total']}; ARM reads {chain['arm_reads']} / "
                f"{script['arm_reads']})",
                "<= 1 at 2 min" if long_job else "report",
                met(job["ratio_requests_chain_to_script"] <= 1) if long_job else "-",
            )
        )
        rows.append(
            (
                f"seed: {seconds:.0f} s job, wall chain / script",
                f"{job['ratio_wall_chain_to_script']:.2f} ({chain['wall_seconds']:.1f} / "
                f"{script['wall_seconds']:.1f} s)",
                "report",
                "-",
            )
        )
        if "chain_repeat" in job:
            again = job["chain_repeat"]
            rows.append(
                (
                    f"seed: {seconds:.0f} s job again (poll hint), chain / script",
                    f"wall {job['ratio_wall_chain_repeat_to_script']:.2f} "
                    f"({again['wall_seconds']:.1f} s), requests "
                    f"{job['ratio_requests_chain_repeat_to_script']:.2f}",
                    "report",
                    "-",
                )
            )
    return rows


def flight_rows(summary: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for level in summary["levels"]:
        n = level["runs"]
        rows.append(
            (
                f"in flight: {n} runs, worker RSS (main + child)",
                f"{level['worker_rss_mib_max']:.0f} MiB",
                "< 300 MB",
                met(level["worker_rss_mib_max"] * 2**20 < 300e6),
            )
        )
        rows.append(
            (
                f"in flight: {n} runs, Redis memory",
                f"{level['redis_used_memory_mib']:.1f} MiB ({level['redis_memory_per_run_kib']:.1f}"
                " KiB/run)",
                "report",
                "-",
            )
        )
        rows.append(
            (
                f"in flight: {n} runs, polls/s done vs due",
                f"{level['polls_per_second']:.1f} vs {level['polls_needed_per_second']:.1f}; step "
                f"p50 {level['poll_step_ms_p50']} ms, {level['cpu_ms_per_poll']} CPU ms/poll",
                "keeps up",
                met(level["polls_per_second"] >= 0.9 * level["polls_needed_per_second"]),
            )
        )
        rows.append(
            (
                f"in flight: {n} runs, unacked / duplicates / re-driven",
                f"{level['broker_unacked_end']} / {level['duplicates_dropped']} / "
                f"{level['runs_redriven']}",
                "<= 1 (the step executing) / 0 / 0",
                met(
                    level["broker_unacked_end"] <= 1
                    and level["duplicates_dropped"] == 0
                    and level["runs_redriven"] == 0
                ),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny parameters (a smoke run)")
    parser.add_argument("--json", action="store_true", help="every script's summary as JSON")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(FULL)}")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.only:
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        unknown = sorted(set(wanted) - set(plan))
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
        plan = {key: argv for key, argv in plan.items() if key in wanted}
    rows: list[Row] = []
    summaries: dict[str, Any] = {}
    failed = []
    for key, argv in plan.items():
        print(f"running {' '.join(argv)} ...", file=sys.stderr, flush=True)
        summary, elapsed, error = run(argv)
        if summary is None:
            failed.append(key)
            rows.append(
                (
                    f"{key}: FAILED after {elapsed:.0f} s",
                    error.splitlines()[-1:][0] if error else "",
                    "",
                    "NO",
                )
            )
            continue
        summaries[key] = summary
        if key == "enqueue":
            rows += enqueue_rows(summary, "enqueue, 1 API worker")
        elif key == "enqueue_2_workers":
            rows += [r for r in enqueue_rows(summary, "enqueue, --workers 2") if "API" in r[0]]
        elif key == "poll_budget":
            rows += poll_rows(summary)
        elif key == "seed_procedure":
            rows += seed_rows(summary)
        elif key == "runs_in_flight":
            rows += flight_rows(summary)
    if args.json:
        json.dump({"summaries": summaries, "table": rows, "failed": failed}, sys.stdout, indent=2)
        print()
    else:
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        header: Row = ("measured", "figure", "goal", "met")
        widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
        for row in (header, *rows):
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if failed:
        raise SystemExit(f"FAILED: {', '.join(failed)}")


if __name__ == "__main__":
    main()
