"""/v1/schedules on the session's Redis: lifecycle, 409, idempotent trigger, 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

RUN = {"name": "mnist", "job": {"toolkit": "custom", "command": "echo hi"}}


def body(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "nightly",
        "trigger": {"cron": "0 2 * * *", "time_zone": "Europe/Rome"},
        "run": RUN,
        "parameters": {"data_date": "{trigger_date}"},
    }
    data.update(changes)
    return data


def test_schedule_lifecycle(client: TestClient) -> None:
    created = client.post("/v1/schedules", json=body())
    assert created.status_code == 201, created.text
    assert len(created.json()["next_fire_times"]) == 5
    assert created.json()["next_fire_times"][0].endswith(("+01:00", "+02:00"))
    assert client.post("/v1/schedules", json=body()).status_code == 409
    assert client.put("/v1/schedules/nightly", json=body(history_limit=5)).status_code == 200
    assert client.get("/v1/schedules").json()["items"][0]["name"] == "nightly"
    assert client.post("/v1/schedules/nightly/pause").json()["suspended"] is True
    assert client.post("/v1/schedules/nightly/resume").json()["suspended"] is False
    first = client.post("/v1/schedules/nightly/trigger", headers={"Idempotency-Key": "k"})
    again = client.post("/v1/schedules/nightly/trigger", headers={"Idempotency-Key": "k"})
    assert first.status_code == 202 and first.json()["run_id"] == again.json()["run_id"]
    shown = client.get("/v1/schedules/nightly").json()
    assert [(h["outcome"], h["run_id"]) for h in shown["history"]] == [
        ("ran", first.json()["run_id"])
    ]
    run = client.get(f"/v1/runs/{first.json()['run_id']}").json()
    assert run["spec"]["tags"]["schedule"] == "nightly"
    assert client.delete("/v1/schedules/nightly").status_code == 204
    assert client.get("/v1/schedules/nightly").status_code == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"trigger": {"cron": "0 25 * * *"}}, "trigger.cron"),
        ({"trigger": {"cron": "0 2 * * *", "time_zone": "Nowhere/City"}}, "trigger.time_zone"),
        ({"trigger": {"cron": "0 2 * * *", "every": "5m"}}, "trigger:"),
        ({"trigger": {}}, "trigger:"),
        ({"trigger": {"every": "0.5s"}}, "trigger.every"),
        ({"run": {"name": "x"}}, "run.job"),
        ({"run": {**RUN, "inputs": {"DATA": "./data"}}}, "run.inputs.DATA"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, changes: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/schedules", json=body(**changes))
    assert response.status_code == 422
    assert response.json()["message"].startswith(field), response.json()["message"]
