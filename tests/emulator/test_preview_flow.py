"""The original Batch AI quickstart's flow on api-version 2017-09-01-preview (clusters and
jobs directly in a resource group), driven with plain `requests` and the request bodies
azure-mgmt-batchai 0.2.0 sends (that SDK cannot be installed beside 7.0.0)."""

from __future__ import annotations

import time
from typing import Any

import requests

from emulator.testing import RunningEmulator

PREVIEW = "2017-09-01-preview"
GROUP = "batchai-preview"
SHARE = "batchaiquickstart"

SCRIPT = """\
import os, sys
data = open(os.path.join(sys.argv[1], "train.txt")).read().split()
open(os.path.join(sys.argv[2], "model.dnn"), "w").write(str(len(data)))
print("trained", len(data))
"""


class PreviewClient:
    def __init__(self, emulator: RunningEmulator) -> None:
        self.env = emulator.env
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = self.env["REQUESTS_CA_BUNDLE"]
        self.session.headers.update(emulator.auth_headers)
        sub = self.env["AZURE_SUBSCRIPTION_ID"]
        self.group_url = (
            f"{self.env['AZURE_ARM_ENDPOINT']}/subscriptions/{sub}/resourceGroups/{GROUP}"
        )
        self.provider = f"{self.group_url}/providers/Microsoft.BatchAI"

    def request(self, method: str, url: str, body: Any = None, **query: str) -> requests.Response:
        query.setdefault("api-version", PREVIEW)
        return self.session.request(method, url, params=query, json=body, timeout=30)

    def long_running(self, method: str, url: str, body: Any = None) -> requests.Response:
        """Start an LRO and follow Azure-AsyncOperation to its end, as msrestazure does."""
        response = self.request(method, url, body)
        assert response.status_code in (200, 202, 204), response.text
        status_url = response.headers.get("Azure-AsyncOperation")
        if status_url:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = self.session.get(status_url, timeout=30).json()["status"]
                if status != "InProgress":
                    assert status == "Succeeded"
                    break
                time.sleep(0.05)
        return response

    def poll(self, url: str, field: str, wanted: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            body = self.request("GET", url).json()
            value: Any = body["properties"]
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value in wanted or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def test_quickstart_on_preview_api(emulator: RunningEmulator, files: Any) -> None:
    client = PreviewClient(emulator)
    env = emulator.env
    assert client.request(
        "PUT", client.group_url, {"location": "eastus"}, **{"api-version": "2021-04-01"}
    ).status_code in (200, 201)
    files.create_share(SHARE)
    files.create_directory(SHARE, "mnistcntksample")
    files.create_file_from_text(SHARE, "mnistcntksample", "ConvNet_MNIST.py", SCRIPT)
    files.create_file_from_text(SHARE, "mnistcntksample", "train.txt", "a b c")
    account = env["AZURE_STORAGE_ACCOUNT"]

    cluster_url = f"{client.provider}/clusters/nc6"
    client.long_running(
        "PUT",
        cluster_url,
        {
            "location": "eastus",
            "properties": {
                "vmSize": "STANDARD_NC6",
                "userAccountSettings": {
                    "adminUserName": "demoUser",
                    "adminUserPassword": "Passw0rd!",
                },
                "scaleSettings": {"manual": {"targetNodeCount": 1}},
                "nodeSetup": {
                    "mountVolumes": {
                        "azureFileShares": [
                            {
                                "accountName": account,
                                "credentials": {"accountKey": env["AZURE_STORAGE_KEY"]},
                                "azureFileUrl": f"https://{account}.file.core.windows.net/{SHARE}",
                                "relativeMountPath": "azurefileshare",
                            }
                        ]
                    }
                },
            },
        },
    )
    cluster = client.poll(cluster_url, "nodeStateCounts.idleNodeCount", (1,))
    assert cluster["location"] == "eastus"
    assert cluster["properties"]["nodeStateCounts"]["idleNodeCount"] == 1
    assert "Passw0rd!" not in str(cluster) and env["AZURE_STORAGE_KEY"] not in str(cluster)

    job_url = f"{client.provider}/jobs/cntk_python_1"
    created = client.long_running(
        "PUT",
        job_url,
        {
            "location": "eastus",
            "properties": {
                "cluster": {"id": cluster["id"]},
                "nodeCount": 1,
                "inputDirectories": [
                    {
                        "id": "SAMPLE",
                        "path": "$AZ_BATCHAI_MOUNT_ROOT/azurefileshare/mnistcntksample",
                    }
                ],
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
                "outputDirectories": [
                    {
                        "id": "MODEL",
                        "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
                        "pathSuffix": "Models",
                    }
                ],
                "containerSettings": {
                    "imageSourceRegistry": {
                        "image": "microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0"
                    }
                },
                "cntkSettings": {
                    "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SAMPLE/ConvNet_MNIST.py",
                    "commandLineArgs": "$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL",
                },
            },
        },
    )
    assert created.json()["properties"]["toolType"] == "cntk"
    job = client.poll(job_url, "executionState", ("succeeded", "failed"))
    assert job["properties"]["executionState"] == "succeeded", job
    assert job["location"] == "eastus"
    assert "jobOutputDirectoryPathSegment" not in job["properties"]

    def download(directory_id: str) -> dict[str, str]:
        listed = client.request(
            "POST", f"{job_url}/listOutputFiles", outputdirectoryid=directory_id
        )
        assert listed.status_code == 200, listed.text
        return {
            item["name"]: client.session.get(item["downloadUrl"], timeout=30).text
            for item in listed.json()["value"]
        }

    assert download("stdouterr") == {"stdout.txt": "trained 3\n", "stderr.txt": ""}
    assert download("MODEL") == {"model.dnn": "3"}
    listed = client.request("GET", f"{client.provider}/jobs").json()["value"]
    assert [j["name"] for j in listed] == ["cntk_python_1"]

    client.long_running("DELETE", job_url)
    client.long_running("DELETE", cluster_url)
    assert client.request("GET", job_url).status_code == 404
    missing = client.request("GET", cluster_url)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
