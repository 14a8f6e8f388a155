"""Running the emulator as a separate process, and talking to its control endpoints.

Used by `orchestrator up` / `demo` and by the tests (through emulator.testing).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import requests

from emulator.envfile import parse_env_file

STARTUP_TIMEOUT_SECONDS = 60.0


class ControlClient:
    """GET /_emulator/stats, faults and reset, trusting the emulator's own CA."""

    url: str
    ca_bundle: str
    access_token: str

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header ARM, Batch AI and control calls need."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        with requests.Session() as session:
            session.trust_env = False
            response = session.request(
                method,
                f"{self.url}/_emulator/{path}",
                json=body,
                headers=self.auth_headers,
                verify=self.ca_bundle,
                timeout=30,
            )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "stats")
        return result

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._control("POST", "faults", {"rules": rules})

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def reset(self, state: bool = False) -> None:
        self._control("POST", "reset", {"state": state})


class EmulatorProcess(ControlClient):
    """`orchestrator emulator --port 0 --env-file F` as a subprocess; waits until it serves."""

    def __init__(
        self,
        data_dir: Path,
        *extra_args: str,
        env_file: Path | None = None,
        timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env_file = env_file or data_dir / "emulator.env"
        self.env_file.unlink(missing_ok=True)
        self.log_path = data_dir / "emulator.log"
        command = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "emulator",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--env-file",
            str(self.env_file),
            *extra_args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self.env = self._wait_for_env(timeout)
        except BaseException:
            self.stop()
            raise
        self.url = self.env["AZURE_ARM_ENDPOINT"]
        self.ca_bundle = self.env["REQUESTS_CA_BUNDLE"]
        self.access_token = self.env["AZURE_EMULATOR_TOKEN"]

    def _wait_for_env(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.env_file.is_file():
                return parse_env_file(self.env_file)
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"emulator exited with {self.process.returncode}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        raise TimeoutError(f"emulator did not write {self.env_file} within {timeout}s")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.stop()
