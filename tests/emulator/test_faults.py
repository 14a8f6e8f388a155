"""Injected faults as the SDKs see them, and their determinism from the seed."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from azure.common import AzureException, AzureHttpError
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.storage.common.retry import no_retry

from emulator.faults import FaultInjector, FaultRuleError, parse_flag, parse_rule
from emulator.testing import RunningEmulator, arm_client, file_service


@pytest.fixture
def arm_no_retry(emulator: RunningEmulator) -> Any:
    return arm_client(emulator.env, retry_total=0)


@pytest.fixture
def files_no_retry(emulator: RunningEmulator) -> Any:
    service = file_service(emulator.env)
    service.retry = no_retry
    return service


def test_arm_throttle_is_429_with_retry_after(arm_no_retry: Any, emulator: RunningEmulator) -> None:
    emulator.set_faults(
        [{"kind": "throttle", "rate": 1, "operations": ["ResourceGroups_Get"], "retry_after": 7}]
    )
    arm_no_retry.resource_groups.create_or_update("rg", {"location": "eastus"})
    with pytest.raises(HttpResponseError) as caught:
        arm_no_retry.resource_groups.get("rg")
    assert caught.value.status_code == 429
    assert caught.value.response is not None
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.error is not None and caught.value.error.code == "TooManyRequests"
    requests_stats = emulator.stats()["requests"]
    assert requests_stats["ResourceGroups_Get"] == {"fault:throttle": 1}
    assert requests_stats["ResourceGroups_CreateOrUpdate"] == {"201": 1}


def test_sdk_retry_rides_out_a_counted_throttle(emulator: RunningEmulator) -> None:
    emulator.set_faults([{"kind": "throttle", "rate": 1, "count": 1, "retry_after": 0}])
    client = arm_client(emulator.env, retry_total=2, retry_backoff_factor=0.01)
    client.resource_groups.create_or_update("rg", {"location": "eastus"})
    assert emulator.stats()["requests"]["ResourceGroups_CreateOrUpdate"] == {
        "fault:throttle": 1,
        "201": 1,
    }


def test_files_throttle_is_503_server_busy(files_no_retry: Any, emulator: RunningEmulator) -> None:
    emulator.set_faults([{"kind": "throttle", "rate": 1, "operations": ["files"]}])
    with pytest.raises(AzureHttpError) as caught:
        files_no_retry.create_share("data")
    assert caught.value.status_code == 503
    assert "ServerBusy" in str(caught.value)


@pytest.mark.parametrize(("kind", "status"), [("error500", 500), ("error503", 503)])
def test_server_errors_on_both_services(
    arm_no_retry: Any, files_no_retry: Any, emulator: RunningEmulator, kind: str, status: int
) -> None:
    emulator.set_faults([{"kind": kind, "rate": 1}])
    with pytest.raises(HttpResponseError) as arm_error:
        arm_no_retry.resource_groups.get("rg")
    assert arm_error.value.status_code == status
    with pytest.raises(AzureHttpError) as files_error:
        files_no_retry.create_share("data")
    assert files_error.value.status_code == status


def test_drop_closes_the_connection_without_a_response(
    arm_no_retry: Any, files_no_retry: Any, emulator: RunningEmulator
) -> None:
    emulator.set_faults([{"kind": "drop", "rate": 1}])
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        arm_no_retry.resource_groups.get("rg")
    with pytest.raises(AzureException) as caught:
        files_no_retry.create_share("data")
    assert not isinstance(caught.value, AzureHttpError)  # no HTTP status at all
    assert emulator.stats()["requests"]["Files_CreateShare"] == {"fault:drop": 1}
    emulator.clear_faults()
    assert files_no_retry.create_share("data") is True


def test_service_scoped_rule_leaves_the_other_service_alone(
    arm_no_retry: Any, files_no_retry: Any, emulator: RunningEmulator
) -> None:
    emulator.set_faults([{"kind": "error500", "rate": 1, "operations": ["arm"]}])
    assert files_no_retry.create_share("data") is True
    with pytest.raises(HttpResponseError):
        arm_no_retry.resource_groups.list().next()


def _outcomes(emulator: RunningEmulator, seed_rules: list[dict[str, Any]]) -> list[int]:
    emulator.reset(state=True)
    emulator.set_faults(seed_rules)
    sub = emulator.env["AZURE_SUBSCRIPTION_ID"]
    url = f"{emulator.url}/subscriptions/{sub}/resourcegroups?api-version=2025-04-01"
    with requests.Session() as session:
        session.trust_env = False
        return [
            session.get(
                url, headers=emulator.auth_headers, verify=emulator.ca_bundle, timeout=30
            ).status_code
            for _ in range(30)
        ]


def test_same_seed_same_requests_same_decisions(emulator: RunningEmulator) -> None:
    rules = [{"kind": "error500", "rate": 0.5}]
    first = _outcomes(emulator, rules)
    second = _outcomes(emulator, rules)
    assert first == second
    assert set(first) == {200, 500}  # the rate really is applied, not all-or-nothing


def test_seed_changes_the_decisions() -> None:
    def decisions(seed: int) -> list[bool]:
        injector = FaultInjector(seed)
        injector.set_rules([parse_rule({"kind": "preemption", "rate": 0.5})])
        return [injector.roll("preemption", "Jobs_Create") for _ in range(64)]

    assert decisions(1) == decisions(1)
    assert decisions(1) != decisions(2)


def test_count_caps_the_hits_and_model_kinds_roll_separately() -> None:
    injector = FaultInjector(0)
    injector.set_rules(
        [
            parse_rule({"kind": "node_unusable", "rate": 1, "count": 2}),
            parse_rule({"kind": "allocation_failure", "rate": 0}),
        ]
    )
    assert [injector.roll("node_unusable", "Clusters_Create") for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert injector.roll("allocation_failure", "Clusters_Create") is False
    assert injector.decide_request("Clusters_Create") is None


def test_operation_scoped_rule_matches_only_those_operations() -> None:
    injector = FaultInjector(0)
    injector.set_rules([parse_rule({"kind": "throttle", "rate": 1, "operations": ["Jobs_Create"]})])
    assert injector.decide_request("Jobs_Get") is None
    rule = injector.decide_request("Jobs_Create")
    assert rule is not None and rule.kind == "throttle"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"kind": "meteor", "rate": 1}, "rules[0].kind"),
        ({"kind": "drop", "rate": 2}, "rules[0].rate"),
        ({"kind": "drop", "rate": "often"}, "rules[0].rate"),
        ({"kind": "drop", "rate": 1, "operations": []}, "rules[0].operations"),
        ({"kind": "drop", "rate": 1, "count": -1}, "rules[0].count"),
        ({"kind": "drop", "rate": 1, "retry_after": "soon"}, "rules[0].retry_after"),
        ({"kind": "drop", "rate": 1, "colour": "red"}, "rules[0].colour"),
    ],
)
def test_bad_rules_name_the_field(rule: dict[str, Any], field: str) -> None:
    with pytest.raises(FaultRuleError) as caught:
        parse_rule(rule)
    assert caught.value.field == field


def test_parse_flag() -> None:
    rule = parse_flag("throttle:0.25:arm,Files_PutRange")
    assert (rule.kind, rule.rate, rule.operations) == ("throttle", 0.25, ["arm", "Files_PutRange"])
    assert parse_flag("drop:1").operations == ["*"]
    for bad in ("drop", "drop:x", "nope:0.1", "drop:0.1:a:b"):
        with pytest.raises(FaultRuleError):
            parse_flag(bad)
