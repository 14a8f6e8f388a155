"""Serving details: request ids, keep-alive, error shapes, the in-process and subprocess helpers."""

from __future__ import annotations

import contextlib
import http.client
import ssl
from pathlib import Path

import requests

from emulator.testing import EmulatorProcess, RunningEmulator, file_service, start_emulator


def test_every_response_has_a_request_id_and_arm_a_correlation_id(
    emulator: RunningEmulator,
) -> None:
    files = requests.get(f"{emulator.url}/nothing", verify=emulator.ca_bundle, timeout=30)
    assert files.headers["x-ms-request-id"]
    assert "x-ms-correlation-request-id" not in files.headers
    arm = requests.get(
        f"{emulator.url}/subscriptions/x/resourcegroups", verify=emulator.ca_bundle, timeout=30
    )
    assert arm.headers["x-ms-request-id"] != files.headers["x-ms-request-id"]
    assert arm.headers["x-ms-correlation-request-id"]


def test_keep_alive_serves_several_requests_on_one_connection(emulator: RunningEmulator) -> None:
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    port = int(emulator.url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        for _ in range(3):
            conn.request("GET", "/_emulator/health")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        assert conn.sock is not None  # still the same open connection
    finally:
        conn.close()


def test_unknown_files_operation_is_storage_xml(emulator: RunningEmulator) -> None:
    response = requests.post(f"{emulator.url}/data/file", verify=emulator.ca_bundle, timeout=30)
    assert response.status_code == 400
    assert response.headers["x-ms-error-code"]
    assert response.content.startswith(b"<?xml")


def test_unknown_control_path_is_a_control_404_not_a_share(emulator: RunningEmulator) -> None:
    response = requests.get(
        f"{emulator.url}/_emulator/nothing", verify=emulator.ca_bundle, timeout=30
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"
    assert "Emulator_Unmatched" not in emulator.stats()["requests"]  # control is not counted


def test_storage_key_is_generated_once_per_data_dir(tmp_path: Path) -> None:
    with start_emulator(tmp_path) as first:
        key = first.env["AZURE_STORAGE_KEY"]
    with start_emulator(tmp_path) as second:
        assert second.env["AZURE_STORAGE_KEY"] == key
    with start_emulator(tmp_path / "other") as third:
        assert third.env["AZURE_STORAGE_KEY"] != key
    with start_emulator(tmp_path, storage_key="a2V5") as configured:
        assert configured.env["AZURE_STORAGE_KEY"] == "a2V5"


def test_emulator_process_serves_the_sdks(tmp_path: Path) -> None:
    with EmulatorProcess(tmp_path / "emu") as emu:
        files = file_service(emu.env)
        assert files.create_share("data") is True
        assert emu.stats()["requests"]["Files_CreateShare"] == {"201": 1}
    assert emu.process.returncode == 0


def test_batchai_client_gets_through_tls_and_auth(emulator: RunningEmulator) -> None:
    from azure.core.exceptions import HttpResponseError

    from emulator.testing import batchai_client

    client = batchai_client(emulator.env, retry_total=0)
    # Whatever the Batch AI module answers (it replaces a placeholder), the request
    # must arrive over TLS with an accepted bearer token and be counted once.
    with contextlib.suppress(HttpResponseError):
        list(client.workspaces.list())
    outcomes = [outcome for counts in emulator.stats()["requests"].values() for outcome in counts]
    assert len(outcomes) == 1
    assert outcomes[0] != "401"
