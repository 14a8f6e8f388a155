"""Error classification, the bounded retry policy and operation naming of the gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from azure.common import AzureException, AzureHttpError
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from orchestrator.azure.errors import (
    PermanentAzureError,
    TransientAzureError,
    classify,
    classify_status,
)
from orchestrator.azure.gateway import AzureGateway
from orchestrator.azure.job_params import job_parameters, mount_volumes
from orchestrator.azure.operations import arm_operation
from orchestrator.azure.pipeline import BoundedRetryPolicy, CountingPolicy, RequestRecorder
from orchestrator.domain.status import FailureReason
from orchestrator.settings import Settings


class _Response:
    """Enough of an azure-core HTTP response for HttpResponseError."""

    def __init__(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self.reason = "Reason"
        self._body = body.encode()
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def body(self) -> bytes:
        return self._body


def _http_error(status: int, code: str, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps({"error": {"code": code, "message": "details"}})
    return HttpResponseError(response=_Response(status, body, headers))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    error = classify_status(status, "busy", retry_after=7.0)
    assert isinstance(error, TransientAzureError)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (400, "InvalidParameter", FailureReason.INVALID_SPEC),
        (401, "InvalidAuthenticationToken", FailureReason.AUTH),
        (403, "AuthorizationFailed", FailureReason.AUTH),
        (404, "ResourceNotFound", FailureReason.AZURE_ERROR),
        (409, "Conflict", FailureReason.AZURE_ERROR),
        (400, "QuotaExceeded", FailureReason.QUOTA),
        (409, "CoreQuotaLimitExceeded", FailureReason.QUOTA),
    ],
)
def test_client_errors_are_permanent_with_a_reason(
    status: int, code: str, reason: FailureReason
) -> None:
    error = classify_status(status, "nope", code=code)
    assert isinstance(error, PermanentAzureError)
    assert error.reason is reason


def test_sdk_http_error_carries_retry_after_and_request_id() -> None:
    exc = _http_error(429, "TooManyRequests", {"Retry-After": "12", "x-ms-request-id": "abc"})
    error = classify(exc)
    assert isinstance(error, TransientAzureError)
    assert (error.retry_after, error.request_id) == (12.0, "abc")


def test_connection_errors_of_either_sdk_are_transient() -> None:
    assert isinstance(classify(ServiceRequestError("connection reset")), TransientAzureError)
    assert isinstance(classify(requests.ConnectionError("refused")), TransientAzureError)
    storage = AzureHttpError("Server Busy\nErrorCode: ServerBusy", 503)
    assert isinstance(classify(storage), TransientAzureError)
    denied = classify(AzureHttpError("Forbidden", 403))
    assert isinstance(denied, PermanentAzureError) and denied.reason is FailureReason.AUTH


def test_unknown_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("bug"))


def test_classified_errors_carry_no_sas_signatures_keys_or_passwords() -> None:
    text = (
        "https://a/f?sv=2019&sig=SECRETSIG&se=x AccountKey=SECRETKEY; "
        "Unable to connect to proxy http://me:SECRETPW@proxy:3128"
    )
    for exc in (requests.ConnectionError(text), AzureException(text), OSError(text)):
        cleaned = str(classify(exc))
        assert "SECRET" not in cleaned
    cleaned = str(classify_status(403, text, code="AuthenticationFailed"))
    assert "SECRET" not in cleaned


class _Pipe:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.http_response = _Response(status, "", headers)
        self.http_request = type("R", (), {"method": "GET"})()


def test_bounded_retry_hands_long_retry_after_back_to_the_caller() -> None:
    policy = BoundedRetryPolicy(max_sleep=2.0)
    settings = policy.configure_retries({})
    assert policy.is_retry(settings, _Pipe(429, {"Retry-After": "1"}))  # type: ignore[arg-type]
    assert not policy.is_retry(settings, _Pipe(429, {"Retry-After": "30"}))  # type: ignore[arg-type]
    assert settings["total"] == 2


class _RecordingTransport:
    """A transport whose sleep is only written down: no test here really sleeps."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("1.5", 1.5), ("2", 2.0), ("30", 2.0), ("3600", 2.0)],
)
def test_bounded_retry_never_sleeps_longer_than_the_cap(retry_after: str, expected: float) -> None:
    transport = _RecordingTransport()
    policy = BoundedRetryPolicy(max_sleep=2.0)
    settings = policy.configure_retries({})
    # The policy's own entry point for the wait between two attempts.
    policy.sleep(settings, transport, _Pipe(503, {"Retry-After": retry_after}))  # type: ignore[arg-type]
    assert transport.slept == [expected]


def test_bounded_retry_backoff_without_retry_after_is_capped_too() -> None:
    transport = _RecordingTransport()
    policy = BoundedRetryPolicy(max_sleep=2.0)
    settings = policy.configure_retries({})
    # Ten failed attempts: an uncapped exponential backoff would be 0.3 * 2**9 s.
    settings["history"] = [object()] * 10
    policy.sleep(settings, transport, _Pipe(503, {}))  # type: ignore[arg-type]
    assert transport.slept == [2.0]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("PUT", "/subscriptions/s/resourcegroups/rg", "ResourceGroups_CreateOrUpdate"),
        ("HEAD", "/subscriptions/s/resourcegroups/rg", "ResourceGroups_CheckExistence"),
        (
            "PUT",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/clusters/c",
            "Clusters_Create",
        ),
        (
            "GET",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/clusters",
            "Clusters_List",
        ),
        (
            "POST",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/"
            "experiments/e/jobs/j/listOutputFiles",
            "Jobs_ListOutputFiles",
        ),
        (
            "DELETE",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/w/"
            "experiments/e/jobs/j",
            "Jobs_Delete",
        ),
    ],
)
def test_arm_operation_names(method: str, path: str, operation: str) -> None:
    assert arm_operation(method, path) == operation


