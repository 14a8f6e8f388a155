"""The reaper against the emulator: what a SIGKILLed run left behind is deleted."""

from __future__ import annotations

import pytest
from chain_stack import Stack, wait_for

from orchestrator.gateway import AzureGateway
from orchestrator.naming import azure_names
from orchestrator.reaper import reap
from orchestrator.settings import Settings
from orchestrator.status import FailureReason, RunStatus
from orchestrator.steps import StepContext

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
