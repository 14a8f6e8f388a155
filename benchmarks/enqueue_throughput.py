"""Enqueue throughput of `orchestrator api` vs direct enqueue_run, in one run.

Starts its own redis-server (free port) and `orchestrator api` (a real uvicorn
process, free port), sends --requests POSTs /v1/runs with distinct
Idempotency-Keys from --concurrency asyncio workers (httpx); then, against the
same Redis (flushed), calls `orchestrator.chain.enqueue.enqueue_run` --requests times
from --concurrency threads (what the API does per request, without HTTP).
Each phase is checked: every request created one run and queued its first
task. Prints requests/s and latency percentiles of both and the ratio
API/direct (`--json`: one JSON object instead). Everything runs on 127.0.0.1
and stops by itself.

    .venv/bin/python benchmarks/enqueue_throughput.py --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.devstack.redis_server import RedisServer, free_port
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.observability.logs import configure_logging
from orchestrator.store import RunStore

TOKEN = "benchmark-token"
SPEC = {
    "name": "mnist-convnet",
    "job": {"script": "ConvNet_MNIST.py", "args": ["$AZ_BATCHAI_INPUT_SAMPLE"]},
    "inputs": {"SAMPLE": "share:data/mnist"},
    "outputs": ["MODEL"],
    "tags": {"source": "benchmark"},
}
READY_TIMEOUT_SECONDS = 30.0


def start_api(redis_url: str, port: int, workers: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ORCH_API_TOKEN": TOKEN,
        "ORCH_ARTIFACTS_DIR": str(workdir / "artifacts"),
        "ORCH_LOG_LEVEL": "WARNING",
    }
    orchestrator = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    command = [orchestrator] if orchestrator else [sys.executable, "-m", "orchestrator.cli"]
    return subprocess.Popen(
        [*command, "api", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_until_ready(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"orchestrator api exited with status {process.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("orchestrator api did not become ready")


async def load(
    client: httpx.AsyncClient, total: int, concurrency: int
) -> tuple[float, list[float], Counter[int]]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def worker() -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            response = await client.post(
                "/v1/runs",
                json={"spec": SPEC, "parameters": {"seed": index}},
                headers={"Idempotency-Key": f"bench-{index}"},
            )
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def load_direct(
    redis_url: str, total: int, concurrency: int, prefix: str
) -> tuple[float, list[float], Counter[str]]:
    """enqueue_run `total` times from `concurrency` threads sharing one Redis pool."""
    base: RunSpec = parse_spec(SPEC)
    specs = [base.with_parameters({"seed": index}) for index in range(total)]
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    client = redis.Redis.from_url(redis_url, max_connections=concurrency * 2)
    store = RunStore(client)

    def one(index: int) -> None:
        started = time.perf_counter()
        _, created = enqueue_run(
            specs[index],
            store=store,
            broker_url=redis_url,
            idempotency_key=f"{prefix}-{index}",
        )
        latency = time.perf_counter() - started
        with lock:
            latencies.append(latency)
            outcomes["created" if created else "existing"] += 1

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            started = time.perf_counter()
            list(pool.map(one, range(total)))
            elapsed = time.perf_counter() - started
    finally:
        client.close()
    return elapsed, latencies, outcomes


def counts(redis_url: str) -> tuple[int, int]:
    """(runs in the store, tasks waiting on the chain queue)."""
    with redis.Redis.from_url(redis_url) as connection:
        return int(connection.zcard("orch:runs")), int(connection.llen(CHAIN_QUEUE))


def flush(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as connection:
        connection.flushall()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def phase_summary(
    total: int, elapsed: float, latencies: list[float], runs: int, queued: int
) -> dict[str, Any]:
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(total / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p90": round(percentile(latencies, 0.90) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2),
        },
        "runs_created": runs,
        "first_tasks_queued": queued,
    }


def print_phase(label: str, phase: dict[str, Any]) -> None:
    latency = phase["latency_ms"]
    print(
        f"{label:<8} {phase['requests_per_second']:>8.0f} requests/s ({phase['seconds']:.2f} s)  "
        f"latency ms p50 {latency['p50']:.1f}  p90 {latency['p90']:.1f}  "
        f"p99 {latency['p99']:.1f}  mean {latency['mean']:.1f}  "
        f"runs {phase['runs_created']}, queued {phase['first_tasks_queued']}"
    )


async def measure_api(
    redis_url: str, args: argparse.Namespace, workdir: Path
) -> tuple[float, list[float], Counter[int]]:
    port = free_port()
    process = start_api(redis_url, port, args.workers, workdir)
    limits = httpx.Limits(max_connections=args.concurrency)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            limits=limits,
            timeout=30,
        ) as client:
            await wait_until_ready(client, process)
            await load(client, args.warmup, args.concurrency)  # connections, caches
            flush(redis_url)  # measure only the measured requests
            if args.as_key:
                # A named key (no rate): each request then looks its digest up in Redis.
                created = await client.post(
                    "/v1/keys", json={"name": "bench", "scopes": ["submit"]}
                )
                assert created.status_code == 201, created.text
                client.headers["Authorization"] = f"Bearer {created.json()['key']}"
            return await load(client, args.requests, args.concurrency)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    parser.add_argument(
        "--as-key", action="store_true", help="submit with a named API key, not ORCH_API_TOKEN"
    )
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    # The same log level as the API process (start_api): direct enqueue must not
    # pay for log lines the API does not write.
    configure_logging("WARNING")

    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        elapsed, latencies, statuses = asyncio.run(measure_api(server.url, args, Path(tmp)))
        api_runs, api_queued = counts(server.url)

        flush(server.url)
        load_direct(server.url, args.warmup, args.concurrency, "warmup")  # pool, producer
        flush(server.url)
        direct_elapsed, direct_latencies, outcomes = load_direct(
            server.url, args.requests, args.concurrency, "direct"
        )
        direct_runs, direct_queued = counts(server.url)

    api = phase_summary(args.requests, elapsed, latencies, api_runs, api_queued)
    api["statuses"] = {str(code): n for code, n in sorted(statuses.items())}
    direct = phase_summary(
        args.requests, direct_elapsed, direct_latencies, direct_runs, direct_queued
    )
    direct["outcomes"] = dict(outcomes)
    summary = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "uvicorn_workers": args.workers,
        "credential": "api key" if args.as_key else "ORCH_API_TOKEN",
        "cpus": os.cpu_count(),
        "api": api,
        "direct": direct,
        # Throughput ratio: 1.0 would mean HTTP + FastAPI + uvicorn cost nothing.
        "ratio_api_to_direct": round(api["requests_per_second"] / direct["requests_per_second"], 3),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"requests:     {args.requests} per phase at concurrency {args.concurrency}, "
            f"{args.workers} uvicorn worker(s), {os.cpu_count()} CPUs"
        )
        print(f"API statuses: {api['statuses']}; direct: {direct['outcomes']}")
        print_phase("API", api)
        print_phase("direct", direct)
        print(f"ratio API/direct throughput: {summary['ratio_api_to_direct']:.2f}")
    failed = []
    if statuses != Counter({202: args.requests}) or not api_queued == api_runs == args.requests:
        failed.append("API")
    if outcomes != Counter({"created": args.requests}) or not (
        direct_queued == direct_runs == args.requests
    ):
        failed.append("direct")
    if failed:
        raise SystemExit(
            f"FAILED ({', '.join(failed)}): not every request created and enqueued exactly one run"
        )


if __name__ == "__main__":
    main()
