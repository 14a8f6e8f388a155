"""The quickstart's procedure as a plain synchronous script, side by side with the chain.

The seed procedure is the Batch AI Python quickstart (2018-05-01, the SDK the
orchestrator uses) with the client set up for the emulator and nothing else
changed: create the resource group, the file share with the job's script and
data, the workspace and a one-node cluster mounting the share (each `.result()`
of the SDK), then `clusters.get` every second until a node is idle, create the
experiment and the job, `jobs.get` every second until it ends, list and
download stdout/stderr and the model, delete the job and the cluster.

Side by side: two emulators started together (`--provision-seconds`, default 3),
one for the script and one for the chain (its own redis-server and one
`orchestrator worker`, every ORCH_* setting at its default), so each one's
`/_emulator/stats` holds only its own requests. The chain first does one
unmeasured warm-up run (the worker boots; resource group, workspace and
experiment exist from then on, as they do in service). Then for each job length
(`--jobs`, default 10,120 seconds) the script and one chain run of the same job
start at the same moment; printed: Azure requests by operation of each, their
totals, ARM reads (GETs and HEADs of ARM and Batch AI), the ratio chain/script,
and the wall time of each (the script from its first call to its last; the chain
from the submission, input upload included, to the run's finished_at).

    .venv/bin/python benchmarks/seed_procedure.py [--jobs 10,120] [--provision-seconds 3] [--json]

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.mgmt.batchai import models

from emulator.testing import EmulatorProcess, arm_client, batchai_client, file_service
from orchestrator.devstack.redis_server import RedisServer
from orchestrator.domain.spec import RunSpec
from orchestrator.domain.status import RunStatus
from orchestrator.observability.logs import configure_logging
from tests.support.chain_stack import TRAIN_SCRIPT, Stack

POLL_SECONDS = 1.0  # the quickstart's wait loops
TIMEOUT_SECONDS = 900.0
# Reads ARM counts against the subscription's read bucket (Files are another service).
ARM_READS = (
    "ResourceGroups_CheckExistence",
    "Workspaces_Get",
    "Experiments_Get",
    "Clusters_Get",
    "Jobs_Get",
    "Jobs_ListOutputFiles",
    "OperationStatuses_Get",
)


def _wait(describe: Any, done: Any) -> Any:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        value = describe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise SystemExit("seed procedure: timed out waiting")
        time.sleep(POLL_SECONDS)


def seed_procedure(
    env: dict[str, str], samples: list[Path], download_dir: Path, seconds: float, tag: str
) -> None:
    """The quickstart's calls, in its order, polling every second."""
    location = "eastus"
    resource_group, workspace, share = "quickstartrg", "quickstartws", "batchaiquickstart"
    cluster, experiment, job = f"nc6-{tag}", "quickstart", f"job-{tag}"
    resources = arm_client(env)
    batchai = batchai_client(env)
    files = file_service(env)
    resources.resource_groups.create_or_update(resource_group, {"location": location})

    files.create_share(share, fail_on_exist=False)
    files.create_directory(share, "mnistcntksample", fail_on_exist=False)
    for path in samples:
        files.create_file_from_path(share, "mnistcntksample", path.name, str(path))

    batchai.workspaces.begin_create(
        resource_group, workspace, models.WorkspaceCreateParameters(location=location)
    ).result()
    mount = models.MountVolumes(
        azure_file_shares=[
            models.AzureFileShareReference(
                account_name=files.account_name,
                credentials=models.AzureStorageCredentialsInfo(account_key=files.account_key),
                azure_file_url=f"{files.protocol}://{files.primary_endpoint}/{share}",
                relative_mount_path="afs",
            )
        ]
    )
    batchai.clusters.begin_create(
        resource_group,
        workspace,
        cluster,
        models.ClusterCreateParameters(
            vm_size="STANDARD_NC6",
            scale_settings=models.ScaleSettings(
                manual=models.ManualScaleSettings(target_node_count=1)
            ),
            user_account_settings=models.UserAccountSettings(
                admin_user_name="demoUser", admin_user_password="Demo-Passw0rd"
            ),
            node_setup=models.NodeSetup(mount_volumes=mount),
        ),
    ).result()
    found = _wait(
        lambda: batchai.clusters.get(resource_group, workspace, cluster),
        lambda c: c.node_state_counts is not None and c.node_state_counts.idle_node_count >= 1,
    )

    batchai.experiments.begin_create(resource_group, workspace, experiment).result()
    root = "$AZ_BATCHAI_MOUNT_ROOT/afs"
    batchai.jobs.begin_create(
        resource_group,
        workspace,
        experiment,
        job,
        models.JobCreateParameters(
            cluster=models.ResourceId(id=found.id),
            node_count=1,
            std_out_err_path_prefix=root,
            input_directories=[models.InputDirectory(id="SAMPLE", path=f"{root}/mnistcntksample")],
            output_directories=[
                models.OutputDirectory(id="MODEL", path_prefix=root, path_suffix="Models")
            ],
            cntk_settings=models.CNTKsettings(
                python_script_file_path="$AZ_BATCHAI_INPUT_SAMPLE/train.py",
                command_line_args=f"--seconds {seconds}",
            ),
        ),
    ).result()
    ended = _wait(
        lambda: batchai.jobs.get(resource_group, workspace, experiment, job),
        lambda j: j.execution_state in ("succeeded", "failed"),
    )
    if ended.execution_state != "succeeded":
        raise SystemExit(f"seed procedure: the job ended {ended.execution_state}")

    for output_id in ("stdouterr", "MODEL"):
        listed = batchai.jobs.list_output_files(
            resource_group,
            workspace,
            experiment,
            job,
            models.JobsListOutputFilesOptions(outputdirectoryid=output_id),
        )
        for item in listed:
            if item.file_type != "file":
                continue
            answer = requests.get(item.download_url, timeout=30, verify=env["REQUESTS_CA_BUNDLE"])
            answer.raise_for_status()
            (download_dir / output_id).mkdir(parents=True, exist_ok=True)
            (download_dir / output_id / item.name.rsplit("/", 1)[-1]).write_bytes(answer.content)

    batchai.jobs.begin_delete(resource_group, workspace, experiment, job).result()
    batchai.clusters.begin_delete(resource_group, workspace, cluster).result()


