"""Enqueue throughput: raw Celery send_task, direct enqueue_run and POST /v1/runs, in one run.

Starts its own redis-server (free port) and `orchestrator api` (a real uvicorn
process, free port, `--workers` processes). For each concurrency of
`--concurrency` (default 1,16,64) three phases of --requests each, against the
same Redis (flushed before each):

1. **raw**: Celery's `send_task` of the first step (`queue.send_step`, the
   cached producer app) from that many threads: the broker's own rate, the
   floor of any enqueue.
2. **direct**: `orchestrator.chain.enqueue.enqueue_run` (what the API handler
   calls) from that many threads, one shared Redis pool.
3. **API**: POST /v1/runs with distinct Idempotency-Keys from that many asyncio
   clients (httpx, keep-alive), after --warmup unmeasured ones.

Each phase is checked: every request created one run (raw: none) and queued its
first task. Prints requests/s and latency percentiles of each and the ratios
direct/raw and API/direct at each concurrency (`--json`: one JSON object
instead). Everything runs on 127.0.0.1 and stops by itself.

    .venv/bin/python benchmarks/enqueue_throughput.py --requests 2000 --concurrency 1,16,64
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
import psutil
import redis

from orchestrator.chain.enqueue import enqueue_run
from orchestrator.chain.queue import CHAIN_QUEUE, send_step
from orchestrator.devstack.redis_server import RedisServer, free_port
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import STEP_ORDER
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
    port: int, token: str, total: int, concurrency: int, prefix: str = "bench"
) -> tuple[float, list[float], Counter[int]]:
    """POST /v1/runs `total` times over `concurrency` keep-alive connections.

    A bare HTTP/1.1 client on asyncio streams (a request is a few bytes written,
    a response a header block and a Content-Length body read): it costs the
    client about a tenth of what httpx does, so on a small machine the
    figure is the server's and not the load generator's."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = json.dumps({"spec": SPEC, "parameters": {"seed": index}}).encode()
                request = (
                    "POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {token}\r\nIdempotency-Key: {prefix}-{index}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[int(head.split(b" ", 2)[1])] += 1
        finally:
            writer.close()

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


def load_raw(redis_url: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Celery send_task of the first step, `total` times from `concurrency` threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        started = time.perf_counter()
        send_step(redis_url, STEP_ORDER[0], f"raw-{index}")
        latency = time.perf_counter() - started
        with lock:
            latencies.append(latency)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        started = time.perf_counter()
        list(pool.map(one, range(total)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


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
    redis_url: str,
    port: int,
    process: subprocess.Popen[bytes],
    args: argparse.Namespace,
    concurrency: int,
) -> tuple[float, list[float], Counter[int], float]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as client:
        await wait_until_ready(client, process)
        await load(port, TOKEN, args.warmup, concurrency, "warmup")  # connections, caches
        flush(redis_url)  # measure only the measured requests
        token = TOKEN
        if args.as_key:
            # A named key (no rate): each request then looks its digest up in Redis.
            created = await client.post("/v1/keys", json={"name": "bench", "scopes": ["submit"]})
            assert created.status_code == 201, created.text
            token = created.json()["key"]
    cpu_before = server_cpu_seconds(process)
    elapsed, latencies, statuses = await load(port, token, args.requests, concurrency)
    cpu_ms = (server_cpu_seconds(process) - cpu_before) * 1000 / args.requests
    return elapsed, latencies, statuses, cpu_ms


def server_cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) of `orchestrator api` and its uvicorn workers so far."""
    root = psutil.Process(process.pid)
    total = 0.0
    for member in [root, *root.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure_level(
    redis_url: str,
    port: int,
    process: subprocess.Popen[bytes],
    args: argparse.Namespace,
    concurrency: int,
) -> tuple[dict[str, Any], list[str]]:
    """raw, direct and API at one concurrency; (figures, the phases that failed their check)."""
    n = args.requests
    failed = []
    flush(redis_url)
    load_raw(redis_url, args.warmup, concurrency)  # producer app, pool
    flush(redis_url)
    raw_elapsed, raw_latencies = load_raw(redis_url, n, concurrency)
    raw_runs, raw_queued = counts(redis_url)
    raw = phase_summary(n, raw_elapsed, raw_latencies, raw_runs, raw_queued)
    if raw_queued != n or raw_runs != 0:
        failed.append(f"raw at {concurrency}")

    flush(redis_url)
    load_direct(redis_url, args.warmup, concurrency, "warmup")  # pool, scripts
    flush(redis_url)
    direct_elapsed, direct_latencies, outcomes = load_direct(redis_url, n, concurrency, "direct")
    direct_runs, direct_queued = counts(redis_url)
    direct = phase_summary(n, direct_elapsed, direct_latencies, direct_runs, direct_queued)
    direct["outcomes"] = dict(outcomes)
    if outcomes != Counter({"created": n}) or not direct_queued == direct_runs == n:
        failed.append(f"direct at {concurrency}")

    flush(redis_url)
    elapsed, latencies, statuses, cpu_ms = asyncio.run(
        measure_api(redis_url, port, process, args, concurrency)
    )
    api_runs, api_queued = counts(redis_url)
    api = phase_summary(n, elapsed, latencies, api_runs, api_queued)
    api["statuses"] = {str(code): count for code, count in sorted(statuses.items())}
    # What the server spent per request (all its processes): the figure the load
    # generator and the other processes on the machine do not move.
    api["server_cpu_ms_per_request"] = round(cpu_ms, 3)
    if statuses != Counter({202: n}) or not api_queued == api_runs == n:
        failed.append(f"API at {concurrency}")
    level = {
        "concurrency": concurrency,
        "raw": raw,
        "direct": direct,
        "api": api,
        # Throughput ratios: 1.0 would mean the layer above costs nothing.
        "ratio_direct_to_raw": round(direct["requests_per_second"] / raw["requests_per_second"], 3),
        "ratio_api_to_direct": round(api["requests_per_second"] / direct["requests_per_second"], 3),
    }
    return level, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="per phase and level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    parser.add_argument(
        "--as-key", action="store_true", help="submit with a named API key, not ORCH_API_TOKEN"
    )
    args = parser.parse_args()
    levels = [int(part) for part in str(args.concurrency).split(",") if part.strip()]
    if args.requests < 1 or not levels or min(levels) < 1:
        parser.error("--requests and every --concurrency must be at least 1")
    # The same log level as the API process (start_api): direct enqueue must not
    # pay for log lines the API does not write.
    configure_logging("WARNING")

    failed: list[str] = []
    rows = []
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        port = free_port()
        process = start_api(server.url, port, args.workers, Path(tmp))
        try:
            for concurrency in levels:
                level, level_failed = measure_level(server.url, port, process, args, concurrency)
                rows.append(level)
                failed += level_failed
        finally:
            process.terminate()
            process.wait(timeout=10)

    summary = {
        "requests": args.requests,
        "concurrencies": levels,
        "uvicorn_workers": args.workers,
        "credential": "api key" if args.as_key else "ORCH_API_TOKEN",
        "cpus": os.cpu_count(),
        "levels": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"requests: {args.requests} per phase, {args.workers} uvicorn worker(s), "
            f"{os.cpu_count()} CPUs, {summary['credential']}"
        )
        for level in rows:
            print(
                f"\nconcurrency {level['concurrency']}: direct/raw "
                f"{level['ratio_direct_to_raw']:.2f}, API/direct {level['ratio_api_to_direct']:.2f}"
            )
            for label in ("raw", "direct", "api"):
                print_phase(label, level[label])
            print(f"API server CPU per request: {level['api']['server_cpu_ms_per_request']} ms")
    if failed:
        raise SystemExit(
            f"FAILED ({', '.join(failed)}): not every request created and enqueued exactly one run"
        )


if __name__ == "__main__":
    main()
