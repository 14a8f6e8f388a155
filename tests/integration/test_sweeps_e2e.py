"""Sweeps on the real stack: worker processes, Redis, the emulator, the real SDKs.

Trials run `sweep_train.py`, whose loss is built so that the winner is known in
advance: it prints `loss=<value>` once per interval, and the value depends on
`--lr` only (best at lr=0.3). Every worker runs at its default settings unless
a test says otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.chain.sweeps import cancel_sweep, submit_sweep
from orchestrator.domain.status import FailureReason, RunStatus, SweepStatus
from orchestrator.domain.sweep import parse_sweep
from orchestrator.store.sweeps import SweepRecord
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration

SWEEP_SCRIPT = """\
import argparse, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--pause", type=float, default=0.3)
args = parser.parse_args()
for step in range(args.steps):
    # Far from lr=0.3 the loss stays high; near it, it falls with every step.
    loss = abs(args.lr - 0.3) * 10 + 1.0 / (step + 1)
    print(f"loss={loss:.6f}", flush=True)
    time.sleep(args.pause)
"""
SWEEP_TIMEOUT = 240.0


def _trial(stack: Stack, **parameters: Any) -> dict[str, Any]:
    (stack.code_dir / "sweep_train.py").write_text(SWEEP_SCRIPT)
    spec = stack.spec("sweep", **parameters).model_dump(mode="json")
    spec["job"]["script"] = "sweep_train.py"
    spec["outputs"] = []
    return stack.upload(parse_trial(spec)).model_dump(mode="json")


def parse_trial(data: dict[str, Any]) -> Any:
    from orchestrator.domain.spec import parse_spec

    return parse_spec(data)


LOSS = {"primary_metric": "loss", "goal": "minimize"}
SIX_LRS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def _grid(lrs: list[float], concurrent: int) -> dict[str, Any]:
    """The fields of a grid sweep over lr that minimizes the loss."""
    return {
        "search_space": {"lr": {"type": "choice", "values": lrs}},
        "sampling_algorithm": "grid",
        "objective": LOSS,
        "limits": {"max_total_trials": len(lrs), "max_concurrent_trials": concurrent},
    }


def _sweep(stack: Stack, trial: dict[str, Any], **fields: Any) -> SweepRecord:
    spec = parse_sweep({"name": "lrsweep", "trial": trial, **fields})
    record, created = submit_sweep(spec, store=stack.store)
    assert created
    return record


def _wait_sweep(stack: Stack, sweep_id: str, timeout: float = SWEEP_TIMEOUT) -> SweepRecord:
    def ended() -> SweepRecord | None:
        record = stack.store.sweeps.get(sweep_id)
        return record if record.terminal else None

    try:
        return wait_for(ended, timeout, f"sweep {sweep_id} to end", interval=0.25)
    except BaseException:
        for worker in stack.workers:
            print(f"--- {worker.log_path.name} (tail)\n{worker.log()[-8000:]}")
        print(stack.store.sweeps.get(sweep_id).model_dump_json(indent=1))
        raise


def _requests(stats: dict[str, Any], operation: str) -> int:
    return sum(stats["requests"].get(operation, {}).values())


def test_grid_sweep_runs_two_at_a_time_on_one_cluster_and_finds_the_best(stack: Stack) -> None:
    stack.start_worker(defaults=True, concurrency=2)
    record = _sweep(stack, _trial(stack, steps=3, pause=0.3), **_grid(SIX_LRS, 2))
    done = _wait_sweep(stack, record.sweep_id)

    assert done.status is SweepStatus.SUCCEEDED, done.error
    assert [t.status for t in done.trials] == [RunStatus.SUCCEEDED] * 6
    assert sorted(t.parameters["lr"] for t in done.trials) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    best = min(done.trials, key=lambda t: t.value if t.value is not None else 1e9)
    assert best.parameters == {"lr": 0.3}
    # Every trial kept its series: one value per printed line.
    assert all(len(t.series) == 3 for t in done.trials)
    # Trials are runs: listed by their sweep.
    runs, _ = stack.store.list_runs(sweep=record.sweep_id, limit=50)
    assert sorted(r.run_id for r in runs) == sorted(t.run_id for t in done.trials)

    stats = stack.stats()
    assert stats["peaks"]["jobs"] <= 2, stats["peaks"]
    assert stats["resources"]["created"].get("cluster") == 1
    assert stats["resources"]["deleted"].get("cluster") == 1
    assert stats["resources"]["created"].get("job") == 6
    assert stats["resources"]["deleted"].get("job") == 6
    # The trials' job states came from the sweep's listing, never from Jobs_Get.
    assert _requests(stats, "Jobs_Get") == 0, stats["requests"].get("Jobs_Get")
    assert _requests(stats, "Jobs_ListByExperiment") > 0


def test_median_stopping_ends_the_bad_trials_early(stack: Stack) -> None:
    stack.start_worker(defaults=True, concurrency=2)
    # 10 values 0.6 s apart; judged from the 3rd on.
    record = _sweep(
        stack,
        _trial(stack, steps=10, pause=0.6),
        **_grid([0.3, 0.31, 2.0, 3.0], 4),
        early_termination={
            "type": "median_stopping",
            "evaluation_interval": 1,
            "delay_evaluation": 3,
        },
    )
    done = _wait_sweep(stack, record.sweep_id)

    by_lr = {t.parameters["lr"]: t for t in done.trials}
    for good in (0.3, 0.31):
        assert by_lr[good].status is RunStatus.SUCCEEDED
        assert len(by_lr[good].series) == 10
    for bad in (2.0, 3.0):
        stopped = by_lr[bad]
        assert stopped.status is RunStatus.CANCELLED
        assert stopped.reason is FailureReason.EARLY_TERMINATED
        # Not before delay_evaluation, and before the end of its 10 steps.
        assert stopped.stopped_at_interval is not None
        assert 3 <= stopped.stopped_at_interval < 10
        run = stack.store.get(stopped.run_id)
        assert run.reason is FailureReason.EARLY_TERMINATED
        assert run.metric_series.get("loss"), "a stopped trial keeps its metrics"
    assert done.status is SweepStatus.SUCCEEDED
    assert done.node_seconds_saved > 0
    stats = stack.stats()
    assert stats["resources"]["deleted"].get("cluster") == 1
    assert stats["resources"]["created"].get("job") == stats["resources"]["deleted"].get("job")


def test_cancel_mid_sweep_terminates_every_job_and_deletes_the_cluster(stack: Stack) -> None:
    stack.start_worker(defaults=True, concurrency=2)
    trial = _trial(stack, steps=200, pause=0.5)
    record = _sweep(
        stack,
        trial,
        search_space={"lr": {"type": "uniform", "min_value": 0.0, "max_value": 1.0}},
        sampling_algorithm="random",
        seed=3,
        objective=LOSS,
        limits={"max_total_trials": 6, "max_concurrent_trials": 2},
    )

    def two_running() -> bool:
        current = stack.store.sweeps.get(record.sweep_id)
        return sum(len(t.series) > 0 for t in current.trials) == 2

    wait_for(two_running, SWEEP_TIMEOUT, "two trials printing")
    cancel_sweep(stack.store, record.sweep_id)
    done = _wait_sweep(stack, record.sweep_id)

    assert done.status is SweepStatus.CANCELLED
    # Two trials held the slots, two were prepared ahead: none submitted a job after.
    assert len(done.trials) == 4
    assert all(t.status is RunStatus.CANCELLED for t in done.trials)
    stats = stack.stats()
    assert stats["resources"]["deleted"].get("cluster") == 1
    assert stats["resources"]["created"].get("job") == stats["resources"]["deleted"].get("job") == 2


def test_sigkilled_worker_mid_sweep_leaves_it_whole(stack: Stack) -> None:
    doomed = stack.start_worker(defaults=True, concurrency=2)
    record = _sweep(stack, _trial(stack, steps=4, pause=0.5), **_grid(SIX_LRS, 2))

    def two_ended() -> bool:
        current = stack.store.sweeps.get(record.sweep_id)
        return sum(not t.active for t in current.trials) >= 2

    wait_for(two_ended, SWEEP_TIMEOUT, "two trials to end")
    doomed.kill()
    stack.start_worker(defaults=True, concurrency=2)
    done = _wait_sweep(stack, record.sweep_id)

    assert done.status is SweepStatus.SUCCEEDED
    assert [t.index for t in done.trials] == list(range(6))
    assert sorted(t.parameters["lr"] for t in done.trials) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    runs, _ = stack.store.list_runs(sweep=record.sweep_id, limit=50)
    assert len(runs) == 6, "no trial started twice, none lost"
    stats = stack.stats()
    assert stats["resources"]["created"].get("job") == 6, "a trial's job was created twice"
    assert stats["resources"]["deleted"].get("job") == 6
    assert stats["resources"]["created"].get("cluster") == 1
    assert stats["resources"]["deleted"].get("cluster") == 1


def test_a_sweep_over_http_with_the_client(stack: Stack) -> None:
    from pydantic import SecretStr

    from orchestrator.api import create_app
    from orchestrator.client import OrchestratorClient
    from tests.support.live_server import serve

    token = "sweep-e2e-token-0123456789"
    stack.start_worker(defaults=True, concurrency=2)
    (stack.code_dir / "sweep_train.py").write_text(SWEEP_SCRIPT)
    trial = stack.spec("sweep", steps=2, pause=0.2).model_dump(mode="json")
    trial["job"]["script"] = "sweep_train.py"
    trial["outputs"] = []
    sweep = {
        "name": "httpsweep",
        "trial": trial,  # local input paths: the client uploads them first
        "search_space": {"lr": {"type": "choice", "values": [0.1, 0.3]}},
        "sampling_algorithm": "grid",
        "objective": {"primary_metric": "loss", "goal": "minimize"},
        "limits": {"max_total_trials": 2, "max_concurrent_trials": 2},
    }
    settings = stack.settings(ORCH_API_TOKEN=SecretStr(token))
    with serve(create_app(settings)) as url, OrchestratorClient(url, token=token) as api:
        sweep_id = api.submit_sweep(sweep, idempotency_key="sweep-e2e")
        assert api.submit_sweep(sweep, idempotency_key="sweep-e2e") == sweep_id
        view = api.wait_sweep(sweep_id, timeout=SWEEP_TIMEOUT)
        assert view["status"] == "succeeded", view
        assert view["best"]["parameters"] == {"lr": 0.3}
        assert [t["parameters"]["lr"] for t in view["trials"]] == [0.3, 0.1], "leaderboard order"
        assert view["counts"] == {"succeeded": 2}
        runs = api.list(sweep=sweep_id)["items"]
        assert sorted(r["run_id"] for r in runs) == sorted(t["run_id"] for t in view["trials"])
        assert [s["sweep_id"] for s in api.list_sweeps()] == [sweep_id]