def request_counts(stats: dict[str, Any]) -> Counter[str]:
    return Counter({op: sum(outs.values()) for op, outs in stats["requests"].items()})


def side(counts: Counter[str], wall: float) -> dict[str, Any]:
    return {
        "requests_by_operation": {op: n for op, n in sorted(counts.items()) if n},
        "requests_total": sum(counts.values()),
        "arm_reads": sum(counts[op] for op in ARM_READS),
        "jobs_get": counts["Jobs_Get"],
        "wall_seconds": round(wall, 2),
    }


def chain_run(stack: Stack, spec: RunSpec) -> dict[str, Any]:
    """One run of `spec` through the chain: its requests and its wall time."""
    before = request_counts(stack.stats())
    submitted = time.time()
    run_id = stack.submit(spec)
    record = stack.wait_terminal(run_id, timeout=TIMEOUT_SECONDS)
    if record.status is not RunStatus.SUCCEEDED or record.finished_at is None:
        raise SystemExit(f"FAILED: run {run_id} ended {record.status.value}: {record.error}")
    return side(request_counts(stack.stats()) - before, record.finished_at - submitted)


def compare(
    stack: Stack,
    seed_emulator: EmulatorProcess,
    workdir: Path,
    seconds: float,
    tag: str,
    repeat: bool,
) -> dict[str, Any]:
    seed_before = request_counts(seed_emulator.stats())
    seed_wall: list[float] = []
    failure: list[BaseException] = []

    def seed() -> None:
        started = time.time()
        try:
            seed_procedure(seed_emulator.env, samples, workdir / f"seed-{tag}", seconds, tag)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        seed_wall.append(time.time() - started)

    # The same files as the chain's inputs: the script and the data.
    samples = sorted([*stack.code_dir.iterdir(), *stack.data_dir.iterdir()])
    thread = threading.Thread(target=seed)
    # A name of its own: the runtimes of earlier runs of a name are the chain's poll hint.
    spec = stack.spec(name=f"job-{tag}", seconds=seconds)
    thread.start()
    chain = chain_run(stack, spec)
    thread.join(TIMEOUT_SECONDS)
    if failure:
        raise failure[0]
    script = side(request_counts(seed_emulator.stats()) - seed_before, seed_wall[0])
    row: dict[str, Any] = {"job_seconds": seconds, "script": script, "chain": chain}
    if repeat:
        # The same job again: the chain now knows how long it takes (the script never does).
        repeated = chain_run(stack, spec)
        row["chain_repeat"] = repeated
        row["ratio_requests_chain_repeat_to_script"] = round(
            repeated["requests_total"] / script["requests_total"], 3
        )
        row["ratio_wall_chain_repeat_to_script"] = round(
            repeated["wall_seconds"] / script["wall_seconds"], 3
        )
    return {
        **row,
        "ratio_requests_chain_to_script": round(
            chain["requests_total"] / script["requests_total"], 3
        ),
        "ratio_arm_reads_chain_to_script": round(chain["arm_reads"] / script["arm_reads"], 3),
        "ratio_wall_chain_to_script": round(chain["wall_seconds"] / script["wall_seconds"], 3),
    }


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"{'job s':>6} {'requests chain/script':>22} {'ARM reads chain/script':>23} "
        f"{'wall chain/script':>18} {'wall s chain / script':>22}"
    )
    for row in summary["jobs"]:
        chain, script = row["chain"], row["script"]
        print(
            f"{row['job_seconds']:>6.0f} "
            f"{row['ratio_requests_chain_to_script']:>6.2f} ({chain['requests_total']}/"
            f"{script['requests_total']}){'':>6} "
            f"{row['ratio_arm_reads_chain_to_script']:>6.2f} ({chain['arm_reads']}/"
            f"{script['arm_reads']}){'':>7} {row['ratio_wall_chain_to_script']:>18.2f} "
            f"{chain['wall_seconds']:>10.1f} / {script['wall_seconds']:.1f}"
        )
    for row in summary["jobs"]:
        if "chain_repeat" in row:
            again = row["chain_repeat"]
            print(
                f"{row['job_seconds']:>6.0f} again: requests {again['requests_total']} "
                f"(x{row['ratio_requests_chain_repeat_to_script']:.2f} the script's), wall "
                f"{again['wall_seconds']:.1f} s (x{row['ratio_wall_chain_repeat_to_script']:.2f})"
                " -- the chain's second run of the job, polled at its known runtime"
            )
    for row in summary["jobs"]:
        operations = sorted(
            set(row["chain"]["requests_by_operation"]) | set(row["script"]["requests_by_operation"])
        )
        print(f"\nrequests by operation, job {row['job_seconds']:.0f} s: chain / script")
        for op in operations:
            print(
                f"  {op:<32} {row['chain']['requests_by_operation'].get(op, 0):>4} / "
                f"{row['script']['requests_by_operation'].get(op, 0):>4}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="10,120", help="comma-separated job seconds")
    parser.add_argument("--provision-seconds", type=float, default=3.0)
    parser.add_argument(
        "--no-repeat",
        dest="repeat",
        action="store_false",
        help="skip the chain's second run of each job (the one with a poll hint)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary only")
    args = parser.parse_args()
    lengths = [float(part) for part in args.jobs.split(",") if part.strip()]
    if not lengths or any(length < 0 for length in lengths) or args.provision_seconds < 0:
        parser.error("--jobs needs lengths >= 0, --provision-seconds >= 0")
    configure_logging("WARNING")
    provision = ["--provision-seconds", str(args.provision_seconds)]
    with tempfile.TemporaryDirectory(prefix="orch-bench-seed-") as tmp, RedisServer() as server:
        workdir = Path(tmp)
        with (
            EmulatorProcess(workdir / "emulator-chain", *provision) as chain_emulator,
            EmulatorProcess(workdir / "emulator-seed", *provision) as seed_emulator,
        ):
            (workdir / "stack").mkdir()
            stack = Stack(chain_emulator, server.url, workdir / "stack")
            (stack.code_dir / "train.py").write_text(TRAIN_SCRIPT)
            try:
                stack.start_worker(defaults=True)
                warmup = stack.wait_terminal(stack.submit(stack.spec("warmup", seconds=0)))
                if warmup.status is not RunStatus.SUCCEEDED:
                    raise SystemExit(f"FAILED: warm-up run ended {warmup.status.value}")
                rows = [
                    compare(stack, seed_emulator, workdir, length, f"{index}", args.repeat)
                    for index, length in enumerate(lengths)
                ]
            finally:
                stack.close()
    summary = {"provision_seconds": args.provision_seconds, "jobs": rows, "cpus": os.cpu_count()}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
