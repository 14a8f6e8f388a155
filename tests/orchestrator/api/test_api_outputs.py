"""Outputs are served from the file share, where the job wrote them, by the
paths collect_outputs recorded: the API reads nothing from its own disk."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore, StoredOutput
from tests.support.api import run_request
from tests.support.chain_fakes import FakeGateway

SHARE_PREFIX = "outputs/mnist-convnet/r1/seg"


@pytest.fixture
def share(client: TestClient) -> FakeGateway:
    """The app's gateway, in memory (the unit tests have no emulator)."""
    gateway = FakeGateway()
    client.app.state.gateway = gateway  # type: ignore[attr-defined]
    return gateway


@pytest.fixture
def run_with_outputs(
    client: TestClient, store: RunStore, share: FakeGateway, settings: Settings
) -> str:
    run_id: str = client.post("/v1/runs", json=run_request()).json()["run_id"]
    files = {
        "outputs/MODEL/model.bin": b"\x00weights",
        "stdout.txt": b"epoch 1\n",
    }
    for path, body in files.items():
        share.share_files[f"{SHARE_PREFIX}/{path}"] = body

    def collected(record: RunRecord) -> None:
        record.outputs = sorted(files)
        record.output_files = {
            path: StoredOutput(share_path=f"{SHARE_PREFIX}/{path}", size=len(body))
            for path, body in files.items()
        }

    store.update(run_id, collected)
    # The API's own artifacts folder holds a decoy: it must never be served.
    decoy = settings.artifacts_dir / run_id / "outputs" / "MODEL"
    decoy.mkdir(parents=True)
    (decoy / "model.bin").write_bytes(b"stale local copy")
    (decoy / "extra.bin").write_bytes(b"not a recorded output")
    return run_id


def test_lists_the_recorded_files(client: TestClient, run_with_outputs: str) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs")
    assert response.status_code == 200
    assert response.json() == {
        "run_id": run_with_outputs,
        "files": [
            {"path": "outputs/MODEL/model.bin", "size": 8},
            {"path": "stdout.txt", "size": 8},
        ],
    }


def test_downloads_a_file_from_the_share(client: TestClient, run_with_outputs: str) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs/outputs/MODEL/model.bin")
    assert response.status_code == 200
    assert response.content == b"\x00weights"
    assert response.headers["content-length"] == "8"
    assert 'filename="model.bin"' in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("outputs/MODEL/extra.bin", 404),  # on the API's disk, but not an output
        ("outputs/MODEL", 404),  # a folder is not a file
        ("missing.bin", 404),
        ("..%2Fother-run%2Fx.txt", 400),
        ("outputs/..%2F..%2Fother-run%2Fx.txt", 400),
    ],
)
def test_only_recorded_files_inside_the_run_are_served(
    client: TestClient, run_with_outputs: str, path: str, status: int
) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs/{path}")
    assert response.status_code == status
    assert b"not a recorded output" not in response.content


def test_an_output_deleted_by_retention_is_410(
    client: TestClient, run_with_outputs: str, share: FakeGateway
) -> None:
    del share.share_files[f"{SHARE_PREFIX}/stdout.txt"]
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs/stdout.txt")
    assert response.status_code == 410
    assert response.json()["message"].startswith("path: ")


def test_a_run_without_outputs_lists_nothing(client: TestClient) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    assert client.get(f"/v1/runs/{run_id}/outputs").json()["files"] == []
