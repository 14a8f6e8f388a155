"""Webhook delivery latency: run end (record.finished_at) -> the receiver has it.

Starts its own redis-server, the emulator, --workers `orchestrator worker`
processes (the chain tests' Stack) and a real HTTPS receiver on 127.0.0.1
(tests/support/webhook_receiver.py, trusted through ORCH_WEBHOOK_CA_BUNDLE;
ORCH_WEBHOOK_ALLOW_PRIVATE is set for it). Submits --runs tiny runs (the job
sleeps --job-seconds) in waves of --wave, each asking for a webhook with a key's
signing secret, and waits for all to end and be delivered. Every delivery is
verified with `orchestrator.client.verify_webhook`; each run must get exactly
one. Prints p50 / p95 / max of the latency (`--json`: one JSON object).

    .venv/bin/python benchmarks/webhook_latency.py --runs 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.testing import EmulatorProcess
from orchestrator.chain.enqueue import enqueue_run
from orchestrator.client import verify_webhook
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.access import Scope
from orchestrator.domain.notify import NotifySpec
from orchestrator.observability.logs import configure_logging
from orchestrator.store.apikeys import KeyRing
from tests.support.chain_stack import Stack, wait_for
from tests.support.webhook_receiver import https_receiver

WAVE_TIMEOUT_SECONDS = 300.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(stack: Stack, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with https_receiver(tmp, 200) as receiver:
        for _ in range(args.workers):
            stack.start_worker(
                ORCH_WEBHOOK_ALLOW_PRIVATE="true", ORCH_WEBHOOK_CA_BUNDLE=str(receiver.ca_bundle)
            )
        ring = KeyRing(stack.store.redis, stack.store.keys)
        secret = ring.create("bench", frozenset({Scope.SUBMIT}), by="admin").signing_secret
        run_ids: list[str] = []
        started = time.monotonic()
        while len(run_ids) < args.runs:
            wave = min(args.wave, args.runs - len(run_ids))
            for _ in range(wave):
                record, _ = enqueue_run(
                    stack.uploaded_spec(seconds=args.job_seconds),
                    store=stack.store,
                    broker_url=stack.redis_url,
                    submitted_by="bench",
                    notify=NotifySpec(url=receiver.url),
                )
                run_ids.append(record.run_id)
            wait_for(
                lambda: len(receiver.deliveries) >= len(run_ids),
                WAVE_TIMEOUT_SECONDS,
                f"{len(run_ids)} deliveries",
            )
        elapsed = time.monotonic() - started
        by_run: dict[str, list[float]] = {}
        for delivery in receiver.deliveries:
            payload = verify_webhook(secret, delivery.headers, delivery.body)
            by_run.setdefault(payload["data"]["run_id"], []).append(delivery.received_at)
    statuses = {}
    latencies = []
    for run_id in run_ids:
        record = stack.store.get(run_id)
        statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
        (received_at,) = by_run[run_id]  # exactly one delivery per run
        latencies.append(received_at - (record.finished_at or 0.0))
    return {
        "runs": args.runs,
        "workers": args.workers,
        "wave": args.wave,
        "job_seconds": args.job_seconds,
        "statuses": statuses,
        "deliveries": sum(len(times) for times in by_run.values()),
        "elapsed_seconds": round(elapsed, 1),
        "latency_seconds": {
            "p50": round(percentile(latencies, 0.50), 3),
            "p95": round(percentile(latencies, 0.95), 3),
            "max": round(max(latencies), 3),
            "mean": round(statistics.fmean(latencies), 3),
        },
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--wave", type=int, default=10, help="runs submitted at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--job-seconds", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="orch-bench-hooks-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with EmulatorProcess(workdir / "emulator", "--provision-seconds", "0") as emulator:
            (workdir / "stack").mkdir()
            stack = Stack(emulator, server.url, workdir / "stack")
            try:
                summary = measure(stack, args, workdir)
            finally:
                stack.close()
    if args.json:
        print(json.dumps(summary))
        return
    latency = summary["latency_seconds"]
    print(
        f"{summary['runs']} runs ({summary['statuses']}), {summary['deliveries']} verified "
        f"deliveries, {summary['workers']} workers, waves of {summary['wave']}, "
        f"{summary['elapsed_seconds']} s"
    )
    print(
        f"run end -> receiver: p50 {latency['p50']} s, p95 {latency['p95']} s, "
        f"max {latency['max']} s, mean {latency['mean']} s"
    )


if __name__ == "__main__":
    main()
