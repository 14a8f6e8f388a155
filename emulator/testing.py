"""Helpers for tests that talk to the emulator through the real Azure SDKs.

    with start_emulator(tmp_path) as emu:          # in-process, background thread
        files = file_service(emu.env)
        arm = arm_client(emu.env)

    with EmulatorProcess(tmp_path) as emu:         # `orchestrator emulator` subprocess
        ...

Both expose .env (the KEY=VALUE set the CLI prints), .url, .ca_bundle,
.stats(), .set_faults(rules), .reset(state=False) and .stop().
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests
from azure.core.credentials import AccessToken

from emulator.core import EmulatorConfig
from emulator.server import Emulator

STARTUP_TIMEOUT_SECONDS = 60.0


class StaticTokenCredential:
    """A TokenCredential with a fixed bearer token: the emulator accepts any well-formed one."""

    def __init__(self, token: str = "emulator-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def arm_client(env: dict[str, str], **kwargs: Any) -> Any:
    """azure-mgmt-resource ResourceManagementClient pointed at the emulator."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    endpoint = env["AZURE_ARM_ENDPOINT"]
    kwargs.setdefault("connection_verify", env["REQUESTS_CA_BUNDLE"])
    return ResourceManagementClient(
        StaticTokenCredential(),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=endpoint,
        credential_scopes=[endpoint + "/.default"],
        **kwargs,
    )


def batchai_client(env: dict[str, str], **kwargs: Any) -> Any:
    """azure-mgmt-batchai 7.0.0 BatchAI client (azure-core based) pointed at the emulator."""
    from azure.mgmt.batchai import BatchAI

    endpoint = env["AZURE_ARM_ENDPOINT"]
    kwargs.setdefault("connection_verify", env["REQUESTS_CA_BUNDLE"])
    return BatchAI(
        StaticTokenCredential(),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=endpoint,
        credential_scopes=[endpoint + "/.default"],
        **kwargs,
    )


def file_service(env: dict[str, str], **kwargs: Any) -> Any:
    """azure-storage-file FileService from the emulator's connection string.

    It gets its own requests session trusting the emulator CA (and ignoring
    proxy variables), so several emulators with different CAs can coexist.
    """
    from azure.storage.file import FileService

    session = requests.Session()
    session.verify = env["REQUESTS_CA_BUNDLE"]
    session.trust_env = False
    return FileService(
        connection_string=env["AZURE_STORAGE_CONNECTION_STRING"], request_session=session, **kwargs
    )


class _ControlClient:
    url: str
    ca_bundle: str

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        with requests.Session() as session:
            session.trust_env = False
            response = session.request(
                method, f"{self.url}/_emulator/{path}", json=body, verify=self.ca_bundle, timeout=30
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


class RunningEmulator(_ControlClient):
    """An in-process emulator on a free port (see start_emulator)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.env = emulator.env()
        self.url = emulator.url
        self.ca_bundle = self.env["REQUESTS_CA_BUNDLE"]

    def stop(self) -> None:
        self.emulator.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(data_dir: Path, **config_overrides: Any) -> RunningEmulator:
    config = replace(EmulatorConfig(data_dir=Path(data_dir)), port=0, **config_overrides)
    emulator = Emulator(config)
    emulator.start()
    return RunningEmulator(emulator)


class EmulatorProcess(_ControlClient):
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


def parse_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value
    return env


def apply_env(env: dict[str, str]) -> dict[str, str]:
    """os.environ plus the emulator's variables, for launching clients as subprocesses."""
    merged = dict(os.environ)
    merged.update(env)
    return merged


__all__ = [
    "EmulatorProcess",
    "RunningEmulator",
    "StaticTokenCredential",
    "arm_client",
    "batchai_client",
    "file_service",
    "parse_env_file",
    "start_emulator",
]
