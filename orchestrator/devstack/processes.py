"""Child processes of the dev stack, the tests and the benchmarks: started with
their output in a log file, stopped politely, or killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def cli_argv(*args: str) -> list[str]:
    """`orchestrator ARGS...` run by this interpreter (works without the console script)."""
    return [sys.executable, "-m", "orchestrator.cli", *args]


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # In its own session (process group): signals reach its children too, e.g.
    # a Celery worker's pool, so a SIGKILL leaves nothing running.
    own_group: bool = False

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        own_group: bool = False,
    ) -> ChildProcess:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=own_group,
            )
        return cls(name, process, log_path, own_group)

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, signum: signal.Signals) -> None:
        if not self.alive():
            return
        if self.own_group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def wait_stopped(self, timeout: float) -> None:
        """Wait for the exit a SIGTERM asked for; SIGKILL after `timeout` seconds."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def stop(self, timeout: float = 20.0) -> None:
        self.send(signal.SIGTERM)
        self.wait_stopped(timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acks, no goodbyes."""
        self.send(signal.SIGKILL)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