@pytest.mark.parametrize("toolkit", ["cntk", "pytorch", "tensorflow", "custom"])
def test_job_parameters_carry_the_spec(toolkit: str) -> None:
    from orchestrator.domain.naming import azure_names
    from orchestrator.domain.spec import parse_spec
    from orchestrator.settings import Settings

    job: dict[str, Any] = {"toolkit": toolkit, "max_wall_clock": "PT30M"}
    if toolkit == "custom":
        job["command"] = "python $AZ_BATCHAI_INPUT_CODE/train.py"
    else:
        job["script"] = "train.py"
    spec = parse_spec(
        {
            "name": "sweep",
            "cluster": {"node_count": 2},
            "job": job,
            "inputs": {"CODE": "upload:" + "a" * 64, "DATA": "share:etl/mnist"},
            "outputs": ["MODEL"],
            "parameters": {"lr": 0.1},
        }
    )
    names = azure_names("r1", spec, Settings())
    mounts = mount_volumes("acct", "a2V5", "https://acct.file.core.windows.net/" + names.run_share)
    params = job_parameters(names, spec, cluster_id="/c/id", mounts=mounts)
    body = params.serialize()
    properties = body["properties"]
    # The job mounts its run's share, and only that one.
    [share] = properties["mountVolumes"]["azureFileShares"]
    assert share["azureFileUrl"].endswith("/" + names.run_share)
    assert properties["nodeCount"] == 2
    assert properties["cluster"]["id"] == "/c/id"
    code_input, data_input = properties["inputDirectories"]
    assert code_input["id"] == "CODE"
    # Every input is copied into the run's own share, which the job alone mounts.
    assert code_input["path"] == "$AZ_BATCHAI_JOB_MOUNT_ROOT/azfiles/inputs/CODE"
    assert data_input["path"] == "$AZ_BATCHAI_JOB_MOUNT_ROOT/azfiles/inputs/DATA"
    assert [output["id"] for output in properties["outputDirectories"]] == ["MODEL"]
    assert properties["stdOutErrPathPrefix"] == "$AZ_BATCHAI_JOB_MOUNT_ROOT/azfiles/outputs"
    settings_key = {
        "cntk": "cntkSettings",
        "pytorch": "pyTorchSettings",
        "tensorflow": "tensorFlowSettings",
        "custom": "customToolkitSettings",
    }[toolkit]
    # Exactly one toolkit's settings (containerSettings is the image, not a toolkit).
    toolkits = [k for k in properties if k.endswith("Settings") and k != "containerSettings"]
    assert toolkits == [settings_key]
    rendered = json.dumps(properties[settings_key])
    assert "--lr 0.1" in rendered
    # Every toolkit names the code it runs: the script, or the custom command.
    assert (job.get("command") or "$AZ_BATCHAI_INPUT_CODE/train.py") in rendered


def test_an_error_without_an_answer_carries_no_earlier_request_id() -> None:
    gateway = AzureGateway(Settings(AZURE_SUBSCRIPTION_ID="s"))
    gateway.recorder.record("Jobs_Get", "200", "an-earlier-request")
    with pytest.raises(TransientAzureError) as raised, gateway._call():
        raise requests.ConnectionError("connection refused")
    assert raised.value.request_id is None
    # Within one call, an attempt that got no answer clears the id too.
    with pytest.raises(TransientAzureError) as raised, gateway._call():
        gateway.recorder.record("Clusters_Get", "404", "the-404")
        gateway.recorder.record("Clusters_Create", "error", None)
        raise requests.ConnectionError("connection reset")
    assert raised.value.request_id is None


def test_answered_and_unanswered_requests_are_counted_under_one_operation_name() -> None:
    recorded: list[tuple[str, str]] = []
    policy = CountingPolicy(
        RequestRecorder(sink=lambda op, outcome: recorded.append((op, outcome)))
    )
    for url in (
        "https://clusters.example.net/subscriptions/s/resourceGroups/rg?api-version=1",
        "https://jobs.example.net/",
    ):
        http_request = type("Q", (), {"method": "GET", "url": url})()
        request = type("P", (), {"http_request": http_request})()
        pipe = _Pipe(200, {})
        policy.on_response(request, pipe)  # type: ignore[arg-type]
        policy.on_exception(request)  # type: ignore[arg-type]
    assert recorded == [
        ("ResourceGroups_Get", "200"),
        ("ResourceGroups_Get", "error"),
        ("ARM_GET", "200"),
        ("ARM_GET", "error"),
    ]


def test_job_args_expand_variables_and_parameters_are_literal() -> None:
    from orchestrator.azure.job_params import command_line_args
    from orchestrator.domain.spec import parse_spec

    spec = parse_spec(
        {
            "name": "quoting",
            "job": {"script": "t.py", "args": ["$AZ_BATCHAI_INPUT_CODE/data", "$(id)"]},
            "inputs": {"CODE": "/tmp/code"},
            "parameters": {"note": "$HOME it's"},
        }
    )
    assert command_line_args(spec) == (
        '"$AZ_BATCHAI_INPUT_CODE/data" "\\$(id)" --note \'$HOME it\'"\'"\'s\''
    )
