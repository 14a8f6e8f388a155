"""Conformance with the official Batch AI REST spec, generated from every example file of
both api-versions (emulator/spec/*/examples/*.json, vendored from Azure/azure-rest-api-specs).

For each example: create what its path parameters (and a job body's cluster) need, send
its request as the operation that references it through x-ms-examples says, check the
status is one the example lists, and validate the body against the spec's response
schema for that status ($refs resolved within the spec file; x-ms-* are annotations).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
import requests

from emulator.testing import RunningEmulator

SPEC_DIR = Path(__file__).resolve().parents[2] / "emulator" / "spec"
EXAMPLES = sorted(SPEC_DIR.glob("*/examples/*.json"))
# Example files per api-version folder (emulator/spec/README.md): a glob that silently
# matches fewer (a moved folder, a renamed file) must fail, not shrink the suite.
EXPECTED_EXAMPLES = {"2018-05-01": 29, "2017-09-01-preview": 20}
# A running job reaches a final state in well under a second; this only bounds a hang.
JOB_FINISH_TIMEOUT_SECONDS = 60
SHARE = "conformance"
PREREQ_CLUSTER = "conformance_cluster"

# Examples for operations the emulator deliberately does not serve: none.
NOT_SERVED: dict[str, str] = {}


def load_spec(version_dir: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((version_dir / "BatchAI.json").read_text())
    return spec


def find_operation(spec: dict[str, Any], example: str) -> tuple[str, str, dict[str, Any]] | None:
    """(method, path template, operation) of the operation that references the example."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for ref in operation.get("x-ms-examples", {}).values():
                if Path(ref["$ref"]).name == example:
                    return method.upper(), path, operation
    return None


