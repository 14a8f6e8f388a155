"""The Batch AI quickstart (MNIST-style CNTK job on one STANDARD_NC6 node), step by step,
with the unmodified SDKs (azure-mgmt-resource, azure-storage-file 2.1.0,
azure-mgmt-batchai 7.0.0) against the emulator server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import azure.mgmt.batchai.models as models
import pytest
import requests
from azure.core.exceptions import HttpResponseError

from emulator.testing import RunningEmulator, batchai_client

T = TypeVar("T")

SHARE = "batchaisample"
GROUP = "batchai-quickstart"
WORKSPACE = "quickstart-ws"
EXPERIMENT = "quickstart-exp"
CLUSTER = "nc6"

TRAIN_SCRIPT = """\
import os, sys
data_dir, model_dir = sys.argv[1], sys.argv[2]
lines = open(os.path.join(data_dir, "train.txt")).read().split()
print("samples", len(lines), "gpus", os.environ["AZ_BATCHAI_NUM_GPUS"])
with open(os.path.join(model_dir, "ConvNet_MNIST.model"), "w") as out:
    out.write("model trained on %d samples" % len(lines))
"""


def wait_for(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def share_mount(env: dict[str, str]) -> models.MountVolumes:
    account = env["AZURE_STORAGE_ACCOUNT"]
    return models.MountVolumes(
        azure_file_shares=[
            models.AzureFileShareReference(
                account_name=account,
                credentials=models.AzureStorageCredentialsInfo(
                    account_key=env["AZURE_STORAGE_KEY"]
                ),
                azure_file_url=f"https://{account}.file.core.windows.net/{SHARE}",
                relative_mount_path="afs",
            )
        ]
    )


def cluster_parameters(env: dict[str, str], nodes: int = 1, **extra: Any) -> Any:
    return models.ClusterCreateParameters(
        vm_size="STANDARD_NC6",
        scale_settings=models.ScaleSettings(
            manual=models.ManualScaleSettings(target_node_count=nodes)
        ),
        user_account_settings=models.UserAccountSettings(
            admin_user_name="demoUser", admin_user_password="Demo-Passw0rd"
        ),
        node_setup=models.NodeSetup(mount_volumes=share_mount(env)),
        **extra,
    )


def cluster_id(client: Any, name: str = CLUSTER) -> str:
    return str(client.clusters.get(GROUP, WORKSPACE, name).id)


@pytest.fixture
def batchai(emulator: RunningEmulator, arm: Any, files: Any) -> Any:
    return prepare_quickstart(emulator, arm, files)


def prepare_quickstart(emulator: RunningEmulator, arm: Any, files: Any) -> Any:
    """Resource group, share with the sample's script and data, workspace and experiment."""
    arm.resource_groups.create_or_update(GROUP, {"location": "eastus"})
    files.create_share(SHARE)
    files.create_directory(SHARE, "mnistcntksample")
    files.create_file_from_text(SHARE, "mnistcntksample", "ConvNet_MNIST.py", TRAIN_SCRIPT)
    files.create_file_from_text(SHARE, "mnistcntksample", "train.txt", "1 2 3 4 5")
    client = batchai_client(emulator.env)
    client.workspaces.begin_create(
        GROUP, WORKSPACE, models.WorkspaceCreateParameters(location="eastus")
    ).result()
    client.experiments.begin_create(GROUP, WORKSPACE, EXPERIMENT).result()
    return client


def test_quickstart_flow_with_sdk(emulator: RunningEmulator, batchai: Any, files: Any) -> None:
    client = batchai
    env = emulator.env
    cluster = client.clusters.begin_create(
        GROUP, WORKSPACE, CLUSTER, cluster_parameters(env)
    ).result()
    assert cluster.vm_size == "STANDARD_NC6"
    assert cluster.user_account_settings.admin_user_password is None
    cluster = wait_for(
        lambda: client.clusters.get(GROUP, WORKSPACE, CLUSTER),
        lambda c: c.node_state_counts.idle_node_count == 1,
    )
    assert cluster.node_state_counts.idle_node_count == 1
    assert cluster.allocation_state == "steady"

    job = client.jobs.begin_create(
        GROUP,
        WORKSPACE,
        EXPERIMENT,
        "cntk_python_1",
        models.JobCreateParameters(
            cluster=models.ResourceId(id=cluster.id),
            node_count=1,
            std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
            input_directories=[
                models.InputDirectory(
                    id="SAMPLE", path="$AZ_BATCHAI_MOUNT_ROOT/afs/mnistcntksample"
                )
            ],
            output_directories=[
                models.OutputDirectory(
                    id="MODEL", path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs", path_suffix="Models"
                )
            ],
            container_settings=models.ContainerSettings(
                image_source_registry=models.ImageSourceRegistry(
                    image="microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0"
                )
            ),
            cntk_settings=models.CNTKsettings(
                python_script_file_path="$AZ_BATCHAI_INPUT_SAMPLE/ConvNet_MNIST.py",
                command_line_args="$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL",
            ),
        ),
    ).result()
    assert job.tool_type == "cntk"
    job = wait_for(
        lambda: client.jobs.get(GROUP, WORKSPACE, EXPERIMENT, "cntk_python_1"),
        lambda j: j.execution_state in ("succeeded", "failed"),
    )
    assert job.execution_state == "succeeded", job.execution_info
    assert job.execution_info.exit_code == 0
    assert job.container_settings.image_source_registry.image.startswith("microsoft/cntk")

    def download(directory_id: str) -> dict[str, str]:
        listed = client.jobs.list_output_files(
            GROUP,
            WORKSPACE,
            EXPERIMENT,
            "cntk_python_1",
            models.JobsListOutputFilesOptions(outputdirectoryid=directory_id),
        )
        out = {}
        for item in listed:
            if item.file_type == "file":
                response = requests.get(
                    item.download_url, verify=env["REQUESTS_CA_BUNDLE"], timeout=30
                )
                response.raise_for_status()
                out[item.name] = response.text
        return out

    logs = download("stdouterr")
    assert logs == {"stdout.txt": "samples 5 gpus 1\n", "stderr.txt": ""}
    assert download("MODEL") == {"ConvNet_MNIST.model": "model trained on 5 samples"}
    # The same bytes are in the share at the path the service reports.
    segment = job.job_output_directory_path_segment
    text = files.get_file_to_text(SHARE, f"{segment}/outputs/Models", "ConvNet_MNIST.model")
    assert text.content == "model trained on 5 samples"

    client.jobs.begin_delete(GROUP, WORKSPACE, EXPERIMENT, "cntk_python_1").result()
    client.clusters.begin_delete(GROUP, WORKSPACE, CLUSTER).result()
    client.experiments.begin_delete(GROUP, WORKSPACE, EXPERIMENT).result()
    client.workspaces.begin_delete(GROUP, WORKSPACE).result()
    with pytest.raises(HttpResponseError) as missing:
        client.workspaces.get(GROUP, WORKSPACE)
    assert missing.value.status_code == 404
    resources = emulator.stats()["resources"]
    assert resources["created"]["cluster"] == 1 and resources["created"]["job"] == 1
    assert resources["deleted"]["cluster"] == 1 and resources["deleted"]["job"] == 1
