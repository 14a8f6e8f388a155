"""Resource groups through azure-mgmt-resource, the client the orchestrator uses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from emulator.testing import RunningEmulator, batchai_client


def test_create_get_list_and_existence(arm: Any, emulator: RunningEmulator) -> None:
    created = arm.resource_groups.create_or_update(
        "quickstart-rg", {"location": "eastus", "tags": {"team": "ml"}}
    )
    assert created.name == "quickstart-rg"
    assert created.location == "eastus"
    assert created.properties.provisioning_state == "Succeeded"
    assert created.id.endswith("/resourceGroups/quickstart-rg")

    fetched = arm.resource_groups.get("quickstart-rg")
    assert fetched.tags == {"team": "ml"}
    assert arm.resource_groups.check_existence("quickstart-rg") is True
    assert arm.resource_groups.check_existence("other-rg") is False
    assert [g.name for g in arm.resource_groups.list()] == ["quickstart-rg"]

    stats = emulator.stats()
    assert stats["requests"]["ResourceGroups_CreateOrUpdate"] == {"201": 1}
    assert stats["resources"]["created"] == {"resource_group": 1}


def test_create_twice_answers_200_and_counts_one_creation(
    arm: Any, emulator: RunningEmulator
) -> None:
    arm.resource_groups.create_or_update("rg", {"location": "westeurope"})
    again = arm.resource_groups.create_or_update("RG", {"location": "westeurope"})
    assert again.name == "rg"  # ARM keeps the original casing
    stats = emulator.stats()
    assert stats["requests"]["ResourceGroups_CreateOrUpdate"] == {"201": 1, "200": 1}
    assert stats["resources"]["created"] == {"resource_group": 1}


def test_get_missing_group_is_404_resource_group_not_found(arm: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        arm.resource_groups.get("missing-rg")
    assert caught.value.error is not None
    assert caught.value.error.code == "ResourceGroupNotFound"


@pytest.fixture
def on_delete(emulator: RunningEmulator) -> Iterator[Callable[[Callable[[str, str], None]], None]]:
    """Register cascade callbacks for one test only."""
    store = emulator.emulator.resource_groups
    added: list[Callable[[str, str], None]] = []

    def register(callback: Callable[[str, str], None]) -> None:
        store.on_delete(callback)
        added.append(callback)

    yield register
    for callback in added:
        store.remove_on_delete(callback)


def test_begin_delete_polls_to_completion_and_cascades(
    arm: Any, emulator: RunningEmulator, on_delete: Any
) -> None:
    deleted: list[tuple[str, str]] = []
    on_delete(lambda sub, rg: deleted.append((sub, rg)))
    arm.resource_groups.create_or_update("doomed", {"location": "eastus"})

    arm.resource_groups.begin_delete("doomed").result()

    assert deleted == [(emulator.env["AZURE_SUBSCRIPTION_ID"], "doomed")]
    assert arm.resource_groups.check_existence("doomed") is False
    stats = emulator.stats()
    assert stats["requests"]["ResourceGroups_Delete"] == {"202": 1}
    assert "200" in stats["requests"]["ResourceGroups_DeleteStatus"]
    assert stats["resources"]["deleted"] == {"resource_group": 1}


def test_delete_reports_in_progress_until_the_cascade_finishes(arm: Any, on_delete: Any) -> None:
    release = threading.Event()
    on_delete(lambda sub, rg: release.wait(30))
    arm.resource_groups.create_or_update("slow", {"location": "eastus"})
    poller = arm.resource_groups.begin_delete("slow")
    assert poller.status() == "InProgress"
    assert poller.done() is False
    release.set()
    poller.result()
    assert poller.status() == "Succeeded"


def _raw(emulator: RunningEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, emulator.url + path, verify=emulator.ca_bundle, timeout=30, **kwargs
    )


def test_missing_or_malformed_bearer_token_is_401(emulator: RunningEmulator) -> None:
    sub = emulator.env["AZURE_SUBSCRIPTION_ID"]
    path = f"/subscriptions/{sub}/resourcegroups?api-version=2025-04-01"
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = _raw(emulator, "GET", path, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "AuthenticationFailed"
        assert response.headers["x-ms-request-id"]
        assert response.headers["x-ms-correlation-request-id"]
    ok = _raw(emulator, "GET", path, headers=emulator.auth_headers)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/subscriptions/{sub}/resourcegroups?api-version=2025-04-01",
        "/subscriptions/{sub}/providers/Microsoft.BatchAI/workspaces?api-version=2018-05-01",
    ],
)
def test_a_token_other_than_the_emulators_is_401(emulator: RunningEmulator, path: str) -> None:
    url = path.format(sub=emulator.env["AZURE_SUBSCRIPTION_ID"])
    for token in ("anything.at.all", emulator.access_token + "x", emulator.access_token[:-1]):
        response = _raw(emulator, "GET", url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert emulator.access_token not in response.text


@pytest.mark.parametrize(
    ("query", "code"),
    [("", "MissingApiVersionParameter"), ("?api-version=2099-01-01", "InvalidApiVersionParameter")],
)
def test_bad_api_version_is_400(emulator: RunningEmulator, query: str, code: str) -> None:
    sub = emulator.env["AZURE_SUBSCRIPTION_ID"]
    response = _raw(
        emulator,
        "PUT",
        f"/subscriptions/{sub}/resourcegroups/rg{query}",
        json={"location": "eastus"},
        headers=emulator.auth_headers,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert "api-version" in response.json()["error"]["message"]


def test_quickstart_era_api_version_is_accepted(emulator: RunningEmulator) -> None:
    sub = emulator.env["AZURE_SUBSCRIPTION_ID"]
    response = _raw(
        emulator,
        "PUT",
        f"/subscriptions/{sub}/resourcegroups/old-rg?api-version=2017-05-10",
        json={"location": "eastus", "tags": {"era": "quickstart"}},
        headers=emulator.auth_headers,
    )
    assert response.status_code == 201
    assert response.json() == {
        "id": f"/subscriptions/{sub}/resourceGroups/old-rg",
        "name": "old-rg",
        "type": "Microsoft.Resources/resourceGroups",
        "location": "eastus",
        "properties": {"provisioningState": "Succeeded"},
        "tags": {"era": "quickstart"},
    }
    again = _raw(
        emulator,
        "GET",
        f"/subscriptions/{sub}/resourcegroups/old-rg?api-version=2017-05-10",
        headers=emulator.auth_headers,
    )
    assert again.status_code == 200
    assert again.json() == response.json()


def test_create_without_location_names_the_field(arm: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        arm.resource_groups.create_or_update("rg", {"tags": {}})
    assert caught.value.status_code == 400
    assert "location" in str(caught.value.message)


def test_unknown_arm_route_is_arm_shaped(emulator: RunningEmulator) -> None:
    sub = emulator.env["AZURE_SUBSCRIPTION_ID"]
    response = _raw(
        emulator,
        "GET",
        f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Nope/things?api-version=1",
        headers=emulator.auth_headers,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidResourceType"
    assert "Microsoft.Nope" in response.json()["error"]["message"]
    response = _raw(emulator, "GET", f"/subscriptions/{sub}/nothing", headers=emulator.auth_headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_a_failing_cascade_callback_does_not_block_the_delete(arm: Any, on_delete: Any) -> None:
    seen: list[str] = []

    def broken(sub: str, rg: str) -> None:
        raise RuntimeError("cleanup failed")

    on_delete(broken)
    on_delete(lambda sub, rg: seen.append(rg))
    arm.resource_groups.create_or_update("rg", {"location": "eastus"})
    arm.resource_groups.begin_delete("rg").result()
    assert seen == ["rg"]
    assert arm.resource_groups.check_existence("rg") is False


def test_batch_ai_refuses_resources_in_a_group_being_deleted(
    arm: Any, emulator: RunningEmulator, on_delete: Any
) -> None:
    # The Batch AI cascade has already run when this callback blocks: a workspace created
    # now would outlive its group (and a job in it would run on, unowned).
    release = threading.Event()
    on_delete(lambda sub, rg: release.wait(30))
    arm.resource_groups.create_or_update("going", {"location": "eastus"})
    poller = arm.resource_groups.begin_delete("going")
    batchai = batchai_client(emulator.env, retry_total=0)
    try:
        with pytest.raises(ResourceNotFoundError) as caught:
            batchai.workspaces.begin_create("going", "late", {"location": "eastus"}).result()
        assert caught.value.error is not None
        assert caught.value.error.code == "ResourceGroupNotFound"
    finally:
        release.set()
        poller.result()
