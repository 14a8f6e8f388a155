"""Runs in flight on one worker: worker RSS, broker memory and time per poll step.

Starts its own redis-server, the emulator with a provision delay of a day (a
cluster's nodes stay `preparing`, so every run waits for nodes) and one
`orchestrator worker --concurrency 1 --pool prefork` with every ORCH_* setting at
its default. For each N of `--runs` (default 1000,10000), in one stack:

1. One real run (a shared cluster, so N runs need one cluster) goes through the
   chain until `wait_for_nodes` waits.
2. N-1 more runs are put in the same state straight in Redis: each created by
   the store, moved to provisioning, its first three steps done, its
   wait_for_nodes step waiting on its own task id with a due-index entry, as
   the runner leaves a waiting run. Their polls are past the back-off (every
   ORCH_POLL_MAX_SECONDS), due times spread evenly over the next interval: the
   steady state of N long waits. (Getting 10,000 runs there through the chain
   would take most of an hour of this machine; the wait is what is measured.)
3. For `--window` seconds: the worker's process-group RSS (main + pool child,
   sampled every second: max), its CPU seconds, the polls done (Clusters_Get
   from the emulator's stats) and from the worker's log the wall time of each
   poll step (step_started -> step_waiting), duplicate deliveries dropped, runs
   re-driven; Redis used_memory, the broker's queue length and unacked
   messages at the end.

    .venv/bin/python benchmarks/runs_in_flight.py [--runs 1000,10000] [--window 60] [--json]

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.chain.clock import deliver
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.chain.redrive import active_runs
from orchestrator.chain.runner import Dispatch, new_task_id
from orchestrator.chain.steps import StepContext, poll_countdown
from orchestrator.devstack.processes import ChildProcess, cli_argv
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import RunStatus, Step, StepState
from orchestrator.observability.logs import configure_logging
from orchestrator.store import RunRecord
from tests.support.chain_fakes import FakeGateway
from tests.support.chain_stack import Stack, wait_for

PROVISION_SECONDS = 86400.0
STEADY_POLLS = 40  # past the back-off: every wait is poll_max
BEFORE_WAIT = (Step.ENSURE_RESOURCE_GROUP, Step.PREPARE_SHARE, Step.CREATE_CLUSTER)


def group_rss_and_cpu(pgid: int) -> tuple[float, float, int]:
    """(RSS MiB, CPU seconds, processes) of every process in process group `pgid`."""
    rss, cpu, count, _ = group_processes(pgid)
    return rss, cpu, count


def main_cpu(pgid: int) -> float:
    """CPU seconds of the group's leader alone: the worker's main process (its
    chain clock and re-driver run there; the steps run in the pool child)."""
    return group_processes(pgid)[3]


def group_processes(pgid: int) -> tuple[float, float, int, float]:
    rss_pages, ticks, count, leader = 0, 0, 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) != pgid:  # pgrp
            continue
        count += 1
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
        if int(entry) == pgid:
            leader = int(fields[11]) + int(fields[12])
        rss_pages += int(fields[21])
    page, hz = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    return rss_pages * page / 2**20, ticks / hz, count, leader / hz


def clusters_get(stack: Stack) -> int:
    return sum(stack.stats()["requests"].get("Clusters_Get", {}).values())


def seed_waiting(stack: Stack, template: RunRecord, spec: RunSpec, count: int) -> float:
    """`count` runs waiting for nodes as `template` is; returns the seconds it took."""
    settings = stack.settings()
    ctx = StepContext(settings, stack.store, FakeGateway())
    interval = poll_countdown(settings, STEADY_POLLS)
    started = time.monotonic()
    now = time.time()
    for index in range(count):
        record, _ = stack.store.create_run(spec)
        run_id = record.run_id
        stack.store.mark_dispatched(run_id)
        stack.store.transition(run_id, RunStatus.PROVISIONING)
        task_id = new_task_id(run_id, Step.WAIT_FOR_NODES)

        def waiting(current: RunRecord, task_id: str = task_id) -> None:
            current.resources = dict(template.resources)
            for step in BEFORE_WAIT:
                current.steps[step] = template.step(step).model_copy()
            current.steps[Step.WAIT_FOR_NODES] = template.step(Step.WAIT_FOR_NODES).model_copy(
                update={
                    "task_id": task_id,
                    "state": StepState.WAITING,
                    "detail": {
                        **template.step(Step.WAIT_FOR_NODES).detail,
                        "since": now,
                        "polls": STEADY_POLLS,
                    },
                }
            )

        stack.store.update(run_id, waiting)
        # Due evenly over the next interval, as N waits that started at random times.
        countdown = 1.0 + interval * index / max(1, count)
        ctx.clock = lambda: now
        deliver(ctx, Dispatch(Step.WAIT_FOR_NODES, run_id, task_id, countdown), _never)
    return time.monotonic() - started


def _never(dispatch: Dispatch) -> None:
    raise AssertionError("every seeded poll has a countdown")


def poll_step_seconds(log_path: Path, since: float) -> tuple[list[float], dict[str, int]]:
    """Wall seconds of each wait_for_nodes execution after `since`, and event counts."""
    started: dict[str, float] = {}
    durations: list[float] = []
    events = {"stale_message_dropped": 0, "redriven_run": 0, "step_started": 0}
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event")
        if event in events:
            events[event] += 1
        if entry.get("step") != Step.WAIT_FOR_NODES.value or "timestamp" not in entry:
            continue
        at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        if at < since:
            continue
        task_id = str(entry.get("task_id"))
        if event == "step_started":
            started[task_id] = at
        elif event == "step_waiting" and task_id in started:
            durations.append(at - started.pop(task_id))
    return durations, events


def measure(
    stack: Stack, worker: ChildProcess, spec: RunSpec, n: int, window: float
) -> dict[str, Any]:
    stack.client.flushall()
    stack.client.config_set("save", "")
    memory_empty = int(stack.client.info("memory")["used_memory"])
    template_id = stack.submit(spec)

    def waiting() -> RunRecord | None:
        record = stack.store.get(template_id)
        state = record.step(Step.WAIT_FOR_NODES).state
        return record if state is StepState.WAITING else None

    template = wait_for(waiting, 120, "the real run to wait for nodes")
    seed_seconds = seed_waiting(stack, template, template.spec, n - 1)
    memory_seeded = int(stack.client.info("memory")["used_memory"])
    pgid = worker.process.pid
    polls_before = clusters_get(stack)
    rss_before, cpu_before, _ = group_rss_and_cpu(pgid)
    main_before = main_cpu(pgid)
    since = time.time()
    rss_samples = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        rss_samples.append(group_rss_and_cpu(pgid)[0])
        time.sleep(1.0)
    rss_after, cpu_after, processes = group_rss_and_cpu(pgid)
    main_after = main_cpu(pgid)
    # What one re-drive sweep reads (every ORCH_REDRIVE_INTERVAL_SECONDS, on one worker).
    ctx = StepContext(stack.settings(), stack.store, FakeGateway())
    read_started = time.monotonic()
    active = sum(1 for _ in active_runs(ctx))
    redrive_read = time.monotonic() - read_started
    polls = clusters_get(stack) - polls_before
    durations, events = poll_step_seconds(worker.log_path, since)
    unacked = int(stack.client.hlen("unacked"))
    queued = int(stack.client.llen(CHAIN_QUEUE))
    due = len(stack.store.due)
    return {
        "runs": n,
        "seed_seconds": round(seed_seconds, 1),
        "window_seconds": window,
        "worker_processes": processes,
        "worker_rss_mib_max": round(max([*rss_samples, rss_after]), 1),
        "worker_rss_mib_before_window": round(rss_before, 1),
        "worker_cpu_seconds": round(cpu_after - cpu_before, 2),
        "worker_main_cpu_seconds": round(main_after - main_before, 2),
        "redrive_sweep_read_seconds": round(redrive_read, 3),
        "active_runs_read": active,
        "polls": polls,
        "polls_needed_per_second": round(n / poll_countdown(stack.settings(), STEADY_POLLS), 2),
        "polls_per_second": round(polls / window, 2),
        "cpu_ms_per_poll": round((cpu_after - cpu_before) / polls * 1000, 2) if polls else None,
        "poll_step_ms_p50": round(statistics.median(durations) * 1000, 1) if durations else None,
        "poll_step_ms_p95": (
            round(sorted(durations)[int(0.95 * len(durations))] * 1000, 1) if durations else None
        ),
        "redis_used_memory_mib": round(memory_seeded / 2**20, 2),
        "redis_memory_per_run_kib": round((memory_seeded - memory_empty) / n / 1024, 2),
        "broker_queue_length_end": queued,
        "broker_unacked_end": unacked,
        "due_index_end": due,
        "duplicates_dropped": events["stale_message_dropped"],
        "runs_redriven": events["redriven_run"],
    }


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"{'runs':>6} {'RSS MiB':>8} {'Redis MiB':>9} {'KiB/run':>8} {'polls/s':>8} "
        f"{'needed/s':>9} {'step ms p50/p95':>16} {'CPU ms/poll':>11} {'queued':>7} "
        f"{'unacked':>7} {'dup':>4} {'redriven':>8}"
    )
    for row in summary["levels"]:
        print(
            f"{row['runs']:>6} {row['worker_rss_mib_max']:>8.1f} "
            f"{row['redis_used_memory_mib']:>9.1f} {row['redis_memory_per_run_kib']:>8.2f} "
            f"{row['polls_per_second']:>8.2f} {row['polls_needed_per_second']:>9.2f} "
            f"{row['poll_step_ms_p50']!s:>7} / {row['poll_step_ms_p95']!s:<6} "
            f"{row['cpu_ms_per_poll']!s:>11} {row['broker_queue_length_end']:>7} "
            f"{row['broker_unacked_end']:>7} {row['duplicates_dropped']:>4} "
            f"{row['runs_redriven']:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated N")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per N")
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    levels = [int(part) for part in args.runs.split(",") if part.strip()]
    if not levels or min(levels) < 1 or args.window <= 0:
        parser.error("--runs needs N >= 1 and --window > 0")
    configure_logging("WARNING")
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-flight-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        provision = ["--provision-seconds", str(PROVISION_SECONDS)]
        with EmulatorProcess(workdir / "emulator", *provision) as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            argv = cli_argv("worker", "--concurrency", "1", "--pool", "prefork")
            worker = ChildProcess.spawn(
                "worker",
                argv,
                env=stack.env(defaults=True),
                log_path=workdir / "worker.log",
                own_group=True,
            )
            stack.workers.append(worker)
            try:
                # Its local input is uploaded by each submit (a level starts flushed).
                spec = parse_spec(
                    {
                        "name": "waiting",
                        "cluster": {"policy": "shared", "name": "warm-pool"},
                        "job": {"script": "train.py"},
                        "inputs": {"SCRIPTS": str(stack.code_dir)},
                    }
                )
                for n in levels:
                    rows.append(measure(stack, worker, spec, n, args.window))
            finally:
                stack.close()
    summary = {"levels": rows, "cpus": os.cpu_count(), "provision_seconds": PROVISION_SECONDS}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
