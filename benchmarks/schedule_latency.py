"""Schedule tick -> enqueue latency: how late a scheduled run is enqueued after its tick.

Starts its own redis-server (RedisServer, free port), the emulator
(EmulatorProcess, `--provision-seconds 0`) and one `orchestrator worker` with
the chain tests' short knobs (tests/support/chain_stack.py), then creates an
every-1s schedule (concurrency_policy allow; each run's job exits at once) and
waits for --ticks N runs. Per run: latency = run.created_at - its tick (the
`trigger_time` tag). The ticks that came while the worker was still starting
(recorded missed) are not counted: counting starts at the first run.

    .venv/bin/python benchmarks/schedule_latency.py --ticks 100
    .venv/bin/python benchmarks/schedule_latency.py --ticks 100 --json

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# The chain tests' Stack is reused, not copied: `tests` is importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.schedule import TickOutcome, parse_schedule
from orchestrator.observability.logs import configure_logging
from orchestrator.store.schedules import ScheduleBook
from tests.support.chain_stack import Stack

NAME = "bench-every-1s"
EVERY_SECONDS = 1
STARTUP_TIMEOUT_SECONDS = 120.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 100]) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def scheduled_runs(stack: Stack) -> list[tuple[float, float, str]]:
    """(tick, created_at, run id) of every run the schedule made, oldest tick first."""
    records, _ = stack.store.list_runs(tag=("schedule", NAME), limit=100_000)
    return sorted(
        (datetime.fromisoformat(r.spec.tags["trigger_time"]).timestamp(), r.created_at, r.run_id)
        for r in records
    )


def measure(stack: Stack, ticks: int) -> dict[str, Any]:
    stack.start_worker()
    book = ScheduleBook(stack.client, stack.store.keys)
    definition = {
        "name": NAME,
        "trigger": {"every": f"{EVERY_SECONDS}s"},
        "run": stack.uploaded_spec(seconds=0).model_dump(mode="json"),
        "concurrency_policy": "allow",
        "history_limit": 1000,
    }
    book.put(parse_schedule(definition), mode="create")
    # Generous: the first run waits for the worker to start; then one tick a second.
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS + ticks * EVERY_SECONDS * 3
    while len(runs := scheduled_runs(stack)) < ticks:
        if time.monotonic() > deadline:
            raise SystemExit(f"FAILED: {len(runs)} of {ticks} ticks ran before the deadline")
        time.sleep(0.2)
    book.set_suspended(NAME, True)
    runs = runs[:ticks]
    first, last = runs[0][0], runs[-1][0]
    history = [
        e for e in book.history(NAME) if first <= datetime.fromisoformat(e.tick).timestamp() <= last
    ]
    latencies = [created - tick for tick, created, _ in runs]
    return {
        "ticks": ticks,
        "every_seconds": EVERY_SECONDS,
        "workers": 1,
        "latency_seconds": {
            "p50": round(percentile(latencies, 50), 4),
            "p95": round(percentile(latencies, 95), 4),
            "max": round(max(latencies), 4),
            "mean": round(statistics.fmean(latencies), 4),
        },
        # Between the first and the last counted tick: every tick ran, none missed.
        "missed_between": sum(e.outcome is TickOutcome.MISSED for e in history),
        "span_seconds": round(last - first, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=100, help="ticks (runs) to measure")
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    if args.ticks < 1:
        parser.error("--ticks must be >= 1")
    configure_logging("WARNING")

    with tempfile.TemporaryDirectory(prefix="orch-bench-sched-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            try:
                summary = measure(stack, args.ticks)
            finally:
                stack.close()
    summary["cpus"] = os.cpu_count()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        latency = summary["latency_seconds"]
        print(
            f"tick -> enqueue over {summary['ticks']} ticks (every {EVERY_SECONDS}s, 1 worker): "
            f"p50 {latency['p50']:.3f}s, p95 {latency['p95']:.3f}s, max {latency['max']:.3f}s, "
            f"missed between {summary['missed_between']}"
        )


if __name__ == "__main__":
    main()
