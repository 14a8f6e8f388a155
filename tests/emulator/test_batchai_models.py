"""Unit tests of the Batch AI model, routes and runner, called in-process through the
route table with fake platform services (no server, no SDK; see test_quickstart_flow.py
for the real-SDK tests)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulator.batchai import register, shapes
from emulator.batchai.durations import parse_seconds, to_iso
from emulator.core import EmulatorConfig, EmulatorContext
from emulator.errors import EmulatorError, render
from emulator.faults import FaultRule
from emulator.http import Headers, Request, Response, Router

SUB = "00000000-0000-0000-0000-000000000000"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.BatchAI"
WS = f"{RG}/workspaces/ws"
EXP = f"{WS}/experiments/exp"
V = "2018-05-01"


@dataclass
class FakeStats:
    resources: list[tuple[str, str]] = field(default_factory=list)

    def record_request(self, operation: str, outcome: str) -> None:
        pass

    def record_resource(self, event: str, kind: str) -> None:
        self.resources.append((event, kind))

    def record_peak(self, name: str, value: int) -> None:
        pass

    def add_bytes_uploaded(self, count: int) -> None:
        pass

    def add_bytes_downloaded(self, count: int) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"resources": list(self.resources)}

    def clear(self) -> None:
        self.resources.clear()


@dataclass
class FakeFaults:
    active: set[str] = field(default_factory=set)

    def roll(self, kind: str, operation: str) -> bool:
        return kind in self.active

    def rules(self) -> list[dict[str, Any]]:
        return [{"kind": kind} for kind in sorted(self.active)]

    def set_rules(self, rules: list[FaultRule]) -> None:
        self.active = {rule.kind for rule in rules}

    def clear(self) -> None:
        self.active.clear()


@dataclass
class FakeGroups:
    callbacks: list[Callable[[str, str], None]] = field(default_factory=list)

    def exists(self, subscription_id: str, name: str) -> bool:
        return name == "rg"

    def location(self, subscription_id: str, name: str) -> str | None:
        return "eastus"

    def on_delete(self, callback: Callable[[str, str], None]) -> None:
        self.callbacks.append(callback)


@dataclass
class FakeShares:
    root: Path

    def share_root(self, share: str) -> Path:
        return self.root / share

    def share_exists(self, share: str) -> bool:
        return (self.root / share).is_dir()

    def sas_url(self, base_url: str, share: str, path: str, expiry_seconds: int = 3600) -> str:
        return f"{base_url}/{share}/{path}?sig=fake&se={expiry_seconds}"


@dataclass
class Emu:
    router: Router
    ctx: EmulatorContext
    stats: FakeStats
    faults: FakeFaults
    groups: FakeGroups
    shares: Path

    def call(self, method: str, path: str, body: Any = None, **query: str) -> Response:
        query.setdefault("api-version", V)
        found = self.router.match(method, path)
        assert found, f"no route for {method} {path}"
        route, params = found
        request = Request(
            method,
            path,
            path,
            dict(query),
            Headers({}),
            json.dumps(body).encode() if body is not None else b"",
            "https://127.0.0.1:1",
        )
        try:
            return route.handler(request, params)
        except EmulatorError as exc:
            return render(exc, route.service, method)

    def ok(self, method: str, path: str, body: Any = None, **query: str) -> Any:
        response = self.call(method, path, body, **query)
        assert response.status in (200, 202, 204), response.body
        return json.loads(response.body) if response.body else None

    def wait_job(self, path: str, states: tuple[str, ...] = ("succeeded", "failed")) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = self.ok("GET", path)
            if job["properties"]["executionState"] in states:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job never reached {states}: {job}")


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    shares = tmp_path / "shares"
    (shares / "share1").mkdir(parents=True)
    stats, faults, groups = FakeStats(), FakeFaults(), FakeGroups()
    ctx = EmulatorContext(
        EmulatorConfig(data_dir=tmp_path / "data", python=sys.executable),
        stats,
        faults,
        groups,
        FakeShares(shares),
    )
    router = Router()
    register(router, ctx)
    yield Emu(router, ctx, stats, faults, groups, shares)
    for hook in ctx.shutdown_hooks:
        hook()


def cluster_body(nodes: int = 1, priority: str = "dedicated") -> dict[str, Any]:
    return {
        "properties": {
            "vmSize": "STANDARD_NC6",
            "vmPriority": priority,
            "scaleSettings": {"manual": {"targetNodeCount": nodes}},
            "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "hunter2"},
            "nodeSetup": {
                "mountVolumes": {
                    "azureFileShares": [
                        {
                            "accountName": "devstoreaccount1",
                            "azureFileUrl": "https://devstoreaccount1.file.core.windows.net/share1",
                            "credentials": {"accountKey": "SECRETKEY"},
                            "relativeMountPath": "afs",
                        }
                    ]
                }
            },
        }
    }


def job_body(command: str, **extra: Any) -> dict[str, Any]:
    properties = {
        "cluster": {"id": f"{WS}/clusters/c"},
        "nodeCount": 1,
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "customToolkitSettings": {"commandLine": command},
        "outputDirectories": [
            {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs", "pathSuffix": "models"}
        ],
    }
    properties.update(extra)
    return {"properties": properties}


def setup_cluster(emu: Emu, nodes: int = 1, priority: str = "dedicated") -> None:
    emu.ok("PUT", WS, {"location": "eastus"})
    emu.ok("PUT", EXP, {})
    emu.ok("PUT", f"{WS}/clusters/c", cluster_body(nodes, priority))


def test_durations_accept_iso_and_timespan() -> None:
    assert parse_seconds("PT1H30M") == 5400
    assert parse_seconds("P7D") == 7 * 86400
    assert parse_seconds("7.00:00:00") == 7 * 86400
    assert parse_seconds("PT0.5S") == 0.5
    assert to_iso(5400) == "PT1H30M"
    with pytest.raises(ValueError):
        parse_seconds("one hour")


def test_cluster_nodes_become_idle_and_secrets_are_not_returned(emu: Emu) -> None:
    setup_cluster(emu, nodes=2)
    cluster = emu.ok("GET", f"{WS}/clusters/c")
    props = cluster["properties"]
    assert props["provisioningState"] == "succeeded"
    assert props["allocationState"] == "steady"
    assert props["nodeStateCounts"]["idleNodeCount"] == 2
    assert "hunter2" not in json.dumps(cluster) and "SECRETKEY" not in json.dumps(cluster)
    assert emu.stats.resources.count(("created", "cluster")) == 1


def test_reput_is_idempotent_and_counted_once(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok("PUT", f"{WS}/clusters/c", cluster_body(5))
    assert emu.ok("GET", f"{WS}/clusters/c")["properties"]["currentNodeCount"] == 1
    assert emu.stats.resources.count(("created", "cluster")) == 1


def test_job_runs_with_env_layout_and_output_files(emu: Emu) -> None:
    setup_cluster(emu)
    command = (
        'echo "$AZ_BATCHAI_JOB_NAME $AZ_BATCHAI_NUM_GPUS $TOKEN" && '
        'echo weights > "$AZ_BATCHAI_OUTPUT_MODEL/model.bin"'
    )
    body = job_body(command, secrets=[{"name": "TOKEN", "value": "s3cr3t"}])
    created = emu.ok("PUT", f"{EXP}/jobs/j1", body)
    assert "s3cr3t" not in json.dumps(created)
    job = emu.wait_job(f"{EXP}/jobs/j1")
    assert job["properties"]["executionState"] == "succeeded", job
    assert job["properties"]["executionInfo"]["exitCode"] == 0
    segment = job["properties"]["jobOutputDirectoryPathSegment"]
    share = emu.shares / "share1"
    assert (share / segment / "stdouterr" / "stdout.txt").read_text() == "j1 1 s3cr3t\n"
    assert (share / segment / "outputs" / "models" / "model.bin").read_text() == "weights\n"
    files = emu.ok("POST", f"{EXP}/jobs/j1/listOutputFiles", outputdirectoryid="MODEL")
    assert [f["name"] for f in files["value"]] == ["model.bin"]
    assert files["value"][0]["downloadUrl"].startswith("https://127.0.0.1:1/share1/")
    logs = emu.ok("POST", f"{EXP}/jobs/j1/listOutputFiles", outputdirectoryid="stdouterr")
    assert {f["name"] for f in logs["value"]} == {"stdout.txt", "stderr.txt"}
    counts = emu.ok("GET", f"{WS}/clusters/c")["properties"]["nodeStateCounts"]
    assert counts["idleNodeCount"] == 1 and counts["runningNodeCount"] == 0


def test_failing_job_reports_exit_code(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok("PUT", f"{EXP}/jobs/bad", job_body("exit 3"))
    job = emu.wait_job(f"{EXP}/jobs/bad")
    info = job["properties"]["executionInfo"]
    assert job["properties"]["executionState"] == "failed"
    assert info["exitCode"] == 3 and info["errors"][0]["code"] == "JobFailed"


def test_job_preparation_failure(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok("PUT", f"{EXP}/jobs/prep", job_body("true", jobPreparation={"commandLine": "exit 2"}))
    job = emu.wait_job(f"{EXP}/jobs/prep")
    assert job["properties"]["executionInfo"]["errors"][0]["code"] == "JobPreparationFailed"


def test_queued_until_nodes_idle_then_terminate_kills(emu: Emu) -> None:
    setup_cluster(emu, nodes=0)
    emu.ok("PUT", f"{EXP}/jobs/long", job_body("sleep 60"))
    assert emu.ok("GET", f"{EXP}/jobs/long")["properties"]["executionState"] == "queued"
    emu.ok(
        "PATCH",
        f"{WS}/clusters/c",
        {"properties": {"scaleSettings": {"manual": {"targetNodeCount": 1}}}},
    )
    emu.wait_job(f"{EXP}/jobs/long", ("running",))
    emu.ok("POST", f"{EXP}/jobs/long/terminate")
    job = emu.ok("GET", f"{EXP}/jobs/long")
    assert job["properties"]["executionState"] == "failed"
    counts = emu.ok("GET", f"{WS}/clusters/c")["properties"]["nodeStateCounts"]
    assert counts["idleNodeCount"] == 1


def test_max_wall_clock_time_kills_the_job(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok(
        "PUT", f"{EXP}/jobs/slow", job_body("sleep 60", constraints={"maxWallClockTime": "PT0.3S"})
    )
    job = emu.wait_job(f"{EXP}/jobs/slow")
    assert job["properties"]["executionInfo"]["errors"][0]["code"] == "MaxWallClockTimeExpiry"
    assert job["properties"]["constraints"]["maxWallClockTime"] == "PT0.3S"


def test_allocation_failure_and_unusable_nodes(emu: Emu) -> None:
    emu.ok("PUT", WS, {"location": "eastus"})
    emu.faults.active = {"allocation_failure"}
    emu.ok("PUT", f"{WS}/clusters/c", cluster_body(2))
    props = emu.ok("GET", f"{WS}/clusters/c")["properties"]
    assert props["errors"][0]["code"] == "AllocationFailed"
    assert props["currentNodeCount"] == 0 and props["allocationState"] == "steady"
    emu.faults.active = {"node_unusable"}
    emu.ok("PUT", f"{WS}/clusters/u", cluster_body(2))
    counts = emu.ok("GET", f"{WS}/clusters/u")["properties"]["nodeStateCounts"]
    assert counts["unusableNodeCount"] == 2 and counts["idleNodeCount"] == 0


def test_preemption_requeues_the_job(emu: Emu) -> None:
    setup_cluster(emu, priority="lowpriority")
    emu.faults.active = {"preemption"}
    command = (
        'if [ -f "$AZ_BATCHAI_MOUNT_ROOT/afs/ran" ]; then exit 0; fi; '
        'touch "$AZ_BATCHAI_MOUNT_ROOT/afs/ran"; sleep 60'
    )
    emu.ok("PUT", f"{EXP}/jobs/pre", job_body(command))
    job = emu.wait_job(f"{EXP}/jobs/pre")
    assert job["properties"]["executionState"] == "succeeded"
    assert (emu.shares / "share1" / "ran").exists()


def test_errors(emu: Emu) -> None:
    setup_cluster(emu)
    missing = emu.call(
        "PUT",
        f"{EXP}/jobs/x",
        job_body("true")
        | {
            "properties": job_body("true")["properties"]
            | {"cluster": {"id": f"{WS}/clusters/nope"}}
        },
    )
    assert missing.status == 400 and b"properties.cluster.id" in missing.body
    bad_name = emu.call("PUT", f"{WS}/clusters/bad.name", cluster_body())
    assert bad_name.status == 400 and b"clusterName" in bad_name.body
    too_long = emu.call("PUT", f"{WS}/clusters/{'a' * 65}", cluster_body())
    assert too_long.status == 400
    assert emu.call("GET", f"{WS}/clusters/nope").status == 404
    version = emu.call("GET", f"{WS}/clusters/c", **{"api-version": "2017-09-01-preview"})
    assert version.status == 400 and b"InvalidApiVersionParameter" in version.body
    # The same check as ARM's resource groups (emulator.http.require_api_version).
    no_version = emu.call("GET", f"{WS}/clusters/c", **{"api-version": ""})
    assert no_version.status == 400 and b"MissingApiVersionParameter" in no_version.body
    no_group = emu.call("GET", RG.replace("/rg/", "/other/") + "/workspaces")
    assert no_group.status == 404 and b"ResourceGroupNotFound" in no_group.body
    brainscript = emu.call(
        "PUT",
        f"{EXP}/jobs/bs",
        {
            "properties": {
                "cluster": {"id": f"{WS}/clusters/c"},
                "nodeCount": 1,
                "stdOutErrPathPrefix": "/tmp",
                "cntkSettings": {"languageType": "BrainScript", "configFilePath": "x.cntk"},
            }
        },
    )
    assert brainscript.status == 400 and b"configFilePath" in brainscript.body
    escaping = cluster_body()
    share = escaping["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    share["relativeMountPath"] = "../../outside"
    escape = emu.call("PUT", f"{WS}/clusters/escape", escaping)
    assert escape.status == 400 and b"relativeMountPath" in escape.body


def test_resource_group_delete_kills_and_removes(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok("PUT", f"{EXP}/jobs/long", job_body("sleep 60"))
    emu.wait_job(f"{EXP}/jobs/long", ("running",))
    for callback in emu.groups.callbacks:
        callback(SUB, "rg")
    assert emu.call("GET", WS).status == 404
    assert ("deleted", "job") in emu.stats.resources
    assert ("deleted", "cluster") in emu.stats.resources


def test_shrinking_a_busy_cluster_requeues_its_job(emu: Emu) -> None:
    setup_cluster(emu)
    emu.ok("PUT", f"{EXP}/jobs/busy", job_body("sleep 60"))
    emu.wait_job(f"{EXP}/jobs/busy", ("running",))
    scale = {"properties": {"scaleSettings": {"manual": {"targetNodeCount": 0}}}}
    props = emu.ok("PATCH", f"{WS}/clusters/c", scale)["properties"]
    assert props["currentNodeCount"] == 0
    assert emu.ok("GET", f"{EXP}/jobs/busy")["properties"]["executionState"] == "queued"
    scale["properties"]["scaleSettings"]["manual"]["targetNodeCount"] = 1
    emu.ok("PATCH", f"{WS}/clusters/c", scale)
    emu.wait_job(f"{EXP}/jobs/busy", ("running",))
    emu.ok("DELETE", f"{EXP}/jobs/busy")
    assert emu.call("GET", f"{EXP}/jobs/busy").status == 404
    assert emu.ok("GET", f"{WS}/clusters/c")["properties"]["nodeStateCounts"]["idleNodeCount"] == 1


def _process_alive(pid: int) -> bool:
    """True while pid runs (a zombie waiting for its reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_a_finished_job_leaves_no_process_behind(emu: Emu) -> None:
    setup_cluster(emu)
    pid_file = emu.shares / "share1" / "child.pid"
    command = 'sleep 300 & echo $! > "$AZ_BATCHAI_MOUNT_ROOT/afs/child.pid"'
    emu.ok("PUT", f"{EXP}/jobs/bg", job_body(command))
    job = emu.wait_job(f"{EXP}/jobs/bg")
    assert job["properties"]["executionState"] == "succeeded", job
    pid = int(pid_file.read_text())
    try:
        # The job is over: what it started in the background must die with it.
        deadline = time.monotonic() + 10
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _process_alive(pid), "the job's background process outlived the job"
    finally:
        if _process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_wait_for_job_completion_removes_the_node_when_the_job_ends(emu: Emu) -> None:
    # Spec (DeallocationOption): "waitforjobcompletion - Allow currently running jobs to
    # complete. Schedule no new jobs while waiting. Remove compute nodes when all jobs
    # have completed."
    setup_cluster(emu)
    release = emu.shares / "share1" / "release"
    command = (
        'i=0; while [ ! -f "$AZ_BATCHAI_MOUNT_ROOT/afs/release" ] && [ $i -lt 600 ]; '
        "do sleep 0.05; i=$((i+1)); done"
    )
    emu.ok("PUT", f"{EXP}/jobs/first", job_body(command))
    emu.wait_job(f"{EXP}/jobs/first", ("running",))
    emu.ok("PUT", f"{EXP}/jobs/second", job_body("true"))
    scale = {
        "properties": {
            "scaleSettings": {
                "manual": {"targetNodeCount": 0, "nodeDeallocationOption": "waitforjobcompletion"}
            }
        }
    }
    props = emu.ok("PATCH", f"{WS}/clusters/c", scale)["properties"]
    assert props["currentNodeCount"] == 1 and props["allocationState"] == "resizing"
    release.touch()
    assert emu.wait_job(f"{EXP}/jobs/first")["properties"]["executionState"] == "succeeded"
    deadline = time.monotonic() + 10
    while emu.ok("GET", f"{WS}/clusters/c")["properties"]["currentNodeCount"] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    props = emu.ok("GET", f"{WS}/clusters/c")["properties"]
    assert props["currentNodeCount"] == 0 and props["allocationState"] == "steady"
    assert emu.ok("GET", f"{EXP}/jobs/second")["properties"]["executionState"] == "queued"


def _held_by_another_thread(lock: Any) -> bool:
    result: list[bool] = []

    def probe() -> None:
        got = lock.acquire(blocking=False)
        if got:
            lock.release()
        result.append(not got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


def test_responses_describe_one_state_the_ticker_cannot_change_meanwhile(
    emu: Emu, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job shaped while the ticker finishes it could read "no exit code" and then
    # "failed"; a cluster shaped while a PATCH adds scaleSettings raised mid-copy.
    setup_cluster(emu)
    emu.ok("PUT", f"{EXP}/jobs/j", job_body("true"))
    state = emu.ctx.reset_hooks[0].__self__  # type: ignore[attr-defined]
    held: list[bool] = []
    for name in ("job", "cluster"):
        real = getattr(shapes, name)

        def shaped(record: Any, real: Any = real) -> Any:
            held.append(_held_by_another_thread(state.lock))
            return real(record)

        monkeypatch.setattr(shapes, name, shaped)
    emu.ok("GET", f"{EXP}/jobs/j")
    emu.ok("GET", f"{EXP}/jobs")
    emu.ok("GET", f"{WS}/clusters/c")
    emu.ok("GET", f"{WS}/clusters")
    assert held and all(held), held


def test_reput_of_a_job_with_another_secret_value_conflicts(emu: Emu) -> None:
    # The job would otherwise keep running with the old secret while the caller believes
    # its new definition was accepted; the 409 names neither value.
    setup_cluster(emu, nodes=0)
    emu.ok("PUT", f"{EXP}/jobs/s", job_body("true", secrets=[{"name": "T", "value": "old1"}]))
    emu.ok("PUT", f"{EXP}/jobs/s", job_body("true", secrets=[{"name": "T", "value": "old1"}]))
    changed = emu.call(
        "PUT", f"{EXP}/jobs/s", job_body("true", secrets=[{"name": "T", "value": "new2"}])
    )
    assert changed.status == 409, changed.body
    assert b"old1" not in changed.body and b"new2" not in changed.body
