"""Enqueue throughput of `orchestrator api`: POST /v1/runs at a fixed concurrency.

Starts its own redis-server (free port) and `orchestrator api` (a real uvicorn
process, free port), sends --requests POSTs with distinct Idempotency-Keys from
--concurrency asyncio workers (httpx), then checks that every accepted run was
created and its first task queued, and prints requests/s and latency
percentiles. Everything runs on 127.0.0.1 and stops by itself.

    .venv/bin/python benchmarks/enqueue_throughput.py --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import redis

from orchestrator.enqueue import CHAIN_QUEUE
from orchestrator.redis_server import RedisServer, free_port

TOKEN = "benchmark-token"
SPEC = {
    "name": "mnist-convnet",
    "job": {"script": "ConvNet_MNIST.py", "args": ["$AZ_BATCHAI_INPUT_SAMPLE"]},
    "inputs": {"SAMPLE": "/data/mnist"},
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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        port = free_port()
        process = start_api(server.url, port, args.workers, Path(tmp))
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
                with redis.Redis.from_url(server.url) as connection:
                    connection.flushall()  # measure only the measured requests
                elapsed, latencies, statuses = await load(client, args.requests, args.concurrency)
        finally:
            process.terminate()
            process.wait(timeout=10)

        connection = redis.Redis.from_url(server.url)
        queued = int(connection.llen(CHAIN_QUEUE))
        runs = int(connection.zcard("orch:runs"))
        connection.close()

    print(
        f"requests:     {args.requests} at concurrency {args.concurrency}, "
        f"{args.workers} uvicorn worker(s), {os.cpu_count()} CPUs"
    )
    print(f"statuses:     {dict(sorted(statuses.items()))}")
    print(f"throughput:   {args.requests / elapsed:.0f} requests/s ({elapsed:.2f} s)")
    print(
        "latency (ms): "
        f"p50 {percentile(latencies, 0.50) * 1000:.1f}  "
        f"p90 {percentile(latencies, 0.90) * 1000:.1f}  "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f}  "
        f"mean {statistics.fmean(latencies) * 1000:.1f}"
    )
    print(f"runs created: {runs}; first tasks queued on '{CHAIN_QUEUE}': {queued}")
    if statuses != Counter({202: args.requests}) or not queued == runs == args.requests:
        raise SystemExit("FAILED: not every request created and enqueued exactly one run")


if __name__ == "__main__":
    asyncio.run(main())
