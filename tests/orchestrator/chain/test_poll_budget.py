"""The polling budget at the default settings, and the hint from earlier runs' runtimes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.chain.runner import Dispatch, run_step
from orchestrator.chain.steps import StepContext, poll_countdown
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus, Step
from orchestrator.settings import Settings
from orchestrator.store import RunStore
from tests.support.chain_fakes import FakeClock, FakeGateway


@pytest.fixture
def ctx(fake_redis: redis.Redis, tmp_path: Path) -> Iterator[StepContext]:
    # Every poll setting at its default: the budget is a claim about the defaults.
    settings = Settings(
        _env_file=None, ORCH_ARTIFACTS_DIR=str(tmp_path / "a"), ORCH_INPUT_ROOTS=str(tmp_path)
    )
    yield StepContext(settings, RunStore(fake_redis), FakeGateway(), FakeClock(1_000_000.0))


def poll_times(settings: Settings, horizon: float) -> list[float]:
    times, polls = [0.0], 0
    while times[-1] < horizon:
        times.append(times[-1] + poll_countdown(settings, polls))
        polls += 1
    return times


def test_a_long_job_costs_at_most_60_reads_an_hour_at_the_defaults() -> None:
    settings = Settings(_env_file=None)
    first_hour = [t for t in poll_times(settings, 3600) if t < 3600]
    assert len(first_hour) + 1 <= 60  # + the poll that sees the end
    assert 3600 / poll_countdown(settings, 1000) <= 30  # every hour after the first
    assert poll_countdown(settings, 10_000) == settings.poll_max_seconds  # no overflow


def test_a_hint_shortens_one_wait_and_a_past_one_is_ignored() -> None:
    settings = Settings(_env_file=None)
    assert poll_countdown(settings, 20, poll_by=1030.0, now=1000.0) == 30
    assert poll_countdown(settings, 20, poll_by=990.0, now=1000.0) == 120  # past: ignored
    # Never sooner than poll_initial, never later than the schedule.
    assert poll_countdown(settings, 20, poll_by=1000.2, now=1000.0) == 1
    assert poll_countdown(settings, 0, poll_by=1500.0, now=1000.0) == 1


def test_runtimes_keep_the_median_of_the_last_five(ctx: StepContext) -> None:
    runtimes = ctx.store.runtimes
    assert runtimes.typical("mnist") is None
    for seconds in (100, 10, 30, 31, 29, 32):  # the first falls out
        runtimes.record("mnist", seconds)
    assert runtimes.typical("mnist") == 30
    assert runtimes.typical("other") is None


def test_a_repeated_job_is_polled_just_after_its_typical_runtime(
    ctx: StepContext, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = parse_spec(
        {"name": "nightly", "job": {"script": "train.py"}, "inputs": {"CODE": str(tmp_path)}}
    )
    ctx.store.runtimes.record("nightly", 30.0)
    gateway = ctx.gateway
    assert isinstance(gateway, FakeGateway) and isinstance(ctx.clock, FakeClock)
    gateway.job_states = ["running"] * 7 + ["succeeded"]
    record, _ = ctx.store.create_run(spec)
    dispatch: Dispatch | None = Dispatch(Step.ENSURE_RESOURCE_GROUP, record.run_id, "first")
    poll_at: list[float] = []
    while dispatch is not None:
        ctx.clock.now += dispatch.countdown
        if dispatch.step is Step.POLL_JOB:
            poll_at.append(ctx.clock.now)
        dispatch = run_step(ctx, dispatch.step, record.run_id, dispatch.task_id)
    assert ctx.store.get(record.run_id).status is RunStatus.SUCCEEDED
    since = poll_at[0]
    # 0, 1, 2.5, 4.75, 8.1, 13.2, 20.8, then 31.6 = 30 + 1 s + 2% instead of 32.2.
    assert [round(t - since, 2) for t in poll_at] == [0, 1, 2.5, 4.75, 8.12, 13.19, 20.78, 31.6]
    detail = ctx.store.get(record.run_id).step(Step.POLL_JOB).detail
    assert detail["typical_runtime_seconds"] == 30.0
