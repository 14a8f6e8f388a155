"""The embedded stack behind `orchestrator up` and `orchestrator demo`.

One supervisor process starts Redis (an embedded redis-server when REDIS_URL
is unset), the emulator (when no Azure credentials are configured), and the
API, worker and beat processes, all as its children. Stopping the supervisor
(Ctrl-C, SIGTERM, or leaving the `with` block) stops them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from emulator.process import EmulatorProcess
from orchestrator.devstack.processes import ChildProcess, cli_argv
from orchestrator.devstack.redis_server import RedisServer

AZURE_CREDENTIAL_KEYS = ("AZURE_CLIENT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ARM_ENDPOINT")


class StackError(RuntimeError):
    """A component of the stack failed to start or died."""


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Block the supervisor until predicate() holds.

    Only the supervisor (a CLI process, never a Celery worker) waits like this,
    for its own children to start listening.
    """
    deadline_event = threading.Event()
    timer = threading.Timer(timeout, deadline_event.set)
    timer.start()
    try:
        while not predicate():
            if deadline_event.wait(0.1):
                raise StackError(f"{what} did not become ready within {timeout:.0f}s")
    finally:
        timer.cancel()


@dataclass
class StackConfig:
    home: Path  # working folder: redis data, emulator data, logs, api token
    api_port: int = 8000  # 0 = no API
    worker_concurrency: int = 2
    with_beat: bool = True
    provision_seconds: float = 0.0
    # Added to every child's environment (the demo: fast polling, its artifacts folder).
    extra_env: dict[str, str] = field(default_factory=dict)


class Stack:
    def __init__(self, config: StackConfig, base_env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env: dict[str, str] = dict(os.environ if base_env is None else base_env)
        self.env.update(config.extra_env)
        self.children: list[ChildProcess] = []
        self.redis: RedisServer | None = None
        self.emulator: EmulatorProcess | None = None
        self.api_url: str | None = None
        self.api_token_file = config.home / "api-token"
        self.logs_dir = config.home / "logs"

    # ------------------------------------------------------------------ start
    def start(self) -> Stack:
        self.config.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        try:
            self._start_redis()
            if not any(self.env.get(key) for key in AZURE_CREDENTIAL_KEYS):
                self._start_emulator()
            self._spawn(
                "worker",
                ["worker", "--concurrency", str(self.config.worker_concurrency)],
            )
            if self.config.with_beat:
                self._spawn("beat", ["beat"], cwd=self.config.home)
            if self.config.api_port:
                self._start_api()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_redis(self) -> None:
        if self.env.get("REDIS_URL"):
            return
        self.redis = RedisServer(data_dir=self.config.home / "redis", appendonly=True)
        self.redis.start()
        self.env["REDIS_URL"] = self.redis.url

    def _start_emulator(self) -> None:
        try:
            self.emulator = EmulatorProcess(
                self.config.home / "emulator",
                "--provision-seconds",
                str(self.config.provision_seconds),
            )
        except (RuntimeError, TimeoutError) as exc:
            raise StackError(f"the emulator did not start: {exc}") from None
        # Its env file (endpoint, subscription, storage key, CA) is all a worker needs.
        self.env.update(self.emulator.env)

    def _start_api(self) -> None:
        token = self.env.get("ORCH_API_TOKEN") or secrets.token_urlsafe(24)
        self.env["ORCH_API_TOKEN"] = token
        # The token goes to a private file, never to the terminal or a log.
        self.api_token_file.touch(mode=0o600, exist_ok=True)
        self.api_token_file.chmod(0o600)  # touch() leaves an existing file's mode alone
        self.api_token_file.write_text(token + "\n")
        port = self.config.api_port
        child = self._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(port)])
        self.api_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if child.process.poll() is not None:
                raise StackError(f"the API exited; see {child.log_path}")
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, what="the API")

    def _spawn(self, name: str, args: list[str], cwd: Path | None = None) -> ChildProcess:
        child = ChildProcess.spawn(
            name, cli_argv(*args), env=self.env, log_path=self.logs_dir / f"{name}.log", cwd=cwd
        )
        self.children.append(child)
        return child

    # ----------------------------------------------------------------- health
    def dead_child(self) -> ChildProcess | None:
        """The first child that exited, if any."""
        watched = list(self.children)
        if self.emulator is not None:
            watched.append(ChildProcess("emulator", self.emulator.process, self.emulator.log_path))
        return next((c for c in watched if not c.alive()), None)

    # ------------------------------------------------------------------- stop
    def stop(self, timeout: float = 15.0) -> None:
        """Stop children in reverse start order: API and beat, worker, then emulator, Redis."""
        for child in reversed(self.children):
            child.send(signal.SIGTERM)
        for child in reversed(self.children):
            child.wait_stopped(timeout)
        self.children.clear()
        if self.emulator is not None:
            self.emulator.stop(timeout)
            self.emulator = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
