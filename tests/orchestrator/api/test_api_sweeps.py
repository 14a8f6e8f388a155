"""/v1/sweeps on a real Redis: submission, reads, cancel, and bad specs named by field."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.domain.status import SweepStatus
from orchestrator.store import RunStore
from tests.support.api import run_request

pytestmark = pytest.mark.integration


def sweep_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "mnist-lr",
        "trial": run_request()["spec"],
        "search_space": {
            "lr": {"type": "loguniform", "min_value": 0.0001, "max_value": 0.1},
            "epochs": {"type": "choice", "values": [5, 10, 15]},
        },
        "sampling_algorithm": "random",
        "seed": 7,
        "objective": {"primary_metric": "test_error", "goal": "minimize"},
        "limits": {"max_total_trials": 20, "max_concurrent_trials": 4},
    }
    body.update(changes)
    return body


def test_submit_answers_at_once_with_an_id_and_the_sweep_reads_back(
    client: TestClient, store: RunStore
) -> None:
    response = client.post("/v1/sweeps", json=sweep_body())
    assert response.status_code == 202, response.text
    sweep_id = response.json()["sweep_id"]
    assert response.json()["links"]["trials"] == f"/v1/runs?sweep={sweep_id}"
    view = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert view["status"] == "queued"
    assert view["objective"] == {"primary_metric": "test_error", "goal": "minimize"}
    assert view["best"] is None and view["trials"] == []
    assert [s["sweep_id"] for s in client.get("/v1/sweeps").json()["items"]] == [sweep_id]
    assert store.sweeps.due_at(sweep_id) is not None, "due at once for the chain clock"


def test_the_same_idempotency_key_returns_the_same_sweep(client: TestClient) -> None:
    headers = {"Idempotency-Key": "nightly-sweep-1"}
    first = client.post("/v1/sweeps", json=sweep_body(), headers=headers)
    again = client.post("/v1/sweeps", json=sweep_body(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["sweep_id"] == again.json()["sweep_id"]
    other = client.post("/v1/sweeps", json=sweep_body(seed=8), headers=headers)
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["message"]


def test_cancel_flags_the_sweep_and_an_ended_one_is_a_409(
    client: TestClient, store: RunStore
) -> None:
    sweep_id = client.post("/v1/sweeps", json=sweep_body()).json()["sweep_id"]
    response = client.post(f"/v1/sweeps/{sweep_id}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    store.sweeps.transition(sweep_id, SweepStatus.CANCELLED)
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 409
    assert client.get("/v1/sweeps/nope").status_code == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"sampling_algorithm": "grid"},
            "search_space.lr",
        ),
        (
            {"search_space": {"lr": {"type": "uniform", "min_value": 0.5, "max_value": 0.1}}},
            "search_space.lr",
        ),
        ({"search_space": {"lr": {"type": "gaussian", "mu": 0}}}, "search_space.lr"),
        (
            {"limits": {"max_total_trials": 2, "max_concurrent_trials": 4}},
            "limits.max_concurrent_trials",
        ),
        ({"trial": "./run.yaml"}, "trial"),
        ({"objective": {"primary_metric": "test error", "goal": "minimize"}}, "objective"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_specs_get_a_422_naming_the_field(
    client: TestClient, store: RunStore, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/sweeps", json=sweep_body(**changes))
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]
    assert store.sweeps.recent() == [], "nothing written"


def test_a_trial_reading_a_workers_path_is_refused(client: TestClient, store: RunStore) -> None:
    trial = run_request(inputs={"SAMPLE": "/proc/self"})["spec"]
    response = client.post("/v1/sweeps", json=sweep_body(trial=trial))
    assert response.status_code == 422
    assert "trial.inputs.SAMPLE" in response.json()["message"]
    assert store.sweeps.recent() == []


def test_runs_filter_by_sweep(client: TestClient) -> None:
    response = client.get("/v1/runs", params={"sweep": "sw000000000000"})
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_metrics_count_sweeps_by_status_and_trials_by_status_and_reason(
    client: TestClient, store: RunStore
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from orchestrator.domain.status import FailureReason, RunStatus
    from orchestrator.store.sweeps import SweepRecord, TrialRecord

    first = client.post("/v1/sweeps", json=sweep_body()).json()["sweep_id"]
    client.post("/v1/sweeps", json=sweep_body(seed=1))

    def trials(record: SweepRecord) -> None:
        record.trials = [
            TrialRecord(index=0, run_id="a", parameters={}, status=RunStatus.SUCCEEDED),
            TrialRecord(
                index=1,
                run_id="b",
                parameters={},
                status=RunStatus.CANCELLED,
                reason=FailureReason.EARLY_TERMINATED,
            ),
        ]

    store.sweeps.update(first, trials)
    store.sweeps.transition(first, SweepStatus.RUNNING)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    assert samples[("orchestrator_sweeps", (("status", "running"),))] == 1
    assert samples[("orchestrator_sweeps", (("status", "queued"),))] == 1
    assert samples[("orchestrator_sweeps", (("status", "failed"),))] == 0
    stopped = (("reason", "early_terminated"), ("status", "cancelled"))
    assert samples[("orchestrator_sweep_trials", stopped)] == 1
    assert samples[("orchestrator_sweep_trials", (("reason", ""), ("status", "succeeded")))] == 1


def test_the_event_stream_sends_the_sweep_and_ends_once_it_has_ended(
    client: TestClient, store: RunStore
) -> None:
    import json

    sweep_id = client.post("/v1/sweeps", json=sweep_body()).json()["sweep_id"]
    store.sweeps.transition(sweep_id, SweepStatus.CANCELLED, reason="cancelled")
    with client.stream("GET", f"/v1/sweeps/{sweep_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: sweep"
    view = json.loads(lines[1].removeprefix("data: "))
    assert (view["sweep_id"], view["status"], view["reason"]) == (
        sweep_id,
        "cancelled",
        "cancelled",
    )
    assert len(lines) == 2, "an ended sweep: one event, then the stream ends"
    assert client.get("/v1/sweeps/sw404/events").status_code == 404
