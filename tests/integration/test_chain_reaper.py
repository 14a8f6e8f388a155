"""The reaper against the emulator: what a SIGKILLed run left behind is deleted."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from typing import Any

import pytest

from orchestrator.azure.gateway import AzureGateway
from orchestrator.chain.reaper import reap
from orchestrator.chain.steps import StepContext
from orchestrator.domain.naming import azure_names
from orchestrator.domain.status import FailureReason, RunStatus
from orchestrator.settings import Settings
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration


def test_reaper_deletes_the_cluster_and_job_of_an_abandoned_run(stack: Stack) -> None:
    settings = Settings(**stack.env(ORCH_REAPER_GRACE_SECONDS="0"))  # type: ignore[arg-type]
    gateway = AzureGateway(settings)
    ctx = StepContext(settings, stack.store, gateway)
    # A run whose worker died after creating its cluster and job, then was
    # marked failed by hand: nothing will ever clean up after it but the reaper.
    record, _ = stack.store.create_run(stack.spec(name="abandoned"), run_id="abandoned-1")
    names = azure_names(record.run_id, record.spec, settings)
    gateway.ensure_resource_group(names.resource_group)
    wait_for(lambda: gateway.ensure_workspace(names.resource_group, names.workspace), 30, "ws")
    gateway.ensure_share(names.share)
    gateway.ensure_cluster(names, record.spec)
    wait_for(lambda: gateway.get_cluster_nodes(names).idle >= 1, 30, "an idle node")
    wait_for(
        lambda: gateway.ensure_experiment(names.resource_group, names.workspace, names.experiment),
        30,
        "the experiment",
    )
    gateway.create_job(names, record.spec)
    # A live run's cluster must survive the same sweep.
    live, _ = stack.store.create_run(stack.spec(name="live"), run_id="live-1")
    live_names = azure_names(live.run_id, live.spec, settings)
    gateway.ensure_cluster(live_names, live.spec)

    stack.store.transition(record.run_id, RunStatus.FAILED, reason=FailureReason.AZURE_ERROR)
    reap(ctx)

    wait_for(lambda: not gateway.cluster_exists(names), 30, "the cluster to be deleted")
    wait_for(lambda: not gateway.job_exists(names), 30, "the job to be deleted")
    assert gateway.cluster_exists(live_names)


def _log_records(text: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines, parsed (anything else it printed is skipped)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with suppress(ValueError):
                records.append(json.loads(line))
    return records


def _succeeded_reap_task_ids(records: list[dict[str, Any]]) -> set[str]:
    """Ids of the batchai.reap tasks that Celery's own trace records returned
    without raising."""
    return {
        match["task_id"]
        for record in records
        if record.get("logger") == "celery.app.trace"
        and (match := REAP_SUCCEEDED.match(str(record.get("event", ""))))
    }


def _reaped_clusters(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record.get("event") == "reaped_cluster"]


REAP_SUCCEEDED = re.compile(r"Task batchai\.reap\[(?P<task_id>[0-9a-f-]+)\] succeeded in ")


def test_beat_schedules_the_reaper_on_the_workers(stack: Stack) -> None:
    import subprocess
    import sys

    # An abandoned run's cluster: nothing but a reap that beat sends and the
    # worker runs will delete it.
    settings = Settings(**stack.env())  # type: ignore[arg-type]
    gateway = AzureGateway(settings)
    record, _ = stack.store.create_run(stack.spec(name="abandoned"), run_id="abandoned-2")
    names = azure_names(record.run_id, record.spec, settings)
    gateway.ensure_resource_group(names.resource_group)
    wait_for(lambda: gateway.ensure_workspace(names.resource_group, names.workspace), 30, "ws")
    gateway.ensure_cluster(names, record.spec)
    stack.store.transition(record.run_id, RunStatus.FAILED, reason=FailureReason.AZURE_ERROR)

    env = stack.env(ORCH_REAPER_INTERVAL_SECONDS="1")
    log = open(stack.tmp_path / "beat.log", "wb")  # noqa: SIM115 - closed below
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "beat",
            "--schedule",
            str(stack.tmp_path / "beat-schedule"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        worker = stack.start_worker(ORCH_REAPER_GRACE_SECONDS="0")

        def reaped_by_a_succeeded_reap() -> list[dict[str, Any]] | None:
            records = _log_records(worker.log())
            succeeded = _succeeded_reap_task_ids(records)
            reaped = [r for r in _reaped_clusters(records) if r.get("task_id") in succeeded]
            return records if reaped else None

        records = wait_for(
            reaped_by_a_succeeded_reap,
            60,
            "a reap task sent by beat to delete the cluster on the worker, and succeed",
        )
        events = [r.get("event") for r in records]
        # The reaper's own records of the deletion, naming the cluster and its run
        # (and nothing else: no other run had resources there), logged by a
        # batchai.reap task that Celery then reported as succeeded.
        reaped = _reaped_clusters(records)
        assert {(r["cluster"], r["run_id"]) for r in reaped} == {(names.cluster, record.run_id)}
        assert {(r["component"], r["task"]) for r in reaped} == {("reaper", "batchai.reap")}
        # Listing and deleting went through: no failure the sweep swallowed.
        assert not {"reap_failed", "reap_resources_failed"} & set(events), events
        assert not gateway.cluster_exists(names)
        requests = stack.stats()["requests"]
        assert (
            "Clusters_List" in requests
            or "Clusters_ListByWorkspace" in requests
            or any(op.startswith("Experiments_List") for op in requests)
        ), requests
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()
