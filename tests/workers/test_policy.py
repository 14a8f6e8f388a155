"""workers.policy.ChainTask maps errors to retries and failed runs.

The chain itself is tested with real workers (tests/integration); here a task
is applied locally with the step runner replaced, to see the policy alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.sentinel import MasterNotFoundError

import workers.context as context
import workers.policy as policy
from orchestrator.azure.errors import TransientAzureError
from orchestrator.chain.runner import Dispatch
from orchestrator.domain.status import FailureReason, Step
from orchestrator.settings import Settings
from workers.tasks import STEP_TASKS


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    recorded: dict[str, list[Any]] = {"run": [], "fail": [], "send": []}
    monkeypatch.setattr(policy, "get_settings", lambda: Settings(ORCH_STEP_MAX_RETRIES=2))
    monkeypatch.setattr(context, "worker_context", lambda: "ctx")
    monkeypatch.setattr(
        policy,
        "fail_step",
        lambda ctx, step, run_id, reason, error: (
            recorded["fail"].append((step, reason, error))
            or Dispatch(Step.CLEANUP, run_id, "cleanup-id")
        ),
    )
    monkeypatch.setattr(policy, "send", lambda app, dispatch: recorded["send"].append(dispatch))
    yield recorded


def test_transient_errors_are_retried_then_fail_the_run(
    calls: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_busy(ctx: Any, step: Step, run_id: str, task_id: str) -> Dispatch | None:
        calls["run"].append(task_id)
        raise TransientAzureError("HTTP 503", retry_after=7)

    monkeypatch.setattr(policy, "run_step", always_busy)
    # Each delivery of the message carries its retry count, as send_now sends it.
    for retries in range(3):
        STEP_TASKS[Step.POLL_JOB].apply(args=["run-1"], task_id="t-1", retries=retries)

    assert calls["run"] == ["t-1"] * 3  # the first try and two retries, same message id
    # The retries are the same message, scheduled after the server's Retry-After
    # (the due index holds them, not a worker), then the run fails.
    retry_1, retry_2, cleanup = calls["send"]
    assert (retry_1.task_id, retry_1.countdown, retry_1.retries) == ("t-1", 7, 1)
    assert (retry_2.task_id, retry_2.countdown, retry_2.retries) == ("t-1", 7, 2)
    [(step, reason, error)] = calls["fail"]
    assert (step, reason) == (Step.POLL_JOB, FailureReason.AZURE_ERROR)
    assert "after 2 retries" in error
    assert cleanup == Dispatch(Step.CLEANUP, "run-1", "cleanup-id")


@pytest.mark.parametrize(
    "error",
    [
        redis.ConnectionError("Connection closed by server."),
        redis.TimeoutError("Timeout reading from socket"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        MasterNotFoundError("No master found for 'mymaster'"),
    ],
)
def test_a_redis_restart_or_failover_mid_step_is_retried_not_a_failed_run(
    calls: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def redis_went_away(ctx: Any, step: Step, run_id: str, task_id: str) -> Dispatch | None:
        raise error

    monkeypatch.setattr(policy, "run_step", redis_went_away)
    STEP_TASKS[Step.POLL_JOB].apply(args=["run-4"], task_id="t-4")

    assert calls["fail"] == []
    [retry] = calls["send"]
    assert (retry.step, retry.task_id, retry.retries) == (Step.POLL_JOB, "t-4", 1)
    assert retry.countdown is not None and retry.countdown > 0


def test_unexpected_exceptions_fail_the_run_instead_of_sticking(
    calls: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: Any, step: Step, run_id: str, task_id: str) -> Dispatch | None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(policy, "run_step", broken)
    STEP_TASKS[Step.SUBMIT_JOB].apply(args=["run-2"], task_id="t-2")
    [(step, reason, error)] = calls["fail"]
    assert step is Step.SUBMIT_JOB and reason is FailureReason.AZURE_ERROR
    assert "ZeroDivisionError" in error
    assert calls["send"][0].step is Step.CLEANUP


def test_the_next_step_returned_by_the_chain_is_sent(
    calls: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    nxt = Dispatch(Step.PREPARE_SHARE, "run-3", "next-id", 0.0)
    monkeypatch.setattr(policy, "run_step", lambda *args: nxt)
    STEP_TASKS[Step.ENSURE_RESOURCE_GROUP].apply(args=["run-3"], task_id="t-3")
    assert calls["send"] == [nxt] and calls["fail"] == []
