"""Upload throughput through the API vs a direct SDK upload of the same files, in one run.

Starts its own redis-server, the emulator and `orchestrator api` (real
processes, free ports on 127.0.0.1), writes --files random files of --mib MiB,
then, for --rounds rounds, alternately:

- direct: azure-storage-file's FileService.create_file_from_path for each file
  (4 MiB ranges, one connection: what the orchestrator's own uploads do), to a
  fresh folder of the share;
- API: OrchestratorClient.upload(folder) on files of fresh content (so every
  byte is sent): hashing, POST /v1/uploads, one PUT per file streamed through
  the API into the share, and the commit.

The median of each is reported as MiB/s, with the ratio API/direct. A last
API upload of unchanged files measures what a resubmission costs (nothing is
sent). Every upload is checked: the emulator received exactly the bytes.

    .venv/bin/python benchmarks/upload_throughput.py --files 8 --mib 8 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from emulator.testing import EmulatorProcess, file_service
from orchestrator.client import OrchestratorClient
from orchestrator.devstack.redis_server import RedisServer, free_port
from orchestrator.inputs.local import scan

TOKEN = "benchmark-token"
SHARE = "bench"
READY_TIMEOUT_SECONDS = 30.0


def start_api(env: dict[str, str], port: int, workdir: Path) -> subprocess.Popen[bytes]:
    orchestrator = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    command = [orchestrator] if orchestrator else [sys.executable, "-m", "orchestrator.cli"]
    return subprocess.Popen(
        [*command, "api", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"orchestrator api exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("orchestrator api did not become ready")


def write_files(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"part-{index:03d}.bin").write_bytes(os.urandom(size))


def direct_upload(files: Any, folder: Path, target: str) -> float:
    files.create_directory(SHARE, target)
    started = time.perf_counter()
    for path in sorted(folder.iterdir()):
        files.create_file_from_path(SHARE, target, path.name, str(path), max_connections=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=float, default=8.0, help="size of each file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    if args.files < 1 or args.mib <= 0 or args.rounds < 1:
        parser.error("--files, --mib and --rounds must be positive")
    size = int(args.mib * 1024 * 1024)
    total = args.files * size

    with (
        tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp,
        RedisServer() as redis_server,
        EmulatorProcess(Path(tmp) / "emulator", "--provision-seconds", "0") as emulator,
    ):
        workdir = Path(tmp)
        env = {
            **os.environ,
            **emulator.env,
            "REDIS_URL": redis_server.url,
            "AZURE_FILE_SHARE": SHARE,
            "ORCH_API_TOKEN": TOKEN,
            "ORCH_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_api(env, port, workdir)
        files = file_service(emulator.env)
        files.create_share(SHARE)
        direct_seconds: list[float] = []
        api_seconds: list[float] = []
        hash_seconds: list[float] = []
        try:
            wait_until_ready(url, process)
            with OrchestratorClient(url, token=TOKEN, timeout=120) as api:
                for round_index in range(args.rounds):
                    folder = workdir / f"data-{round_index}"
                    write_files(folder, args.files, size)
                    before = emulator.stats()["bytes_uploaded"]
                    direct_seconds.append(direct_upload(files, folder, f"direct-{round_index}"))
                    assert emulator.stats()["bytes_uploaded"] - before == total
                    started = time.perf_counter()
                    scan(folder)  # what the client's hashing alone costs
                    hash_seconds.append(time.perf_counter() - started)
                    before = emulator.stats()["bytes_uploaded"]
                    started = time.perf_counter()
                    api.upload(folder)
                    api_seconds.append(time.perf_counter() - started)
                    assert api.last_upload.sent_bytes == total
                    assert emulator.stats()["bytes_uploaded"] - before == total
                started = time.perf_counter()
                api.upload(workdir / "data-0")  # unchanged: nothing is sent
                resubmit_seconds = time.perf_counter() - started
                assert api.last_upload.sent_bytes == 0
        finally:
            process.terminate()
            process.wait(timeout=10)

    mib = total / 1024 / 1024
    direct = statistics.median(direct_seconds)
    through_api = statistics.median(api_seconds)
    summary = {
        "files": args.files,
        "mib_per_file": args.mib,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "direct_mib_per_second": round(mib / direct, 1),
        "api_mib_per_second": round(mib / through_api, 1),
        # 1.0 would mean going through the API (and hashing first) cost nothing.
        "ratio_api_to_direct": round(direct / through_api, 3),
        "client_hash_seconds": round(statistics.median(hash_seconds), 3),
        "resubmit_seconds": round(resubmit_seconds, 3),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"{args.files} files x {args.mib:g} MiB, median of {args.rounds} rounds: "
        f"direct SDK {summary['direct_mib_per_second']} MiB/s, through the API "
        f"{summary['api_mib_per_second']} MiB/s (ratio {summary['ratio_api_to_direct']}); "
        f"hashing alone {summary['client_hash_seconds']} s; "
        f"resubmitting unchanged files {summary['resubmit_seconds']} s (0 bytes sent)"
    )


if __name__ == "__main__":
    main()
