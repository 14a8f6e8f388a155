"""Helpers for tests that talk to the emulator through the real Azure SDKs.

    with start_emulator(tmp_path) as emu:          # in-process, background thread
        files = file_service(emu.env)
        arm = arm_client(emu.env)

    with EmulatorProcess(tmp_path) as emu:         # `orchestrator emulator` subprocess
        ...

    clock = ManualClock()                          # time moves only on clock.advance(s)
    with start_emulator(tmp_path, clock=clock) as emu:
        ...

Both expose .env (the KEY=VALUE set the CLI prints), .url, .ca_bundle, .access_token
(the bearer token ARM, Batch AI and control calls need; also env["AZURE_EMULATOR_TOKEN"]),
.stats(), .set_faults(rules), .reset(state=False) and .stop().
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests
from azure.core.credentials import AccessToken

from emulator.core import EmulatorConfig
from emulator.envfile import parse_env_file
from emulator.process import ControlClient, EmulatorProcess
from emulator.server import Emulator


class StaticTokenCredential:
    """A TokenCredential with a fixed bearer token (the emulator's AZURE_EMULATOR_TOKEN)."""

    def __init__(self, token: str) -> None:
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

    return _mgmt_client(ResourceManagementClient, env, **kwargs)


def batchai_client(env: dict[str, str], **kwargs: Any) -> Any:
    """azure-mgmt-batchai 7.0.0 BatchAI client (azure-core based) pointed at the emulator."""
    from azure.mgmt.batchai import BatchAI

    return _mgmt_client(BatchAI, env, **kwargs)


def _mgmt_client(client_class: Any, env: dict[str, str], **kwargs: Any) -> Any:
    """An azure-core management client: static token, the emulator's endpoint and CA."""
    endpoint = env["AZURE_ARM_ENDPOINT"]
    kwargs.setdefault("connection_verify", env["REQUESTS_CA_BUNDLE"])
    return client_class(
        StaticTokenCredential(env["AZURE_EMULATOR_TOKEN"]),
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


class ManualClock:
    """An EmulatorConfig.clock that stands still until advanced: node provisioning,
    preemption and maxWallClockTime then happen when a test says, not when a loaded
    machine gets round to it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class RunningEmulator(ControlClient):
    """An in-process emulator on a free port (see start_emulator)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.env = emulator.env()
        self.url = emulator.url
        self.ca_bundle = self.env["REQUESTS_CA_BUNDLE"]
        self.access_token = self.env["AZURE_EMULATOR_TOKEN"]

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


def apply_env(env: dict[str, str]) -> dict[str, str]:
    """os.environ plus the emulator's variables, for launching clients as subprocesses."""
    merged = dict(os.environ)
    merged.update(env)
    return merged


__all__ = [
    "EmulatorProcess",
    "ManualClock",
    "RunningEmulator",
    "StaticTokenCredential",
    "arm_client",
    "batchai_client",
    "file_service",
    "parse_env_file",
    "start_emulator",
]
