"""The chain under faults: throttling and 5xx, SIGKILLed workers, two workers
at once, cancel, and a repeated submission that has nothing new to upload."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from orchestrator.chain.cancel import cancel_run
from orchestrator.devstack.processes import ChildProcess
from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, Step, StepState
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration


def _resources(stack: Stack) -> tuple[dict[str, int], dict[str, int]]:
    resources = stack.stats()["resources"]
    return dict(resources["created"]), dict(resources["deleted"])


def _nothing_left(stack: Stack) -> None:
    created, deleted = _resources(stack)
    for kind in ("cluster", "job"):
        assert created.get(kind, 0) == deleted.get(kind, 0), (kind, created, deleted)


def test_run_succeeds_with_20_percent_throttling_server_errors_and_drops(stack: Stack) -> None:
    stack.emulator.set_faults(
        [
            {"kind": "throttle", "rate": 0.06, "retry_after": 1},
            {"kind": "error500", "rate": 0.05},
            {"kind": "error503", "rate": 0.05},
            {"kind": "drop", "rate": 0.04},
        ]
    )
    stack.start_worker()
    run_id = stack.submit()
    record = stack.wait_terminal(run_id, timeout=240)

    assert record.status is RunStatus.SUCCEEDED, record.error
    requests = stack.stats()["requests"]
    faulted = sum(
        n for outcomes in requests.values() for o, n in outcomes.items() if o.startswith("fault:")
    )
    assert faulted > 0, "the faults were meant to hit some requests"
    created, _ = _resources(stack)
    assert (created["cluster"], created["job"]) == (1, 1)
    _nothing_left(stack)


@pytest.mark.parametrize("step", list(STEP_ORDER), ids=[s.value for s in STEP_ORDER])
def test_sigkill_in_the_middle_of_each_step_still_succeeds_once(stack: Stack, step: Step) -> None:
    doomed = stack.start_worker(hold_after=step)
    run_id = stack.submit()
    held, _release = stack.store.keys.test_hold(run_id)
    wait_for(lambda: stack.client.exists(held), 60, f"the worker to be held after {step.value}")
    assert stack.store.get(run_id).step(step).state is StepState.RUNNING
    doomed.kill()

    stack.start_worker()
    record = stack.wait_terminal(run_id)

    assert record.status is RunStatus.SUCCEEDED, record.error
    created, deleted = _resources(stack)
    assert (created.get("cluster"), created.get("job")) == (1, 1)
    assert (deleted.get("cluster"), deleted.get("job")) == (1, 1)
    assert (stack.artifacts / run_id / "outputs" / "MODEL" / "ConvNet_MNIST.model").exists()


def _kill_then_recover_at_defaults(
    stack: Stack, doomed: ChildProcess, run_id: str, where: str
) -> None:
    """SIGKILL `doomed`, start a fresh worker at once (defaults), and require the
    run to succeed within 90 s of the kill, exactly as it would have without it."""
    doomed.kill()
    killed_at = time.monotonic()
    stack.start_worker(defaults=True)
    record = stack.wait_terminal(run_id, timeout=150)
    recovered_in = time.monotonic() - killed_at

    print(f"SIGKILL {where} at defaults: succeeded {recovered_in:.1f}s after the kill")
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert recovered_in <= 90, f"took {recovered_in:.0f}s after the kill"
    created, deleted = _resources(stack)
    assert (created.get("cluster"), created.get("job")) == (1, 1)
    assert (deleted.get("cluster"), deleted.get("job")) == (1, 1)


def test_sigkill_mid_job_at_default_settings_recovers_within_90_seconds(stack: Stack) -> None:
    """The operator's scenario, every ORCH_* setting at its default: the worker's
    process group is SIGKILLed while the job runs, a fresh worker starts at once."""
    doomed = stack.start_worker(defaults=True)
    run_id = stack.submit(stack.spec(seconds=8))
    wait_for(
        lambda: (
            stack.store.get(run_id).status is RunStatus.RUNNING
            and stack.store.get(run_id).step(Step.POLL_JOB).state is not StepState.PENDING
        ),
        120,
        "the job to run",
    )
    _kill_then_recover_at_defaults(stack, doomed, run_id, "mid-job")


def test_sigkill_while_a_step_executes_at_default_settings_is_redriven(stack: Stack) -> None:
    """The hard case at defaults: the worker dies holding the step's lease (not a
    wait in the due index), so only the lease's expiry and the re-driver recover it."""
    doomed = stack.start_worker(defaults=True, hold_after=Step.CREATE_CLUSTER)
    run_id = stack.submit()
    held, _release = stack.store.keys.test_hold(run_id)
    wait_for(lambda: stack.client.exists(held), 120, "the worker to be held in create_cluster")
    _kill_then_recover_at_defaults(stack, doomed, run_id, "inside a step")


