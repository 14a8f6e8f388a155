"""A run through the real chain: Redis, `orchestrator worker`, the emulator."""

from __future__ import annotations

import pytest

from orchestrator.domain.status import STEP_ORDER, FailureReason, RunStatus, Step, StepState
from tests.support.chain_stack import Stack

pytestmark = pytest.mark.integration


def _created(stack: Stack, kind: str) -> int:
    return int(stack.stats()["resources"]["created"].get(kind, 0))


def _deleted(stack: Stack, kind: str) -> int:
    return int(stack.stats()["resources"]["deleted"].get(kind, 0))


def test_run_succeeds_through_all_steps_and_collects_the_model(stack: Stack) -> None:
    stack.start_worker()
    run_id = stack.submit()
    record = stack.wait_terminal(run_id)

    assert record.status is RunStatus.SUCCEEDED, record.error
    assert [record.step(s).state for s in STEP_ORDER] == [StepState.DONE] * len(STEP_ORDER)
    run_dir = stack.artifacts / run_id
    assert (run_dir / "outputs" / "MODEL" / "ConvNet_MNIST.model").read_text() == "trained weights"
    assert "accuracy=0.94" in (run_dir / "stdout.txt").read_text()
    assert "outputs/MODEL/ConvNet_MNIST.model" in record.outputs
    assert record.metrics["accuracy"] == pytest.approx(0.94)
    assert (_created(stack, "cluster"), _created(stack, "job")) == (1, 1)
    assert (_deleted(stack, "cluster"), _deleted(stack, "job")) == (1, 1)

    # Secrets stay out of logs and run records; every worker line is JSON.
    key = stack.emulator.env["AZURE_STORAGE_KEY"]
    log = stack.workers[0].log()
    assert key not in log and "sig=" not in log.replace("sig=***", "")
    assert key not in record.model_dump_json()
    lines = [line for line in log.splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines[:-1]), "non-JSON worker output"
    assert any('"event": "step_done"' in line and '"azure_request_id"' in line for line in lines)


def test_job_exit_1_fails_with_job_failed_and_deletes_the_cluster(stack: Stack) -> None:
    stack.start_worker()
    run_id = stack.submit(stack.spec(exit_code=1))
    record = stack.wait_terminal(run_id)

    assert record.status is RunStatus.FAILED
    assert record.reason is FailureReason.JOB_FAILED
    assert "exit code 1" in (record.error or "")
    assert record.step(Step.COLLECT_OUTPUTS).state is not StepState.DONE
    assert record.step(Step.CLEANUP).state is StepState.DONE
    assert _deleted(stack, "cluster") == _created(stack, "cluster") == 1
    assert _deleted(stack, "job") == 1


@pytest.mark.parametrize("fault", ["node_unusable", "allocation_failure"])
def test_nodes_that_never_come_up_fail_with_allocation_failed(stack: Stack, fault: str) -> None:
    stack.emulator.set_faults([{"kind": fault, "rate": 1.0}])
    stack.start_worker()
    run_id = stack.submit()
    record = stack.wait_terminal(run_id)

    assert record.status is RunStatus.FAILED
    assert record.reason is FailureReason.ALLOCATION_FAILED, record.error
    assert record.step(Step.SUBMIT_JOB).state is not StepState.DONE
    assert _created(stack, "job") == 0
    assert _deleted(stack, "cluster") == _created(stack, "cluster") == 1


def test_cli_submit_wait_follows_the_run_and_exits_by_its_outcome(stack: Stack) -> None:
    import json
    import subprocess
    import sys

    stack.start_worker()
    spec = stack.tmp_path / "run.json"
    spec.write_text(stack.spec().model_dump_json())
    command = [sys.executable, "-m", "orchestrator.cli", "submit", str(spec), "--wait", "--json"]
    ok = subprocess.run(command, env=stack.env(), capture_output=True, text=True, timeout=180)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["status"] == "succeeded"

    failing = [*command, "--param", "exit_code=2"]
    bad = subprocess.run(failing, env=stack.env(), capture_output=True, text=True, timeout=180)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["reason"] == "job_failed"


def test_a_preempted_lowpriority_job_is_requeued_and_the_run_succeeds(stack: Stack) -> None:
    stack.emulator.set_faults([{"kind": "preemption", "rate": 1.0, "count": 1}])
    stack.start_worker()
    spec = stack.spec(seconds=2).model_dump(mode="json")
    spec["cluster"]["vm_priority"] = "lowpriority"
    from orchestrator.domain.spec import parse_spec

    run_id = stack.submit(parse_spec(spec))
    record = stack.wait_terminal(run_id)

    assert record.status is RunStatus.SUCCEEDED, record.error
    assert _created(stack, "job") == 1
    [rule] = stack.stats()["faults"]
    assert rule["kind"] == "preemption" and rule["hits"] == 1, rule
