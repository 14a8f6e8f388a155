"""The chaos run: many small runs while workers are SIGKILLed, Redis restarts and
Azure misbehaves -- nothing may be lost, doubled or leaked.

Starts its own redis-server (AOF on, a fixed port so it can restart), the
emulator (provision delay 0) with --fault-rate of every ARM and storage
operation failing (throttle, 500, 503, dropped connection), --workers
`orchestrator worker` processes and one beat, every ORCH_* setting at its
default. It submits --runs runs whose job sleeps --job-seconds, then until
they have all ended: every --kill-every seconds (jittered) SIGKILLs one
worker's process group and starts a fresh one at once; --redis-restarts times
it restarts Redis cleanly (SIGTERM, then start on the same data).

Recovery time of a kill: the steps the killed worker was executing are read
from its JSON log (step_started with no ending line); a kill's recovery is
the time until every one of those steps moved on (another worker took it, or
it ended). Kills that hit no executing step lose nothing to recover: their
waits are in Redis.

Prints runs succeeded / failed / lost, cluster and job creates per run (from
the emulator's stats), clusters and jobs left behind, and recovery p50/p95.

    .venv/bin/python benchmarks/chaos.py                  # 50 runs, about 10 minutes
    .venv/bin/python benchmarks/chaos.py --runs 10 --json

Everything runs on 127.0.0.1, is bounded by --timeout, and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

# The chain tests' Stack is reused, not copied: `tests` is importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.devstack.processes import ChildProcess, cli_argv
from orchestrator.devstack.redis_server import RedisServer, free_port
from orchestrator.domain.status import Step, StepState
from orchestrator.observability.logs import configure_logging
from orchestrator.store import RunRecord
from tests.support.chain_stack import Stack

ENDING_EVENTS = {"step_done", "step_waiting", "step_failed", "lease_lost_outcome_dropped"}


@dataclass
class Kill:
    at: float
    # (run_id, step, attempts when killed) of the steps the worker was executing
    victims: list[tuple[str, Step, int]]
    # (run id, step) -> when it moved on: a worker with two slots can die holding
    # two steps of one run (a step and a redelivered duplicate of it, say).
    recovered_at: dict[tuple[str, Step], float] = field(default_factory=dict)

    @property
    def recovery_seconds(self) -> float | None:
        if not self.victims:
            return 0.0
        if len(self.recovered_at) < len({(run_id, step) for run_id, step, _ in self.victims}):
            return None
        return max(self.recovered_at.values()) - self.at


def executing_steps(log: str) -> dict[str, tuple[str, Step]]:
    """task id -> (run id, step) of the steps a worker log started and never ended."""
    open_steps: dict[str, tuple[str, Step]] = {}
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        task_id, event = entry.get("task_id"), entry.get("event")
        if not isinstance(task_id, str) or "run_id" not in entry or "step" not in entry:
            continue
        if event == "step_started":
            open_steps[task_id] = (entry["run_id"], Step(entry["step"]))
        elif event in ENDING_EVENTS:
            open_steps.pop(task_id, None)
    return open_steps


def moved_on(record: RunRecord, step: Step, attempts: int) -> bool:
    current = record.step(step)
    return record.terminal or current.state is not StepState.RUNNING or current.attempts > attempts


class Chaos:
    def __init__(self, stack: Stack, server: RedisServer, args: argparse.Namespace) -> None:
        self.stack = stack
        self.server = server
        self.args = args
        self.random = random.Random(args.seed)
        self.workers: list[ChildProcess] = []
        self.kills: list[Kill] = []
        self.redis_restarts = 0

    def start_worker(self) -> ChildProcess:
        worker = self.stack.start_worker(concurrency=2, defaults=True)
        self.workers.append(worker)
        return worker

    def kill_one(self) -> None:
        doomed = self.workers.pop(self.random.randrange(len(self.workers)))
        doomed.kill()
        at = time.monotonic()
        self.start_worker()
        victims = []
        for run_id, step in executing_steps(doomed.log()).values():
            attempts = self.read(lambda r=run_id: self.stack.store.get(r)).step(step).attempts
            victims.append((run_id, step, attempts))
        self.kills.append(Kill(at, victims))

    def restart_redis(self) -> None:
        self.server.stop()
        self.server.start()
        self.redis_restarts += 1

    def read(self, query: Any) -> Any:
        """A store read that waits out a Redis restart."""
        for _ in range(300):
            try:
                return query()
            except redis.ConnectionError:
                threading.Event().wait(0.1)
        raise SystemExit("Redis did not come back within 30 s")

    def watch_recoveries(self) -> None:
        now = time.monotonic()
        for kill in self.kills:
            for run_id, step, attempts in kill.victims:
                if (run_id, step) in kill.recovered_at:
                    continue
                record = self.read(lambda r=run_id: self.stack.store.get(r))
                if moved_on(record, step, attempts):
                    kill.recovered_at[run_id, step] = now

    def run(self, run_ids: list[str]) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + self.args.timeout
        next_kill = started + self.args.kill_every
        restart_at = [
            started + self.args.kill_every * (2 * (i + 1) + 0.5)
            for i in range(self.args.redis_restarts)
        ]
        pending = set(run_ids)
        tick = threading.Event()
        while pending and time.monotonic() < deadline:
            tick.wait(0.2)
            now = time.monotonic()
            if now >= next_kill:
                self.kill_one()
                next_kill = now + self.args.kill_every * self.random.uniform(0.5, 1.5)
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                self.restart_redis()
            self.watch_recoveries()
            pending = {
                run_id
                for run_id in pending
                if not self.read(lambda r=run_id: self.stack.store.get(r)).terminal
            }
        # Let cleanup finish for runs that just ended, then count what is left.
        settle = time.monotonic() + 60
        while time.monotonic() < settle and self.leftovers():
            tick.wait(0.5)
        self.watch_recoveries()
        return self.summary(run_ids, time.monotonic() - started)

    def leftovers(self) -> dict[str, int]:
        resources = self.stack.stats()["resources"]
        created, deleted = resources["created"], resources["deleted"]
        return {
            kind: created.get(kind, 0) - deleted.get(kind, 0)
            for kind in ("cluster", "job")
            if created.get(kind, 0) != deleted.get(kind, 0)
        }

    def summary(self, run_ids: list[str], seconds: float) -> dict[str, Any]:
        records = [self.read(lambda r=run_id: self.stack.store.get(r)) for run_id in run_ids]
        statuses = [record.status.value for record in records]
        created = self.stack.stats()["resources"]["created"]
        recoveries = [k.recovery_seconds for k in self.kills if k.victims]
        measured = sorted(r for r in recoveries if r is not None)
        return {
            "runs": len(run_ids),
            "succeeded": statuses.count("succeeded"),
            "failed": statuses.count("failed") + statuses.count("cancelled"),
            "lost": sum(1 for record in records if not record.terminal),
            "clusters_created_per_run": created.get("cluster", 0) / len(run_ids),
            "jobs_created_per_run": created.get("job", 0) / len(run_ids),
            "left_behind": self.leftovers(),
            "kills": len(self.kills),
            "kills_that_hit_a_step": len(recoveries),
            "unrecovered_kills": sum(1 for r in recoveries if r is None),
            "recovery_p50_seconds": round(statistics.median(measured), 1) if measured else None,
            "recovery_p95_seconds": round(percentile(measured, 0.95), 1) if measured else None,
            "redis_restarts": self.redis_restarts,
            "fault_rate": self.args.fault_rate,
            "seconds": round(seconds, 1),
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(q * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def faults(rate: float) -> list[dict[str, Any]]:
    """`rate` of every operation fails, split across the four kinds."""
    share = rate / 4
    return [
        {"kind": "throttle", "rate": share, "retry_after": 1},
        {"kind": "error500", "rate": share},
        {"kind": "error503", "rate": share},
        {"kind": "drop", "rate": share},
    ]


def chaos(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orch-chaos-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(port=free_port(), data_dir=workdir / "redis", appendonly=True)
        with server, EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emu:
            (workdir / "stack").mkdir()
            stack = Stack(emu, server.url, workdir / "stack")
            chaos_run = Chaos(stack, server, args)
            beat = ChildProcess.spawn(
                "beat",
                cli_argv("beat", "--schedule", str(workdir / "beat-schedule")),
                env=stack.env(defaults=True),
                log_path=workdir / "beat.log",
                own_group=True,
            )
            try:
                for _ in range(args.workers):
                    chaos_run.start_worker()
                # The submitter uploads the inputs once, before the faults: the chaos is
                # the chain's (a submitter's failed upload is its own error to retry).
                spec = stack.uploaded_spec(name="chaos", seconds=args.job_seconds)
                emu.set_faults(faults(args.fault_rate))
                run_ids = [stack.submit(spec) for _ in range(args.runs)]
                return chaos_run.run(run_ids)
            finally:
                beat.stop()
                stack.close()  # stops every worker it started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--job-seconds", type=float, default=3.0)
    parser.add_argument("--kill-every", type=float, default=8.0, help="seconds, jittered")
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument("--timeout", type=float, default=1500.0, help="give up after (s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    if args.runs < 1 or args.workers < 1 or args.kill_every <= 0 or not 0 <= args.fault_rate < 1:
        parser.error("--runs/--workers >= 1, --kill-every > 0, 0 <= --fault-rate < 1")
    configure_logging("WARNING")
    summary = chaos(args)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return
    for key, value in summary.items():
        print(f"{key:>26}  {value}")


if __name__ == "__main__":
    main()
