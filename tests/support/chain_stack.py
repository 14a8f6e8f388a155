"""Helpers of the chain integration tests: worker subprocesses, the Stack."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from emulator.testing import EmulatorProcess
from orchestrator.chain.enqueue import direct_uploads, enqueue_run
from orchestrator.devstack.processes import ChildProcess, cli_argv
from orchestrator.domain.spec import RunSpec, parse_spec
from orchestrator.domain.status import Step
from orchestrator.inputs.submit import upload_local_inputs
from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore
from orchestrator.store.connection import RedisTarget, redis_client

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Short knobs so a run takes seconds: polls start at 0.2 s and stay under 1 s;
# a killed worker's step is re-driven about 3 s after its last renewal.
# test_chain_resilience also proves recovery with every setting at its default.
WORKER_SETTINGS = {
    "ORCH_POLL_INITIAL_SECONDS": "0.2",
    "ORCH_POLL_MAX_SECONDS": "1",
    "ORCH_POLL_BACKOFF": "1.5",
    "ORCH_LEASE_SECONDS": "2",
    "ORCH_REDRIVE_AFTER_SECONDS": "2",
    "ORCH_REDRIVE_INTERVAL_SECONDS": "0.5",
    "ORCH_STEP_MAX_RETRIES": "30",
    "ORCH_LOG_LEVEL": "INFO",
}
RUN_TIMEOUT = 120.0

TRAIN_SCRIPT = """\
import argparse, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--exit_code", type=int, default=0)
parser.add_argument("--seconds", type=float, default=0)
args = parser.parse_args()
print("Finished Epoch[1 of 2]: [Training] loss = 0.500000 * 100, metric = 12.00% * 100")
print("Finished Epoch[2 of 2]: [Training] loss = 0.250000 * 100, metric = 6.00% * 100")
print("accuracy=0.94")
time.sleep(args.seconds)
model = os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "ConvNet_MNIST.model")
os.makedirs(os.path.dirname(model), exist_ok=True)
with open(model, "w") as handle:
    handle.write("trained weights")
print("error text", file=sys.stderr)
sys.exit(args.exit_code)
"""


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_worker_process(
    env: dict[str, str],
    log_path: Path,
    *,
    concurrency: int = 1,
    hold_after: Step | None = None,
) -> ChildProcess:
    """`orchestrator worker` in its own process group (SIGKILL takes the pool too);
    with `hold_after`, the test worker that stops after that step's Azure work."""
    pool = "solo" if concurrency == 1 else "prefork"
    if hold_after is None:
        argv = cli_argv("worker", "--concurrency", str(concurrency), "--pool", pool)
    else:
        argv = [sys.executable, "-m", "tests.support.held_worker"]
        argv += [hold_after.value, str(concurrency), pool]
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env = {**env, "PYTHONPATH": pythonpath}
    return ChildProcess.spawn("worker", argv, env=env, log_path=log_path, own_group=True)


class Stack:
    """Everything a chain test touches: store, emulator, workers, job inputs."""

    def __init__(
        self, emulator: EmulatorProcess, redis_url: RedisTarget | str, tmp_path: Path
    ) -> None:
        self.emulator = emulator
        # A plain REDIS_URL, or a sentinel:// one with its master name and password.
        self.target = RedisTarget.of(redis_url)
        self.redis_url = self.target.url
        self.tmp_path = tmp_path
        self.artifacts = tmp_path / "artifacts"
        self.client = redis_client(self.target)
        self.store = RunStore(self.client)
        self.workers: list[ChildProcess] = []
        self.code_dir = tmp_path / "code"
        self.code_dir.mkdir()
        (self.code_dir / "train.py").write_text(TRAIN_SCRIPT)
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir()
        (self.data_dir / "train.txt").write_text("0 1 2 3\n" * 200)

    def env(self, *, defaults: bool = False, **extra: str) -> dict[str, str]:
        """The workers' environment; `defaults` leaves every ORCH_* knob at its default."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env.update(self.emulator.env)
        if not defaults:
            env.update(WORKER_SETTINGS)
        env.update(REDIS_URL=self.redis_url, ORCH_ARTIFACTS_DIR=str(self.artifacts))
        env.update(ORCH_REDIS_SENTINEL_MASTER=self.target.sentinel_master)
        if self.target.sentinel_password:
            env.update(ORCH_REDIS_SENTINEL_PASSWORD=self.target.sentinel_password)
        env.update(extra)
        return env

    def start_worker(
        self,
        *,
        concurrency: int = 1,
        hold_after: Step | None = None,
        defaults: bool = False,
        **extra_env: str,
    ) -> ChildProcess:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        env = self.env(defaults=defaults, **extra_env)
        worker = start_worker_process(env, log, concurrency=concurrency, hold_after=hold_after)
        self.workers.append(worker)
        return worker

    def spec(self, name: str = "mnist", **parameters: Any) -> RunSpec:
        return parse_spec(
            {
                "name": name,
                "cluster": {"vm_size": "STANDARD_NC6", "node_count": 1},
                "job": {"toolkit": "cntk", "script": "train.py", "max_wall_clock": "PT10M"},
                "inputs": {"SCRIPTS": str(self.code_dir), "DATA": str(self.data_dir)},
                "outputs": ["MODEL"],
                "parameters": parameters,
            }
        )

    def settings(self, **extra: Any) -> Settings:
        """Settings of a process of this stack (the emulator's Azure names, this Redis)."""
        values: dict[str, Any] = {**self.emulator.env, "REDIS_URL": self.redis_url}
        values["ORCH_ARTIFACTS_DIR"] = str(self.artifacts)
        return Settings(_env_file=None, **{**values, **extra})

    def upload(self, spec: RunSpec) -> RunSpec:
        """`spec` with its local inputs uploaded, as a submitter on this machine does."""
        uploaded, _ = upload_local_inputs(spec, direct_uploads(self.settings(), self.store))
        return uploaded

    def uploaded_spec(self, name: str = "mnist", **parameters: Any) -> RunSpec:
        """spec(), its local inputs uploaded: what a schedule or an HTTP body carries."""
        return self.upload(self.spec(name, **parameters))

    def submit(self, spec: RunSpec | None = None) -> str:
        """Enqueue as a submitter on this machine does: local inputs uploaded first."""
        uploaded = self.upload(spec or self.spec())
        record, created = enqueue_run(uploaded, store=self.store, broker_url=self.target)
        assert created
        return record.run_id

    def wait_terminal(self, run_id: str, timeout: float = RUN_TIMEOUT) -> RunRecord:
        def finished() -> RunRecord | None:
            record = self.store.get(run_id)
            return record if record.terminal else None

        try:
            return wait_for(finished, timeout, f"run {run_id} to end")
        except BaseException:
            for worker in self.workers:
                print(f"--- {worker.log_path.name} (tail)\n{worker.log()[-6000:]}")
            print(self.store.get(run_id).model_dump_json(indent=1))
            raise

    def stats(self) -> dict[str, Any]:
        return self.emulator.stats()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.client.close()
