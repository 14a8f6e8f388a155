"""A burst against a rate-limited key, across two API processes sharing the count.

Starts its own redis-server and two `orchestrator api` processes (free ports),
creates a key `--rate` (default 5/s) with the bootstrap token, then:

1. burst: sends --requests POST /v1/runs at once (--concurrency workers, the
   requests alternating between the two processes), no retries: counts 202s and
   429s, checks every 429 carried Retry-After and that Redis holds exactly one
   run per 202 (a refused request writes nothing);
2. paced: the same number of new submissions, each retried on 429 after its
   Retry-After, with the same Idempotency-Key: measures the time until all are
   accepted, hence the accepted rate, which the limit should hold near --rate.

Prints a summary (`--json`: one JSON object). Everything runs on 127.0.0.1.

    .venv/bin/python benchmarks/rate_limit_burst.py --requests 50 --rate 5/s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.devstack.redis_server import RedisServer, free_port
from orchestrator.store import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue_throughput import SPEC, TOKEN, start_api, wait_until_ready

ADMIN = {"Authorization": f"Bearer {TOKEN}"}


# A pooled connection that sat idle through a Retry-After as long as uvicorn's
# keep-alive (5 s) can be closed by the server just as it is reused: the
# request is sent again (the Idempotency-Key makes that safe).
CONNECTION_RETRIES = 2


async def _submit(client: httpx.AsyncClient, key: str, index: int, tag: str) -> httpx.Response:
    for attempt in range(CONNECTION_RETRIES + 1):
        try:
            return await client.post(
                "/v1/runs",
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"{tag}-{index}"},
                json={"spec": SPEC, "parameters": {"seed": index}},
            )
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == CONNECTION_RETRIES:
                raise
    raise AssertionError("unreachable")


async def burst(clients: list[httpx.AsyncClient], key: str, requests: int) -> dict[str, Any]:
    answers = await asyncio.gather(
        *(_submit(clients[i % len(clients)], key, i, "burst") for i in range(requests))
    )
    statuses = Counter(str(answer.status_code) for answer in answers)
    refused = [answer for answer in answers if answer.status_code == 429]
    return {
        "statuses": dict(statuses),
        "refused_with_retry_after": sum(1 for a in refused if "retry-after" in a.headers),
        "retry_after_values": sorted({int(a.headers["retry-after"]) for a in refused}),
    }


async def paced(
    clients: list[httpx.AsyncClient], key: str, requests: int, concurrency: int
) -> dict[str, Any]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    refusals = 0
    accepted_at: list[float] = []

    async def worker(slot: int) -> None:
        nonlocal refusals
        client = clients[slot % len(clients)]
        while not queue.empty():
            index = queue.get_nowait()
            while True:
                answer = await _submit(client, key, index, "paced")
                if answer.status_code != 429:
                    assert answer.status_code == 202, answer.text
                    accepted_at.append(time.monotonic())
                    break
                refusals += 1
                await asyncio.sleep(int(answer.headers["retry-after"]))

    started = time.monotonic()
    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    seconds = max(accepted_at) - started
    return {
        "accepted": len(accepted_at),
        "refusals_429": refusals,
        "seconds": round(seconds, 3),
        "accepted_per_second": round(len(accepted_at) / seconds, 2),
    }


async def measure(urls: list[str], processes: list[Any], args: argparse.Namespace) -> Any:
    clients = [httpx.AsyncClient(base_url=url, timeout=30.0) for url in urls]
    try:
        for client, process in zip(clients, processes, strict=True):
            await wait_until_ready(client, process)
        created = await clients[0].post(
            "/v1/keys",
            headers=ADMIN,
            json={"name": "burst", "scopes": ["submit"], "rate": args.rate},
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        first = await burst(clients, key, args.requests)
        # Let the window empty, so the paced phase starts from a full allowance.
        await asyncio.sleep(args.window_seconds)
        second = await paced(clients, key, args.requests, args.concurrency)
        return first, second
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rate", default="5/s")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--window-seconds", type=float, default=1.0, help="the rate's window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        workdir = Path(tmp)
        processes = []
        urls = []
        try:
            for _ in range(2):
                port = free_port()
                processes.append(start_api(server.url, port, 1, workdir))
                urls.append(f"http://127.0.0.1:{port}")
            first, second = asyncio.run(measure(urls, processes, args))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
        client = redis.Redis.from_url(server.url)
        runs = int(client.zcard(RunStore(client).keys.runs))
        client.close()
    accepted = int(first["statuses"].get("202", 0))
    assert runs == accepted + second["accepted"], (runs, accepted, second)
    assert first["refused_with_retry_after"] == int(first["statuses"].get("429", 0))
    summary = {
        "requests": args.requests,
        "rate": args.rate,
        "api_processes": 2,
        "burst": first,
        "paced": second,
        "runs_in_redis": runs,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"rate {args.rate}, {args.requests} requests, 2 API processes sharing the count")
    print(
        f"burst: {first['statuses']} (every 429 with Retry-After "
        f"{first['retry_after_values']} s); runs created {accepted}"
    )
    print(
        f"paced (retry after Retry-After): {second['accepted']} accepted in "
        f"{second['seconds']} s = {second['accepted_per_second']}/s, "
        f"{second['refusals_429']} 429s on the way"
    )
    print(f"runs in Redis: {runs} (= accepted in both phases)")


if __name__ == "__main__":
    main()
