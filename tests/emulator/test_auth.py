"""SharedKey and SAS verification, checked against the SDK's own signing code."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
import requests
from azure.common import AzureHttpError
from azure.storage.common.retry import no_retry
from azure.storage.file import FilePermissions, FileService
from azure.storage.file.sharedaccesssignature import FileSharedAccessSignature

from emulator import auth
from emulator.testing import RunningEmulator, file_service


def _with_key(env: dict[str, str], key: str) -> dict[str, str]:
    changed = dict(env)
    changed["AZURE_STORAGE_CONNECTION_STRING"] = env["AZURE_STORAGE_CONNECTION_STRING"].replace(
        env["AZURE_STORAGE_KEY"], key
    )
    return changed


def test_wrong_account_key_is_403_authentication_failed(emulator: RunningEmulator) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    service = file_service(_with_key(emulator.env, wrong))
    with pytest.raises(AzureHttpError) as caught:
        service.create_share("data")
    assert caught.value.status_code == 403
    assert "AuthenticationFailed" in str(caught.value)
    assert wrong not in str(caught.value)
    assert emulator.stats()["requests"]["Files_CreateShare"] == {"403": 1}


def test_unsigned_request_is_403(emulator: RunningEmulator) -> None:
    response = requests.put(
        emulator.url + "/data?restype=share", verify=emulator.ca_bundle, timeout=30
    )
    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthenticationFailed"


def test_our_sas_matches_the_sdk_generator(emulator: RunningEmulator) -> None:
    expiry = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    account, key = emulator.env["AZURE_STORAGE_ACCOUNT"], emulator.env["AZURE_STORAGE_KEY"]
    ours = auth.generate_file_sas(account, key, "data", "dir/f.txt", "r", expiry)
    theirs = FileSharedAccessSignature(account, key).generate_file(
        "data", "dir", "f.txt", permission=FilePermissions.READ, expiry=expiry
    )
    assert dict(p.split("=", 1) for p in ours.split("&")) == dict(
        p.split("=", 1) for p in theirs.split("&")
    )


def _upload(files: Any) -> None:
    files.create_share("data")
    files.create_directory("data", "out")
    files.create_file_from_bytes("data", "out", "model.txt", b"weights")


def test_sas_url_downloads_and_tampering_or_expiry_is_403(
    files: Any, emulator: RunningEmulator
) -> None:
    _upload(files)
    url = emulator.emulator.shares.sas_url(emulator.url, "data", "out/model.txt")
    ok = requests.get(url, verify=emulator.ca_bundle, timeout=30)
    assert ok.status_code == 200
    assert ok.content == b"weights"

    other_file = url.replace("model.txt", "other.txt")
    tampered_perm = url.replace("sp=r", "sp=rw")
    expired = emulator.emulator.shares.sas_url(
        emulator.url, "data", "out/model.txt", expiry_seconds=-60
    )
    for bad in (other_file, tampered_perm, expired):
        response = requests.get(bad, verify=emulator.ca_bundle, timeout=30)
        assert response.status_code == 403, bad
        assert response.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert b"expired" in requests.get(expired, verify=emulator.ca_bundle, timeout=30).content


def test_read_only_sas_cannot_write(files: Any, emulator: RunningEmulator) -> None:
    _upload(files)
    url = emulator.emulator.shares.sas_url(emulator.url, "data", "out/model.txt")
    response = requests.delete(url, verify=emulator.ca_bundle, timeout=30)
    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
    assert files.exists("data", "out", "model.txt")


def test_sdk_sas_token_works_with_file_service(files: Any, emulator: RunningEmulator) -> None:
    _upload(files)
    account, key = emulator.env["AZURE_STORAGE_ACCOUNT"], emulator.env["AZURE_STORAGE_KEY"]
    token = FileSharedAccessSignature(account, key).generate_file(
        "data",
        "out",
        "model.txt",
        permission=FilePermissions.READ,
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5),
    )
    session = requests.Session()
    session.verify = emulator.ca_bundle
    session.trust_env = False  # the machine's REQUESTS_CA_BUNDLE would override session.verify
    service = FileService(
        request_session=session,
        connection_string=f"AccountName={account};SharedAccessSignature={token};"
        f"FileEndpoint={emulator.url}",
    )
    service.retry = no_retry
    assert service.get_file_to_bytes("data", "out", "model.txt").content == b"weights"


def test_secrets_never_reach_the_logs(
    files: Any, emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="emulator")
    _upload(files)
    url = emulator.emulator.shares.sas_url(emulator.url, "data", "out/model.txt")
    requests.get(url, verify=emulator.ca_bundle, timeout=30)
    requests.get(url.replace("sig=", "sig=x"), verify=emulator.ca_bundle, timeout=30)
    sig = url.split("sig=")[1]
    text = caplog.text
    assert "Files_GetFile" in text  # the emulator logs, but by operation
    assert emulator.env["AZURE_STORAGE_KEY"] not in text
    assert sig not in text and "sig=" not in text


def test_stale_signed_request_is_403(
    files: Any, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.storage.common.storageclient as storageclient

    def backdated(request: Any) -> None:
        request.headers["x-ms-date"] = "Mon, 01 Jan 2024 00:00:00 GMT"

    # The SDK dates each request right before signing it, so the signature stays valid.
    monkeypatch.setattr(storageclient, "_add_date_header", backdated)
    files.retry = no_retry
    with pytest.raises(AzureHttpError) as caught:
        files.create_share("data")
    assert caught.value.status_code == 403
    assert "15 minutes" in str(caught.value)
