"""The Batch AI job a run spec becomes: toolkit settings, input and output
directories on the mounted share, limits. Pure: no request is sent here."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from typing import Any

from azure.mgmt.batchai import models as bai

from orchestrator.domain.naming import AzureNames
from orchestrator.domain.spec import RunSpec, Toolkit

# Where the share is mounted on cluster nodes ($AZ_BATCHAI_MOUNT_ROOT/<this>).
SHARE_MOUNT_PATH = "azfiles"
STDOUTERR_OUTPUT_ID = "stdouterr"
# Inside double quotes the shell still treats \\ " ` and $ specially: escape all but a
# $ that starts a plain $NAME or ${NAME} (no $(...), no ${NAME:-...}).
_SPECIAL_IN_DOUBLE_QUOTES = re.compile(r'[\\"`]|\$(?![A-Za-z_]\w*|\{[A-Za-z_]\w*\})')


def shell_word_expanding_variables(arg: str) -> str:
    """`arg` as one shell word in which $NAME and ${NAME} expand and nothing else does.

    For job.args, which name the job's $AZ_BATCHAI_* folders: single quotes (shlex.quote)
    would hand the script the literal text "$AZ_BATCHAI_INPUT_X" on a node's shell and
    in the emulator alike."""
    return '"' + _SPECIAL_IN_DOUBLE_QUOTES.sub(lambda m: "\\" + m.group(0), arg) + '"'


def command_line_args(spec: RunSpec) -> str:
    """job.args (variables expand) then the parameters as --key value (taken literally)."""
    parameters = spec.job_args()[len(spec.job.args) :]
    return " ".join(
        [
            *(shell_word_expanding_variables(arg) for arg in spec.job.args),
            *(shlex.quote(arg) for arg in parameters),
        ]
    )


def mount_volumes(account_name: str, account_key: str, share_url: str) -> bai.MountVolumes:
    return bai.MountVolumes(
        azure_file_shares=[
            bai.AzureFileShareReference(
                account_name=account_name,
                azure_file_url=share_url,
                credentials=bai.AzureStorageCredentialsInfo(account_key=account_key),
                relative_mount_path=SHARE_MOUNT_PATH,
            )
        ]
    )


def job_parameters(
    names: AzureNames, spec: RunSpec, *, cluster_id: str, mounts: bai.MountVolumes | None = None
) -> bai.JobCreateParameters:
    """The job; `mounts` mounts the run's own share (names.run_share) for this job
    only: the cluster mounts nothing, so no job sees another run's files."""
    root = f"$AZ_BATCHAI_JOB_MOUNT_ROOT/{SHARE_MOUNT_PATH}"
    inputs = [
        bai.InputDirectory(id=input_id, path=f"{root}/{names.input_dir(input_id)}")
        for input_id in spec.inputs
    ]
    outputs = [
        bai.OutputDirectory(
            id=output_id, path_prefix=f"{root}/{names.output_prefix}", path_suffix=output_id
        )
        for output_id in spec.outputs
    ]
    args = command_line_args(spec)
    script = None
    if spec.job.script is not None and spec.inputs:
        first = next(iter(spec.inputs))
        script = f"$AZ_BATCHAI_INPUT_{first}/{spec.job.script}"
    toolkit: dict[str, Any] = {}
    if spec.job.toolkit is Toolkit.CNTK:
        toolkit["cntk_settings"] = bai.CNTKsettings(
            python_script_file_path=script, command_line_args=args
        )
    elif spec.job.toolkit is Toolkit.PYTORCH:
        assert script is not None
        toolkit["py_torch_settings"] = bai.PyTorchSettings(
            python_script_file_path=script, command_line_args=args
        )
    elif spec.job.toolkit is Toolkit.TENSORFLOW:
        assert script is not None
        toolkit["tensor_flow_settings"] = bai.TensorFlowSettings(
            python_script_file_path=script, master_command_line_args=args
        )
    else:
        command = spec.job.command or ""
        toolkit["custom_toolkit_settings"] = bai.CustomToolkitSettings(
            command_line=f"{command} {args}".strip()
        )
    container = (
        bai.ContainerSettings(image_source_registry=bai.ImageSourceRegistry(image=spec.job.image))
        if spec.job.image
        else None
    )
    return bai.JobCreateParameters(
        cluster=bai.ResourceId(id=cluster_id),
        node_count=spec.cluster.node_count,
        container_settings=container,
        std_out_err_path_prefix=f"{root}/{names.output_prefix}",
        mount_volumes=mounts,
        input_directories=inputs or None,
        output_directories=outputs or None,
        constraints=bai.JobBasePropertiesConstraints(
            max_wall_clock_time=timedelta(seconds=spec.job.max_wall_clock_seconds)
        ),
        **toolkit,
    )
