"""The reaper: leaked resources of ended or unknown runs, and only those."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from orchestrator.azure.errors import PermanentAzureError
from orchestrator.azure.types import AzureResource
from orchestrator.chain.reaper import reap
from orchestrator.chain.steps import StepContext
from orchestrator.domain.inputs import Manifest, ManifestEntry
from orchestrator.domain.naming import upload_blob_path
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


# ------------------------------------------------------------ share retention
DAY = 86400.0


def _upload(ctx: StepContext, body: bytes, used_at: float) -> str:
    """An upload of one file, committed (and last used) at `used_at`."""
    digest = hashlib.sha256(body).hexdigest()
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    gateway.share_files[upload_blob_path(digest)] = body
    gateway.share_complete[upload_blob_path(digest)] = "md5"
    manifest = Manifest(files=[ManifestEntry(path="a.bin", sha256=digest, size=len(body))])
    return ctx.store.uploads.commit(manifest, used_at)


def test_uploads_unused_past_retention_and_named_by_no_live_run_are_deleted(
    ctx: StepContext,
) -> None:
    old_free = _upload(ctx, b"old, unused", NOW - 8 * DAY)
    old_queued = _upload(ctx, b"old, but a queued run names it", NOW - 8 * DAY)
    recent = _upload(ctx, b"recent", NOW - 1 * DAY)
    spec = parse_spec(
        {
            "name": "q",
            "job": {"toolkit": "custom", "command": "true"},
            "inputs": {"X": f"upload:{old_queued}"},
        }
    )
    ctx.store.create_run(spec)  # queued: not started for a week (a long queue)
    report = reap(ctx)
    assert report.deleted_uploads == [old_free]
    assert ctx.store.uploads.get(old_free) is None
    for kept in (old_queued, recent):
        assert ctx.store.uploads.get(kept) is not None
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway)
    remaining = {path.rsplit("/", 1)[1] for path in gateway.share_files}
    assert remaining == {
        hashlib.sha256(b"old, but a queued run names it").hexdigest(),
        hashlib.sha256(b"recent").hexdigest(),
    }


def test_uploads_never_expire_with_retention_keep(fake_redis: redis.Redis) -> None:
    settings = Settings(ORCH_UPLOAD_RETENTION="keep")
    ctx = StepContext(settings, RunStore(fake_redis), FakeGateway(), FakeClock(NOW))
    upload_id = _upload(ctx, b"kept forever", NOW - 400 * DAY)
    assert reap(ctx).deleted_uploads == []
    assert ctx.store.uploads.get(upload_id) is not None


def test_outputs_are_kept_by_default_and_expire_with_a_retention(
    fake_redis: redis.Redis, tmp_path: Path
) -> None:
    store = RunStore(fake_redis)
    record, _ = store.create_run(_spec(tmp_path))
    store.transition(record.run_id, RunStatus.FAILED, reason=FailureReason.JOB_FAILED)
    later = NOW + 40 * DAY  # the run ended "now"; the sweeps below run 40 days later
    default = StepContext(Settings(), store, FakeGateway(), FakeClock(later))
    assert reap(default).expired_outputs == []
    gateway = FakeGateway()
    prefix = f"outputs/nightly/{record.run_id}"
    gateway.share_files[f"{prefix}/seg/stdouterr/stdout.txt"] = b"log"
    expiring = StepContext(Settings(ORCH_OUTPUT_RETENTION="P30D"), store, gateway, FakeClock(later))
    assert reap(expiring).expired_outputs == [record.run_id]
    assert gateway.share_files == {}
    assert store.get(record.run_id).outputs_expired
    assert reap(expiring).expired_outputs == []  # once
