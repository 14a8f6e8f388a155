"""The reaper: leaked resources of ended or unknown runs, and only those."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.reaper import reap
from orchestrator.chain.steps import StepContext
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway

NOW = 2_000_000_000.0
GRACE = 600.0


@pytest.fixture
def ctx(fake_redis: redis.Redis, tmp_path: Path) -> Iterator[StepContext]:
    settings = Settings(ORCH_REAPER_GRACE_SECONDS=GRACE, ORCH_VISIBILITY_TIMEOUT_SECONDS=60)
    yield StepContext(settings, RunStore(fake_redis), FakeGateway(), FakeClock(NOW))


def _created(age: float) -> datetime:
    return datetime.fromtimestamp(NOW - age, tz=UTC)


def _spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text("")
    return parse_spec(
        {"name": "nightly", "job": {"script": "train.py"}, "inputs": {"CODE": str(tmp_path)}}
    )


def test_reaps_old_resources_of_ended_and_unknown_runs_only(
    ctx: StepContext, tmp_path: Path
) -> None:
    live, _ = ctx.store.create_run(_spec(tmp_path), run_id="live-run")
    ended, _ = ctx.store.create_run(_spec(tmp_path), run_id="ended-run")
    ctx.store.transition(ended.run_id, RunStatus.FAILED, reason=FailureReason.JOB_FAILED)
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    gateway.listed_clusters = [
        AzureResource("orch-live-run", _created(3600)),  # its run is still going
        AzureResource("orch-ended-run", _created(3600)),  # leaked by an ended run
        AzureResource("orch-ghost-run", _created(3600)),  # run unknown to the store
        AzureResource("orch-young-ghost", _created(60)),  # within the grace period
        AzureResource("warm-pool", _created(99999)),  # shared: never ours to reap
    ]
    gateway.listed_jobs = [
        AzureResource("nightly-ended-run", _created(3600), experiment="nightly"),
        AzureResource("nightly-live-run", _created(3600), experiment="nightly"),
    ]
    reap(ctx)
    assert sorted(gateway.deleted) == ["nightly-ended-run", "orch-ended-run", "orch-ghost-run"]
    assert ctx.store.get(live.run_id).status is RunStatus.QUEUED


@pytest.mark.parametrize("failing", ["delete_job", "list_job_resources"])
def test_a_job_the_reaper_cannot_delete_does_not_stop_it_reaping_clusters(
    ctx: StepContext, failing: str
) -> None:
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    gateway.listed_jobs = [AzureResource("nightly-ghost-run", _created(3600), "nightly")]
    gateway.listed_clusters = [AzureResource("orch-ghost-run", _created(3600))]
    gateway.fail_on[failing] = PermanentAzureError("HTTP 409", reason=FailureReason.AZURE_ERROR)
    reap(ctx)
    assert gateway.deleted == ["orch-ghost-run"]
