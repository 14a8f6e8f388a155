"""collect_outputs is bounded per run: files and apparent bytes (issue 16)."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator.azure.types import OutputFile
from orchestrator.chain.steps import Done, StepContext, collect_outputs
from orchestrator.domain.spec import parse_spec
from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore
from tests.support.chain_fakes import FakeGateway

SPARSE = 11 * 1024**3  # apparent size of a sparse file: over the default 10 GiB


def _collect(
    fake_redis: redis.Redis, tmp_path: Path, gateway: FakeGateway, **knobs: str
) -> tuple[Done, RunRecord]:
    settings = Settings(ORCH_ARTIFACTS_DIR=str(tmp_path / "artifacts"), **knobs)
    ctx = StepContext(settings, RunStore(fake_redis), gateway)
    spec = parse_spec(
        {"name": "big", "job": {"toolkit": "custom", "command": "true"}, "outputs": ["MODEL"]}
    )
    record, _ = ctx.store.create_run(spec)
    outcome = collect_outputs(ctx, record.run_id)
    assert isinstance(outcome, Done)
    return outcome, ctx.store.get(record.run_id)


def test_a_sparse_file_over_the_default_cap_is_left_and_recorded_as_truncated(
    fake_redis: redis.Redis, tmp_path: Path
) -> None:
    gateway = FakeGateway(
        extra_outputs=[OutputFile("sparse.bin", "https://x/sparse", False, size=SPARSE)]
    )
    outcome, record = _collect(fake_redis, tmp_path, gateway)  # every setting at its default
    assert record.outputs_truncated
    assert outcome.detail["truncated"] is True
    assert "outputs/MODEL/sparse.bin" not in record.outputs
    # What fits is kept: the logs and the small model.
    assert record.outputs == ["outputs/MODEL/sub/model.bin", "stdout.txt"]
    assert not list((tmp_path / "artifacts").rglob("sparse.bin"))
    assert gateway.calls["download"] == 2


def test_the_file_count_cap_keeps_the_first_files(fake_redis: redis.Redis, tmp_path: Path) -> None:
    extra = [OutputFile(f"f{i}.bin", f"https://x/f{i}", False, size=1) for i in range(3)]
    _, record = _collect(
        fake_redis, tmp_path, FakeGateway(extra_outputs=extra), ORCH_OUTPUT_MAX_FILES="3"
    )
    assert record.outputs_truncated
    assert len(record.outputs) == 3


def test_under_the_caps_nothing_is_truncated(fake_redis: redis.Redis, tmp_path: Path) -> None:
    outcome, record = _collect(fake_redis, tmp_path, FakeGateway())
    assert not record.outputs_truncated
    assert outcome.detail["truncated"] is False