def test_two_workers_never_apply_a_step_twice(stack: Stack) -> None:
    stack.start_worker(concurrency=2)
    stack.start_worker(concurrency=2)
    run_ids = [stack.submit(stack.spec(name=f"pair{i}")) for i in range(3)]
    records = [stack.wait_terminal(run_id) for run_id in run_ids]

    assert [r.status for r in records] == [RunStatus.SUCCEEDED] * 3
    created, _ = _resources(stack)
    assert (created["cluster"], created["job"]) == (3, 3)
    requests = stack.stats()["requests"]
    assert sum(requests["Clusters_Create"].values()) == 3
    assert sum(requests["Jobs_Create"].values()) == 3
    for run_id in run_ids:
        done = Counter(
            e.data["step"]
            for e in stack.store.read_events(run_id, count=1000)
            if e.kind == "step" and e.data["state"] == "done"
        )
        assert done == Counter({s.value: 1 for s in STEP_ORDER}), (run_id, done)
    _nothing_left(stack)


def test_cancel_while_running_terminates_the_job_and_deletes_the_cluster(stack: Stack) -> None:
    stack.start_worker()
    run_id = stack.submit(stack.spec(seconds=120))
    wait_for(
        lambda: stack.store.get(run_id).step(Step.POLL_JOB).state is StepState.WAITING,
        60,
        "the job to be running",
    )
    cancel_run(stack.store, run_id)
    record = stack.wait_terminal(run_id, timeout=60)

    assert record.status is RunStatus.CANCELLED
    assert record.reason is FailureReason.CANCELLED
    requests = stack.stats()["requests"]
    assert sum(requests.get("Jobs_Terminate", {}).values()) >= 1
    _nothing_left(stack)
    assert _resources(stack)[1]["cluster"] == 1


def test_cancel_of_a_queued_run_ends_it_at_once(stack: Stack) -> None:
    run_id = stack.submit()  # no worker yet: the run stays queued
    # The submitter uploaded the inputs (the share and two files): the run's own.
    uploaded = stack.stats()["resources"]["created"]
    assert uploaded == {"file_share": 1, "file": 2}
    record = cancel_run(stack.store, run_id)
    assert record.status is RunStatus.CANCELLED
    stack.start_worker()
    # The first task arrives, finds the run ended and touches nothing.
    wait_for(lambda: "run_already_terminal" in stack.workers[0].log(), 60, "the first task")
    assert stack.stats()["resources"]["created"] == uploaded


def test_resubmitting_unchanged_inputs_uploads_no_bytes(stack: Stack) -> None:
    stack.start_worker()
    first = stack.wait_terminal(stack.submit())
    assert first.status is RunStatus.SUCCEEDED
    before = stack.stats()
    assert before["bytes_uploaded"] > 0

    second = stack.wait_terminal(stack.submit())

    assert second.status is RunStatus.SUCCEEDED
    after = stack.stats()
    assert after["bytes_uploaded"] == before["bytes_uploaded"]
    assert after["requests"].get("Files_PutRange") == before["requests"].get("Files_PutRange")
    # Both files (train.py, train.txt) came from the uploads, copied on the share.
    assert second.step(Step.PREPARE_SHARE).detail["uploaded"] == 0
    assert second.step(Step.PREPARE_SHARE).detail["copied"] == 2
