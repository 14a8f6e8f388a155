"""/v1/uploads and the inputs of POST /v1/runs: what a token holder can make a
worker read. The share is the in-memory gateway; the end-to-end form of these
tests (emulator, worker) is tests/integration/test_inputs_e2e.py."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from orchestrator.chain.queue import CHAIN_QUEUE
from orchestrator.domain.naming import upload_blob_path
from orchestrator.store import RunStore
from tests.support.api import run_request
from tests.support.chain_fakes import FakeGateway

FILES = {"train.py": b"print('train')\n", "data/x.bin": b"\x00" * 1000}


def manifest(files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "files": [
            {"path": path, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
            for path, body in files.items()
        ]
    }


@pytest.fixture
def share(client: TestClient) -> FakeGateway:
    gateway = FakeGateway()
    client.app.state.gateway = gateway  # type: ignore[attr-defined]
    return gateway


def upload(client: TestClient, files: dict[str, bytes]) -> tuple[str, list[str]]:
    """The whole protocol; returns (upload id, digests that had to be sent)."""
    first = client.post("/v1/uploads", json=manifest(files)).json()
    by_digest = {hashlib.sha256(body).hexdigest(): body for body in files.values()}
    for digest in first["missing"]:
        response = client.put(f"/v1/uploads/content/{digest}", content=by_digest[digest])
        assert response.status_code == 200, response.text
        assert response.json()["stored"] is True
    done = client.post("/v1/uploads", json=manifest(files)).json()
    assert done["committed"] is True and done["missing"] == []
    return done["upload_id"], first["missing"]


def test_an_upload_sends_each_content_once_whoever_sends_it(
    client: TestClient, share: FakeGateway
) -> None:
    upload_id, sent = upload(client, FILES)
    assert len(sent) == 2
    for body in FILES.values():
        stored = share.share_files[upload_blob_path(hashlib.sha256(body).hexdigest())]
        assert stored == body
    # The same files under other names: nothing to send, another manifest.
    renamed = {"b/" + path.replace("/", "_"): body for path, body in FILES.items()}
    other_id, sent_again = upload(client, renamed)
    assert sent_again == [] and other_id != upload_id
    # One changed file: that one alone is sent.
    changed = {**FILES, "train.py": b"print('v2')\n"}
    _, sent_changed = upload(client, changed)
    assert sent_changed == [hashlib.sha256(b"print('v2')\n").hexdigest()]


def test_a_committed_upload_runs_and_is_recorded_in_the_run(
    client: TestClient, share: FakeGateway, store: RunStore
) -> None:
    upload_id, _ = upload(client, FILES)
    body = run_request(job={"script": "train.py"}, inputs={"SAMPLE": f"upload:{upload_id}"})
    response = client.post("/v1/runs", json=body)
    assert response.status_code == 202, response.text
    run = store.get(response.json()["run_id"])
    assert run.spec.inputs == {"SAMPLE": f"upload:{upload_id}"}


def test_content_that_is_not_its_digest_is_422_and_leaves_nothing(
    client: TestClient, share: FakeGateway
) -> None:
    digest = hashlib.sha256(b"expected").hexdigest()
    response = client.put(f"/v1/uploads/content/{digest}", content=b"something else")
    assert response.status_code == 422
    assert response.json()["message"] == "body: does not match its sha256"
    assert upload_blob_path(digest) not in share.share_files
    # And a commit naming it finds it missing.
    files = {"a.txt": b"expected"}
    assert client.post("/v1/uploads", json=manifest(files)).json()["committed"] is False


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(
    client: TestClient, share: FakeGateway
) -> None:
    client.app.state.settings.input_max_bytes = 100  # type: ignore[attr-defined]
    big = {"big.bin": b"x" * 101}
    response = client.post("/v1/uploads", json=manifest(big))
    assert response.status_code == 413
    assert response.json()["message"].startswith("files: total 101 bytes is over the limit")
    digest = hashlib.sha256(big["big.bin"]).hexdigest()
    response = client.put(f"/v1/uploads/content/{digest}", content=big["big.bin"])
    assert response.status_code == 413
    assert share.share_files == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "../escape.txt"}, "files.0.path: must not contain empty, '.' or '..' parts"),
        ({"path": "/etc/passwd"}, "files.0.path: must be a relative path"),
        ({"path": "a//b"}, "files.0.path: must not contain empty"),
        ({"path": "link", "type": "symlink"}, "files.0.type: Input should be 'file'"),
        ({"path": "dev", "type": "device"}, "files.0.type: Input should be 'file'"),
        ({"sha256": "xyz"}, "files.0.sha256: String should match pattern"),
        ({"size": -1}, "files.0.size: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_manifest_entry_is_422_naming_it(
    client: TestClient, share: FakeGateway, entry: dict[str, Any], message: str
) -> None:
    good = manifest({"ok.txt": b"ok"})["files"][0]
    response = client.post("/v1/uploads", json={"files": [{**good, **entry}]})
    assert response.status_code == 422
    assert response.json()["message"].startswith(message), response.json()["message"]
    assert share.share_files == {}


def test_the_probe_cannot_make_a_worker_read_its_files(
    client: TestClient, tmp_path: Path, redis_client: redis.Redis, share: FakeGateway
) -> None:
    """The issue's probe: a token holder names a folder of the worker's machine."""
    planted = tmp_path / "worker-folder"
    planted.mkdir()
    (planted / ".env").write_text("AZURE_STORAGE_KEY=secret\n")
    (planted / "escape").symlink_to(tmp_path, target_is_directory=True)
    for path in (
        str(planted),
        f"{planted}/../worker-folder",
        "/proc/self/environ",
        str(planted / "escape"),
    ):
        body = {
            "spec": {
                "name": "probe",
                "job": {"toolkit": "custom", "command": "cat $AZ_BATCHAI_INPUT_X/.env"},
                "inputs": {"X": path},
            }
        }
        response = client.post("/v1/runs", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith("spec.inputs.X: ")
    assert redis_client.llen(CHAIN_QUEUE) == 0
    assert client.get("/v1/runs").json()["items"] == []
    assert share.calls == {}  # nothing uploaded, nothing even looked at


def test_an_upload_that_does_not_exist_or_lacks_the_script_is_422(
    client: TestClient, share: FakeGateway
) -> None:
    missing = run_request(inputs={"SAMPLE": "upload:" + "0" * 64})
    response = client.post("/v1/runs", json=missing)
    assert response.status_code == 422
    assert response.json()["message"].startswith("spec.inputs.SAMPLE: upload 000")
    upload_id, _ = upload(client, FILES)
    wrong_script = run_request(job={"script": "nope.py"}, inputs={"SAMPLE": f"upload:{upload_id}"})
    response = client.post("/v1/runs", json=wrong_script)
    assert response.status_code == 422
    assert response.json()["message"].startswith("spec.job.script: nope.py is not a file")