def resolve_parameter(spec: dict[str, Any], parameter: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in parameter:
        resolved: dict[str, Any] = spec["parameters"][parameter["$ref"].split("/")[-1]]
        return resolved
    return parameter


class Arm:
    """Raw ARM calls with a bearer token, as the SDKs make them."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self.base = emulator.env["AZURE_ARM_ENDPOINT"]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = emulator.env["REQUESTS_CA_BUNDLE"]
        self.session.headers.update(emulator.auth_headers)

    def call(
        self, method: str, path: str, query: dict[str, str], body: Any = None
    ) -> requests.Response:
        return self.session.request(method, self.base + path, params=query, json=body, timeout=30)

    def ok(self, method: str, path: str, version: str, body: Any = None) -> Any:
        response = self.call(method, path, {"api-version": version}, body)
        assert response.status_code in (200, 201, 202), (path, response.text)
        return response.json() if response.content else None


def create_prerequisites(
    arm: Arm, version: str, params: dict[str, Any], operation_id: str, body: Any, account: str
) -> None:
    sub = params.get("subscriptionId")
    group = params.get("resourceGroupName")
    if not (sub and group):
        return
    arm.ok(
        "PUT", f"/subscriptions/{sub}/resourcegroups/{group}", "2021-04-01", {"location": "eastus"}
    )
    base = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.BatchAI"
    preview = version == "2017-09-01-preview"
    location = {"location": "eastus"} if preview else {}
    if not preview and "workspaceName" in params:
        base += f"/workspaces/{params['workspaceName']}"
        if operation_id != "Workspaces_Create":
            arm.ok("PUT", base, version, {"location": "eastus"})
    mount = {
        "accountName": account,
        "azureFileUrl": f"https://{account}.file.core.windows.net/{SHARE}",
        "credentials": {"accountKey": "not-checked"},
        "relativeMountPath": "azfiles",
    }

    def cluster(name: str) -> str:
        path = f"{base}/clusters/{name}"
        arm.ok(
            "PUT",
            path,
            version,
            {
                **location,
                "properties": {
                    "vmSize": "STANDARD_NC6",
                    "scaleSettings": {"manual": {"targetNodeCount": 1}},
                    "userAccountSettings": {"adminUserName": "admin"},
                    "nodeSetup": {"mountVolumes": {"azureFileShares": [mount]}},
                },
            },
        )
        return path

    if "clusterName" in params and operation_id != "Clusters_Create":
        cluster(params["clusterName"])
    if "fileServerName" in params and operation_id != "FileServers_Create":
        arm.ok(
            "PUT",
            f"{base}/fileServers/{params['fileServerName']}",
            version,
            {
                **location,
                "properties": {
                    "vmSize": "STANDARD_NC6",
                    "sshConfiguration": {"userAccountSettings": {"adminUserName": "admin"}},
                    "dataDisks": {
                        "diskSizeInGB": 10,
                        "diskCount": 1,
                        "storageAccountType": "Standard_LRS",
                    },
                },
            },
        )
    job_scope = base
    if "experimentName" in params:
        job_scope = f"{base}/experiments/{params['experimentName']}"
        if operation_id != "Experiments_Create":
            arm.ok("PUT", job_scope, version, {})
    if operation_id == "Jobs_Create" and isinstance(body, dict):
        cluster(body["properties"]["cluster"]["id"].rstrip("/").rsplit("/", 1)[-1])
    if "jobName" in params and operation_id != "Jobs_Create":
        cluster_path = cluster(PREREQ_CLUSTER)
        job_path = f"{job_scope}/jobs/{params['jobName']}"
        arm.ok(
            "PUT",
            job_path,
            version,
            {
                **location,
                "properties": {
                    "cluster": {"id": cluster_path},
                    "nodeCount": 1,
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles",
                    "customToolkitSettings": {"commandLine": "echo hi"},
                },
            },
        )
        wait_for_final_state(arm, job_path, version)


def wait_for_final_state(arm: Arm, job_path: str, version: str) -> None:
    """Poll the prerequisite job until it has ended; fail the test if it never does."""
    deadline = time.monotonic() + JOB_FINISH_TIMEOUT_SECONDS
    state = None
    while time.monotonic() < deadline:
        state = arm.ok("GET", job_path, version)["properties"]["executionState"]
        if state in ("succeeded", "failed"):
            return
        time.sleep(0.05)
    pytest.fail(f"prerequisite job {job_path} still {state!r} after {JOB_FINISH_TIMEOUT_SECONDS}s")


def example_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name}"


def test_every_example_of_both_api_versions_is_collected() -> None:
    counts = Counter(path.parent.parent.name for path in EXAMPLES)
    for version, minimum in EXPECTED_EXAMPLES.items():
        assert counts[version] >= minimum, (version, counts[version], SPEC_DIR)
    assert set(counts) == set(EXPECTED_EXAMPLES), counts


@pytest.mark.parametrize("example_path", EXAMPLES, ids=example_id)
def test_example(
    example_path: Path, emulator: RunningEmulator, files: Any, request: pytest.FixtureRequest
) -> None:
    key = example_id(example_path)
    if key in NOT_SERVED:
        request.applymarker(pytest.mark.xfail(reason=NOT_SERVED[key], strict=True))
    spec = load_spec(example_path.parent.parent)
    example = json.loads(example_path.read_text())
    found = find_operation(spec, example_path.name)
    assert found, f"no operation of the spec references {example_path.name}"
    method, template, operation = found
    params: dict[str, Any] = example["parameters"]
    version = params["api-version"]

    path = template
    query: dict[str, str] = {}
    body: Any = None
    for raw in operation.get("parameters", []) + spec["paths"][template].get("parameters", []):
        parameter = resolve_parameter(spec, raw)
        name = parameter["name"]
        if name not in params:
            assert not parameter.get("required") or parameter["in"] == "body", name
            continue
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", quote(str(params[name]), safe=""))
        elif parameter["in"] == "query":
            query[name] = str(params[name])
        elif parameter["in"] == "body":
            body = params[name]
    # Checked after the loop, not in it: an operation whose parameters were not read
    # (none declared, a $ref not resolved) would otherwise go out with a template path.
    unresolved = re.findall(r"\{[^}]+\}", path)
    assert not unresolved, f"{operation['operationId']}: path parameters not set: {unresolved}"
    assert query.get("api-version") == version, (operation["operationId"], query)

    files.create_share(SHARE)
    arm = Arm(emulator)
    create_prerequisites(
        arm, version, params, operation["operationId"], body, emulator.env["AZURE_STORAGE_ACCOUNT"]
    )
    response = arm.call(method, path, query, body)

    assert str(response.status_code) in example["responses"], (
        f"{operation['operationId']}: {response.status_code} {response.text}"
    )
    status = str(response.status_code)
    schema = operation["responses"].get(status, {}).get("schema")
    if schema is None:
        # Nothing to validate only where the example, too, answers without a body.
        assert "body" not in example["responses"][status], f"{operation['operationId']}: {status}"
        return
    assert response.content, f"{operation['operationId']}: the spec defines a body"
    document = {**schema, "definitions": spec["definitions"]}
    jsonschema.Draft4Validator(document).validate(response.json())
