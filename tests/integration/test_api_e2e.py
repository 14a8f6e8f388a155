"""A run submitted over HTTP, carried out by the real chain (worker + emulator),
followed with the client's event stream, its outputs fetched over HTTP."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from orchestrator.api import create_app
from orchestrator.client import OrchestratorClient
from tests.support.chain_stack import RUN_TIMEOUT, Stack
from tests.support.live_server import serve

pytestmark = pytest.mark.integration

TOKEN = "e2e-token-0123456789"


def test_http_submit_wait_and_download(stack: Stack) -> None:
    stack.start_worker()
    settings = stack.settings(ORCH_API_TOKEN=SecretStr(TOKEN))
    with serve(create_app(settings)) as url, OrchestratorClient(url, token=TOKEN) as api:
        run_id = api.submit(stack.spec(), parameters={"seconds": 0.1}, idempotency_key="e2e")[
            "run_id"
        ]

        final = api.wait(run_id, timeout=RUN_TIMEOUT)
        assert final["status"] == "succeeded", final["error"]
        assert final["spec"]["parameters"] == {"seconds": 0.1}

        kinds = [event["kind"] for event in api.events(run_id)]  # replay of an ended run
        assert kinds[0] == "status" and kinds[-1] == "status" and "step" in kinds

        files = {item["path"] for item in api.outputs(run_id)}
        assert "outputs/MODEL/ConvNet_MNIST.model" in files
        model = api.download(
            run_id, "outputs/MODEL/ConvNet_MNIST.model", stack.tmp_path / "model.bin"
        )
        assert model.read_text() == "trained weights"

        metrics = api.metrics()
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
        }
        assert samples[("orchestrator_runs", (("status", "succeeded"),))] == 1
        for step in ("ensure_resource_group", "poll_job", "cleanup"):
            assert samples[("orchestrator_step_duration_seconds_count", (("step", step),))] == 1
        # The worker's Azure requests, counted fleet-wide through Redis.
        azure = {
            dict(labels)["operation"]: value
            for (name, labels), value in samples.items()
            if name == "orchestrator_azure_requests_total"
        }
        assert sum(azure.values()) >= 10, azure
