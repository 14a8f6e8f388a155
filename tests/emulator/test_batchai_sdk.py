"""Batch AI behaviour as the 7.0.0 SDK sees it through the emulator server: model faults,
failures, termination, wall-clock limits, validation, auth and cascading deletes."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.mgmt.batchai.models as models
import pytest
import requests
from azure.core.exceptions import HttpResponseError

from emulator.testing import (
    ManualClock,
    RunningEmulator,
    arm_client,
    file_service,
    start_emulator,
)
from tests.emulator.test_quickstart_flow import (
    CLUSTER,
    EXPERIMENT,
    GROUP,
    SHARE,
    WORKSPACE,
    cluster_parameters,
    prepare_quickstart,
    wait_for,
)


@pytest.fixture
def batchai(emulator: RunningEmulator, arm: Any, files: Any) -> Any:
    return prepare_quickstart(emulator, arm, files)


def custom_job(client: Any, name: str, command: str, cluster: str = CLUSTER, **extra: Any) -> Any:
    return client.jobs.begin_create(
        GROUP,
        WORKSPACE,
        EXPERIMENT,
        name,
        models.JobCreateParameters(
            cluster=models.ResourceId(id=client.clusters.get(GROUP, WORKSPACE, cluster).id),
            node_count=1,
            std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
            custom_toolkit_settings=models.CustomToolkitSettings(command_line=command),
            **extra,
        ),
    ).result()


def finished(client: Any, name: str, states: tuple[str, ...] = ("succeeded", "failed")) -> Any:
    return wait_for(
        lambda: client.jobs.get(GROUP, WORKSPACE, EXPERIMENT, name),
        lambda j: j.execution_state in states,
    )


def make_cluster(client: Any, env: dict[str, str], name: str = CLUSTER, **extra: Any) -> Any:
    return client.clusters.begin_create(
        GROUP, WORKSPACE, name, cluster_parameters(env, **extra)
    ).result()


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_share(files: Any, path: str, name: str) -> str:
    return str(files.get_file_to_text(SHARE, path, name).content)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_allocation_failure(emulator: RunningEmulator, batchai: Any) -> None:
    emulator.set_faults([{"kind": "allocation_failure", "rate": 1.0, "count": 1}])
    cluster = make_cluster(batchai, emulator.env)
    cluster = batchai.clusters.get(GROUP, WORKSPACE, CLUSTER)
    assert cluster.allocation_state == "steady"
    assert cluster.current_node_count == 0
    assert [e.code for e in cluster.errors] == ["AllocationFailed"]
    # A later resize is a new allocation attempt (the fault hit only once).
    batchai.clusters.update(
        GROUP,
        WORKSPACE,
        CLUSTER,
        models.ClusterUpdateParameters(
            scale_settings=models.ScaleSettings(
                manual=models.ManualScaleSettings(target_node_count=2)
            )
        ),
    )
    cluster = wait_for(
        lambda: batchai.clusters.get(GROUP, WORKSPACE, CLUSTER),
        lambda c: c.node_state_counts.idle_node_count == 2,
    )
    assert cluster.node_state_counts.idle_node_count == 2 and not cluster.errors


def test_unusable_nodes_never_run_jobs(emulator: RunningEmulator, batchai: Any, files: Any) -> None:
    emulator.set_faults([{"kind": "node_unusable", "rate": 1.0, "count": 1}])
    make_cluster(batchai, emulator.env)  # the fault hits this cluster's nodes only
    cluster = wait_for(
        lambda: batchai.clusters.get(GROUP, WORKSPACE, CLUSTER),
        lambda c: c.node_state_counts.preparing_node_count == 0,
    )
    assert cluster.node_state_counts.unusable_node_count == 1
    assert cluster.node_state_counts.idle_node_count == 0
    make_cluster(batchai, emulator.env, name="healthy")
    ran = 'touch "$AZ_BATCHAI_MOUNT_ROOT/afs/ran-$AZ_BATCHAI_JOB_NAME"'
    custom_job(batchai, "waits", ran)
    # Queued after "waits" at the same priority: every scheduling pass that starts
    # "runs" considered "waits" first, so once "runs" is done "waits" had its chances.
    custom_job(batchai, "runs", ran, cluster="healthy")
    assert finished(batchai, "runs").execution_state == "succeeded"
    root = emulator.emulator.shares.share_root(SHARE)
    assert (root / "ran-runs").exists()
    waits = batchai.jobs.get(GROUP, WORKSPACE, EXPERIMENT, "waits")
    assert waits.execution_state == "queued"
    assert waits.execution_info is None or waits.execution_info.start_time is None
    assert not (root / "ran-waits").exists()
    cluster = batchai.clusters.get(GROUP, WORKSPACE, CLUSTER)
    assert cluster.node_state_counts.unusable_node_count == 1
    assert cluster.node_state_counts.running_node_count == 0


def test_preemption_requeues_and_reruns(
    emulator: RunningEmulator, batchai: Any, files: Any
) -> None:
    make_cluster(batchai, emulator.env, vm_priority="lowpriority")
    emulator.set_faults([{"kind": "preemption", "rate": 1.0, "count": 1}])
    command = (
        'echo run >> "$AZ_BATCHAI_MOUNT_ROOT/afs/runs.txt"; '
        'if [ "$(wc -l < "$AZ_BATCHAI_MOUNT_ROOT/afs/runs.txt")" -gt 1 ]; then exit 0; fi; '
        "sleep 60"
    )
    custom_job(batchai, "preempted", command)
    job = finished(batchai, "preempted")
    assert job.execution_state == "succeeded", job.execution_info
    assert read_share(files, "", "runs.txt") == "run\nrun\n"


def test_exit_code_one_fails(emulator: RunningEmulator, batchai: Any) -> None:
    make_cluster(batchai, emulator.env)
    custom_job(batchai, "fails", "echo oops >&2; exit 1")
    job = finished(batchai, "fails")
    assert job.execution_state == "failed"
    assert job.execution_info.exit_code == 1
    assert job.execution_info.errors[0].code == "JobFailed"
    assert job.execution_info.end_time is not None


def test_terminate_kills_the_process_group(
    emulator: RunningEmulator, batchai: Any, files: Any
) -> None:
    make_cluster(batchai, emulator.env)
    command = 'sleep 60 & echo "$$ $!" > "$AZ_BATCHAI_MOUNT_ROOT/afs/pids.txt"; wait'
    custom_job(batchai, "long", command)
    finished(batchai, "long", ("running",))
    root = emulator.emulator.shares.share_root(SHARE)
    assert wait_until(lambda: (root / "pids.txt").exists() and (root / "pids.txt").read_text())
    pids = [int(p) for p in (root / "pids.txt").read_text().split()]
    assert all(alive(pid) for pid in pids)
    batchai.jobs.begin_terminate(GROUP, WORKSPACE, EXPERIMENT, "long").result()
    job = batchai.jobs.get(GROUP, WORKSPACE, EXPERIMENT, "long")
    assert job.execution_state == "failed"
    assert wait_until(lambda: not any(alive(pid) for pid in pids))
    cluster = batchai.clusters.get(GROUP, WORKSPACE, CLUSTER)
    assert cluster.node_state_counts.idle_node_count == 1


def test_max_wall_clock_time(emulator: RunningEmulator, batchai: Any) -> None:
    make_cluster(batchai, emulator.env)
    custom_job(
        batchai,
        "too_slow",
        "sleep 60",
        constraints=models.JobBasePropertiesConstraints(
            max_wall_clock_time=datetime.timedelta(seconds=1)
        ),
    )
    job = finished(batchai, "too_slow")
    assert job.execution_state == "failed"
    assert job.execution_info.errors[0].code == "MaxWallClockTimeExpiry"
    assert job.constraints.max_wall_clock_time == datetime.timedelta(seconds=1)


def test_job_on_missing_cluster_is_rejected(emulator: RunningEmulator, batchai: Any) -> None:
    make_cluster(batchai, emulator.env)
    cluster_id = batchai.clusters.get(GROUP, WORKSPACE, CLUSTER).id
    with pytest.raises(HttpResponseError) as rejected:
        batchai.jobs.begin_create(
            GROUP,
            WORKSPACE,
            EXPERIMENT,
            "orphan",
            models.JobCreateParameters(
                cluster=models.ResourceId(id=cluster_id.replace(CLUSTER, "no_such_cluster")),
                node_count=1,
                std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
                custom_toolkit_settings=models.CustomToolkitSettings(command_line="true"),
            ),
        ).result()
    assert rejected.value.status_code == 400
    assert "properties.cluster.id" in str(rejected.value.message)


def test_secrets_are_set_but_never_returned(
    emulator: RunningEmulator, batchai: Any, files: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_cluster(batchai, emulator.env)
    job = custom_job(
        batchai,
        "secret",
        'echo "$API_TOKEN" > "$AZ_BATCHAI_MOUNT_ROOT/afs/token.txt"',
        secrets=[models.EnvironmentVariableWithSecretValue(name="API_TOKEN", value="tok-123")],
    )
    assert job.secrets[0].value is None
    assert finished(batchai, "secret").execution_state == "succeeded"
    assert read_share(files, "", "token.txt") == "tok-123\n"
    raw = raw_session(emulator).get(
        f"{emulator.url}{job.id}", params={"api-version": "2018-05-01"}, timeout=30
    )
    assert "tok-123" not in raw.text
    listed = batchai.jobs.list_by_experiment(GROUP, WORKSPACE, EXPERIMENT)
    assert all(s.value is None for j in listed for s in j.secrets or [])
    assert caplog.records and "tok-123" not in caplog.text
    assert emulator.env["AZURE_STORAGE_KEY"] not in caplog.text


def raw_session(emulator: RunningEmulator, authenticated: bool = True) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = emulator.ca_bundle
    if authenticated:
        session.headers.update(emulator.auth_headers)
    return session


def test_names_auth_and_api_version(emulator: RunningEmulator, batchai: Any) -> None:
    base = (
        f"{emulator.url}/subscriptions/{emulator.env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/"
        f"{GROUP}/providers/Microsoft.BatchAI/workspaces/{WORKSPACE}"
    )
    session = raw_session(emulator)
    version = {"api-version": "2018-05-01"}
    bad = session.put(f"{base}/clusters/bad.name!", params=version, json={}, timeout=30)
    assert bad.status_code == 400 and "clusterName" in bad.json()["error"]["message"]
    long_name = session.put(f"{base}/experiments/{'x' * 65}", params=version, json={}, timeout=30)
    assert long_name.status_code == 400 and "experimentName" in long_name.text
    old = session.get(base, params={"api-version": "2017-09-01-preview"}, timeout=30)
    assert old.status_code == 400
    assert old.json()["error"]["code"] == "InvalidApiVersionParameter"
    anonymous = raw_session(emulator, authenticated=False).get(base, params=version, timeout=30)
    assert anonymous.status_code == 401


def test_resource_group_delete_cascades(
    emulator: RunningEmulator, batchai: Any, arm: Any, files: Any
) -> None:
    make_cluster(batchai, emulator.env)
    custom_job(batchai, "long", 'echo $$ > "$AZ_BATCHAI_MOUNT_ROOT/afs/pid.txt"; exec sleep 60')
    finished(batchai, "long", ("running",))
    root = emulator.emulator.shares.share_root(SHARE)
    assert wait_until(lambda: (root / "pid.txt").exists() and (root / "pid.txt").read_text())
    pid = int((root / "pid.txt").read_text())
    arm.resource_groups.begin_delete(GROUP).result()
    assert wait_until(lambda: not alive(pid))
    with pytest.raises(HttpResponseError) as gone:
        batchai.workspaces.get(GROUP, WORKSPACE)
    assert gone.value.status_code == 404
    resources = emulator.stats()["resources"]
    assert resources["deleted"]["job"] == 1
    assert resources["deleted"]["cluster"] == 1
    assert resources["deleted"]["workspace"] == 1


def test_cluster_delete_fails_its_jobs(emulator: RunningEmulator, batchai: Any) -> None:
    make_cluster(batchai, emulator.env)
    custom_job(batchai, "orphaned", "sleep 60")
    finished(batchai, "orphaned", ("running",))
    batchai.clusters.begin_delete(GROUP, WORKSPACE, CLUSTER).result()
    job = batchai.jobs.get(GROUP, WORKSPACE, EXPERIMENT, "orphaned")
    assert job.execution_state == "failed"
    assert job.execution_info.errors[0].code == "ClusterDeleted"


def test_auto_scale_grows_for_queued_jobs(emulator: RunningEmulator, batchai: Any) -> None:
    batchai.clusters.begin_create(
        GROUP,
        WORKSPACE,
        "auto",
        models.ClusterCreateParameters(
            vm_size="STANDARD_NC6",
            scale_settings=models.ScaleSettings(
                auto_scale=models.AutoScaleSettings(
                    minimum_node_count=0, maximum_node_count=2, initial_node_count=1
                )
            ),
            user_account_settings=models.UserAccountSettings(admin_user_name="u"),
        ),
    ).result()
    cluster = wait_for(
        lambda: batchai.clusters.get(GROUP, WORKSPACE, "auto"),
        lambda c: c.node_state_counts.idle_node_count == 1,
    )
    assert cluster.current_node_count == 1
    batchai.jobs.begin_create(
        GROUP,
        WORKSPACE,
        EXPERIMENT,
        "two_nodes",
        models.JobCreateParameters(
            cluster=models.ResourceId(id=cluster.id),
            node_count=2,
            std_out_err_path_prefix="$AZ_BATCHAI_JOB_TEMP",
            custom_toolkit_settings=models.CustomToolkitSettings(command_line="true"),
        ),
    ).result()
    job = finished(batchai, "two_nodes")
    assert job.execution_state == "succeeded"
    cluster = wait_for(
        lambda: batchai.clusters.get(GROUP, WORKSPACE, "auto"),
        lambda c: c.current_node_count == 0,
    )
    assert cluster.current_node_count == 0  # back to minimumNodeCount once idle


def test_reset_kills_running_jobs(emulator: RunningEmulator, batchai: Any, files: Any) -> None:
    make_cluster(batchai, emulator.env)
    custom_job(batchai, "long", 'echo $$ > "$AZ_BATCHAI_MOUNT_ROOT/afs/pid.txt"; exec sleep 60')
    finished(batchai, "long", ("running",))
    root = emulator.emulator.shares.share_root(SHARE)
    assert wait_until(lambda: (root / "pid.txt").exists() and (root / "pid.txt").read_text())
    pid = int((root / "pid.txt").read_text())
    emulator.reset(state=True)
    assert wait_until(lambda: not alive(pid))


def test_shutdown_kills_jobs_and_nodes_take_provision_seconds(tmp_path: Path) -> None:
    clock = ManualClock()
    with start_emulator(tmp_path, provision_seconds=0.5, clock=clock) as emu:
        client = prepare_quickstart(emu, arm_client(emu.env), file_service(emu.env))
        make_cluster(client, emu.env)
        custom_job(client, "long", 'echo $$ > "$AZ_BATCHAI_MOUNT_ROOT/afs/pid.txt"; exec sleep 60')
        # However slowly these requests are served, the emulator's time stands still.
        clock.advance(0.4)
        cluster = client.clusters.get(GROUP, WORKSPACE, CLUSTER)
        assert cluster.node_state_counts.preparing_node_count == 1
        assert cluster.allocation_state == "resizing"
        assert client.jobs.get(GROUP, WORKSPACE, EXPERIMENT, "long").execution_state == "queued"
        clock.advance(0.2)  # past provision_seconds: the node is ready, the job starts
        cluster = wait_for(
            lambda: client.clusters.get(GROUP, WORKSPACE, CLUSTER),
            lambda c: c.node_state_counts.running_node_count == 1,
        )
        assert cluster.node_state_counts.running_node_count == 1
        assert cluster.allocation_state == "steady"
        root = emu.emulator.shares.share_root(SHARE)
        assert wait_until(lambda: (root / "pid.txt").exists() and (root / "pid.txt").read_text())
        pid = int((root / "pid.txt").read_text())
        assert alive(pid)
    assert wait_until(lambda: not alive(pid))
