"""Serving details: request ids, keep-alive, error shapes, the in-process and subprocess helpers."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest
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
        f"{emulator.url}/_emulator/nothing",
        headers=emulator.auth_headers,
        verify=emulator.ca_bundle,
        timeout=30,
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


def test_access_token_is_generated_once_per_data_dir_and_private(tmp_path: Path) -> None:
    with start_emulator(tmp_path) as first:
        token = first.env["AZURE_EMULATOR_TOKEN"]
    assert len(token) >= 32
    assert (tmp_path / "access-token").stat().st_mode & 0o777 == 0o600
    with start_emulator(tmp_path) as second:
        assert second.env["AZURE_EMULATOR_TOKEN"] == token
    with start_emulator(tmp_path / "other") as third:
        assert third.env["AZURE_EMULATOR_TOKEN"] != token


def test_emulator_process_serves_the_sdks(tmp_path: Path) -> None:
    with EmulatorProcess(tmp_path / "emu") as emu:
        files = file_service(emu.env)
        assert files.create_share("data") is True
        assert emu.stats()["requests"]["Files_CreateShare"] == {"201": 1}
    assert emu.process.returncode == 0


def test_batchai_client_gets_through_tls_and_auth(emulator: RunningEmulator) -> None:
    from emulator.testing import batchai_client

    client = batchai_client(emulator.env, retry_total=0)
    assert list(client.workspaces.list()) == []
    # Over TLS, with the accepted bearer token, counted once as served.
    assert emulator.stats()["requests"] == {"Workspaces_List": {"200": 1}}


def test_batchai_client_without_a_token_is_401(emulator: RunningEmulator) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.mgmt.batchai import BatchAI

    from emulator.testing import StaticTokenCredential

    endpoint = emulator.env["AZURE_ARM_ENDPOINT"]
    client = BatchAI(
        StaticTokenCredential(token=""),  # the SDK then sends "Authorization: Bearer "
        emulator.env["AZURE_SUBSCRIPTION_ID"],
        base_url=endpoint,
        credential_scopes=[endpoint + "/.default"],
        connection_verify=emulator.ca_bundle,
        retry_total=0,
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        list(client.workspaces.list())
    assert caught.value.status_code == 401
    assert caught.value.error is not None
    assert caught.value.error.code == "AuthenticationFailed"
    assert emulator.stats()["requests"] == {"Workspaces_List": {"401": 1}}
