from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from tests.support.api import run_request


@pytest.fixture
def run_with_outputs(client: TestClient, settings: Settings, tmp_path: Path) -> str:
    run_id: str = client.post("/v1/runs", json=run_request()).json()["run_id"]
    root = settings.artifacts_dir / run_id
    (root / "MODEL").mkdir(parents=True)
    (root / "MODEL" / "model.bin").write_bytes(b"\x00weights")
    (root / "stdout.txt").write_text("epoch 1\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (root / "escape.txt").symlink_to(secret)  # a symlink leading out of the run
    (root / "outside").symlink_to(tmp_path, target_is_directory=True)
    # Another run's artifacts, next door.
    (settings.artifacts_dir / "other-run").mkdir()
    (settings.artifacts_dir / "other-run" / "x.txt").write_text("other")
    return run_id


def test_lists_the_run_files_only(client: TestClient, run_with_outputs: str) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs")
    assert response.status_code == 200
    assert response.json() == {
        "run_id": run_with_outputs,
        "files": [{"path": "MODEL/model.bin", "size": 8}, {"path": "stdout.txt", "size": 8}],
    }


def test_downloads_a_file(client: TestClient, run_with_outputs: str) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs/MODEL/model.bin")
    assert response.status_code == 200
    assert response.content == b"\x00weights"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("escape.txt", 404),  # symlink out of the run
        ("outside/secret.txt", 404),  # through a symlinked folder
        ("MODEL", 404),  # a folder is not a file
        ("missing.bin", 404),
        ("..%2Fother-run%2Fx.txt", 400),
        ("MODEL/..%2F..%2Fother-run%2Fx.txt", 400),
    ],
)
def test_paths_stay_inside_the_run(
    client: TestClient, run_with_outputs: str, path: str, status: int
) -> None:
    response = client.get(f"/v1/runs/{run_with_outputs}/outputs/{path}")
    assert response.status_code == status
    assert "not yours" not in response.text and response.text != "other"


def test_a_run_without_outputs_lists_nothing(client: TestClient) -> None:
    run_id = client.post("/v1/runs", json=run_request()).json()["run_id"]
    assert client.get(f"/v1/runs/{run_id}/outputs").json()["files"] == []
