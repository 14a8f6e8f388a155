from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.api import create_app
from orchestrator.client import ApiError, OrchestratorClient
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus
from orchestrator.inputs.local import LocalInputError
from orchestrator.settings import Settings
from orchestrator.store import RunRecord, RunStore, StoredOutput
from tests.support.api import TOKEN, run_request, settings, store
from tests.support.chain_fakes import FakeGateway
from tests.support.live_server import serve

__all__ = ["settings", "store"]  # fixtures shared with the API tests

SPEC = run_request()["spec"]


@pytest.fixture
def share() -> FakeGateway:
    """The API's file share, in memory (these tests have no emulator)."""
    return FakeGateway()


@pytest.fixture
def base_url(settings: Settings, share: FakeGateway) -> Iterator[str]:
    app = create_app(settings)
    app.state.gateway = share
    with serve(app) as url:
        yield url


@pytest.fixture
def api(base_url: str) -> Iterator[OrchestratorClient]:
    with OrchestratorClient(base_url, token=TOKEN, timeout=10) as client:
        yield client


def test_submit_a_mapping_get_list_and_cancel(api: OrchestratorClient) -> None:
    accepted = api.submit(SPEC, parameters={"epochs": 2}, idempotency_key="k-1")
    run_id = accepted["run_id"]
    assert accepted["status"] == "queued"
    assert api.submit(SPEC, parameters={"epochs": 2}, idempotency_key="k-1")["run_id"] == run_id
    with pytest.raises(ApiError) as conflict:
        api.submit(SPEC, parameters={"epochs": 3}, idempotency_key="k-1")
    assert conflict.value.status == 409

    record = api.get(run_id)
    assert record["spec"]["parameters"] == {"epochs": 2}
    page = api.list(tag=("team", "vision"), limit=10)
    assert [item["run_id"] for item in page["items"]] == [run_id]
    assert api.cancel(run_id)["cancel_requested"] is True


def test_submit_a_spec_file_uploads_its_relative_inputs_first(
    api: OrchestratorClient, tmp_path: Path, share: FakeGateway, store: RunStore
) -> None:
    sample = tmp_path / "sample"
    (sample / "sub").mkdir(parents=True)
    (sample / "ConvNet_MNIST.py").write_text("print('train')\n")
    (sample / "sub" / "data.bin").write_bytes(b"\x01" * 100)
    spec_file = tmp_path / "run.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "inputs": {"SAMPLE": "./sample"}}))
    run_id = api.submit(spec_file)["run_id"]
    assert api.last_upload.files == 2 and api.last_upload.sent_files == 2
    assert api.last_upload.sent_bytes == len("print('train')\n") + 100
    # The run names the upload, never a path of this machine.
    value = api.get(run_id)["spec"]["inputs"]["SAMPLE"]
    assert value.startswith("upload:")
    manifest = store.uploads.get(value.removeprefix("upload:"))
    assert manifest is not None
    assert {entry.path for entry in manifest.files} == {"ConvNet_MNIST.py", "sub/data.bin"}
    # The same folder again: nothing is sent.
    api.submit(spec_file)
    assert api.last_upload.sent_files == 0 and api.last_upload.sent_bytes == 0


def test_submit_a_mapping_resolves_paths_against_base_dir(
    api: OrchestratorClient, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "ConvNet_MNIST.py").write_text("x = 1\n")
    accepted = api.submit({**SPEC, "inputs": {"SAMPLE": "code"}}, base_dir=tmp_path)
    assert api.get(accepted["run_id"])["spec"]["inputs"]["SAMPLE"].startswith("upload:")


def test_a_local_input_that_cannot_be_uploaded_is_refused_naming_it(
    api: OrchestratorClient, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "link.py").symlink_to("/etc/hostname")
    with pytest.raises(LocalInputError, match=r"^inputs\.SAMPLE: .*link\.py is a symlink"):
        api.submit({**SPEC, "inputs": {"SAMPLE": "code"}}, base_dir=tmp_path)
    with pytest.raises(LocalInputError, match=r"^inputs\.SAMPLE: .*does not exist"):
        api.submit({**SPEC, "inputs": {"SAMPLE": "nowhere"}}, base_dir=tmp_path)
    assert api.list()["items"] == []


def test_submit_a_run_spec_object(api: OrchestratorClient) -> None:
    run_id = api.submit(parse_spec(SPEC), run_id="from-object")["run_id"]
    assert run_id == "from-object"


def test_wait_follows_the_run_to_its_end(
    api: OrchestratorClient,
    store: RunStore,
) -> None:
    run_id = api.submit(SPEC)["run_id"]
    # Ends the run whether wait() is already streaming or not yet: both must work.
    ender = threading.Thread(target=store.transition, args=(run_id, RunStatus.CANCELLED))
    ender.start()
    try:
        final = api.wait(run_id, timeout=30)
    finally:
        ender.join()
    assert final["status"] == "cancelled"
    assert final["finished_at"] is not None


def test_wait_raises_timeout_error_at_its_deadline(api: OrchestratorClient) -> None:
    run_id = api.submit(SPEC)["run_id"]
    with pytest.raises(TimeoutError):
        api.wait(run_id, timeout=0.2)


def _record_outputs(
    store: RunStore, share: FakeGateway, run_id: str, files: dict[str, bytes]
) -> None:
    """What collect_outputs records: each file where it lies on the share."""
    for path, body in files.items():
        share.share_files[f"outputs/x/{run_id}/{path}"] = body

    def collected(record: RunRecord) -> None:
        record.output_files = {
            path: StoredOutput(share_path=f"outputs/x/{run_id}/{path}", size=len(body))
            for path, body in files.items()
        }

    store.update(run_id, collected)


def test_outputs_list_and_download(
    api: OrchestratorClient, store: RunStore, share: FakeGateway, tmp_path: Path
) -> None:
    run_id = api.submit(SPEC)["run_id"]
    _record_outputs(store, share, run_id, {"outputs/MODEL/model.bin": b"weights"})
    assert api.outputs(run_id) == [{"path": "outputs/MODEL/model.bin", "size": 7}]
    saved = api.download(run_id, "outputs/MODEL/model.bin", tmp_path / "out" / "model.bin")
    assert saved.read_bytes() == b"weights"
    with pytest.raises(ApiError) as missing:
        api.download(run_id, "outputs/MODEL/none.bin", tmp_path / "none.bin")
    assert missing.value.status == 404


@pytest.mark.parametrize("name", ["epoch #3.pt", "what?.txt", "100%25.log", "a b.txt"])
def test_download_an_output_whose_name_has_url_characters(
    api: OrchestratorClient, store: RunStore, share: FakeGateway, tmp_path: Path, name: str
) -> None:
    run_id = api.submit(SPEC)["run_id"]
    files = {f"outputs/MODEL/{name}": b"weights", "outputs/MODEL/other": b"not this one"}
    _record_outputs(store, share, run_id, files)
    [listed] = [item["path"] for item in api.outputs(run_id) if item["path"].endswith(name)]
    saved = api.download(run_id, listed, tmp_path / "out")
    assert saved.read_bytes() == b"weights"


def test_errors_are_api_errors_without_the_token(base_url: str) -> None:
    wrong = "wrong-token-that-must-not-leak"
    with OrchestratorClient(base_url, token=wrong) as client:
        with pytest.raises(ApiError) as caught:
            client.get("anything")
        assert caught.value.status == 401
        assert wrong not in str(caught.value) and wrong not in repr(client)
    with OrchestratorClient(base_url, token=TOKEN) as client:
        with pytest.raises(ApiError) as unknown:
            client.get("nope")
        assert (unknown.value.status, unknown.value.message) == (
            404,
            "run_id: run 'nope' not found",
        )
        assert client.healthz()["status"] == "ok"


def test_unreachable_server_is_api_error_zero() -> None:
    client = OrchestratorClient("http://127.0.0.1:9", token=TOKEN, timeout=2)
    with client, pytest.raises(ApiError) as caught:
        client.get("x")
    assert caught.value.status == 0
    assert TOKEN not in str(caught.value)


def _schedule(**changes: object) -> dict[str, object]:
    definition: dict[str, object] = {
        "name": "nightly",
        "trigger": {"cron": "0 2 * * *", "time_zone": "Europe/Rome"},
        "run": SPEC,
    }
    definition.update(changes)
    return definition


def test_schedule_lifecycle(api: OrchestratorClient) -> None:
    created = api.create_schedule(_schedule())
    assert (created["name"], created["suspended"]) == ("nightly", False)
    assert len(created["next_fire_times"]) == 5
    with pytest.raises(ApiError) as exists:
        api.create_schedule(_schedule())
    assert exists.value.status == 409

    replaced = api.put_schedule("nightly", _schedule(history_limit=5))
    assert replaced["definition"]["history_limit"] == 5
    assert [item["name"] for item in api.list_schedules()] == ["nightly"]
    assert api.pause_schedule("nightly")["suspended"] is True
    assert api.get_schedule("nightly")["next_fire_times"] == []
    assert api.resume_schedule("nightly")["suspended"] is False

    first = api.trigger_schedule("nightly", idempotency_key="k")
    assert api.trigger_schedule("nightly", idempotency_key="k")["run_id"] == first["run_id"]
    assert api.trigger_schedule("nightly")["run_id"] != first["run_id"]
    assert api.get(first["run_id"])["spec"]["tags"]["schedule"] == "nightly"
    assert first["run_id"] in [h["run_id"] for h in api.get_schedule("nightly")["history"]]

    api.delete_schedule("nightly")
    for call in (api.get_schedule, api.delete_schedule, api.pause_schedule):
        with pytest.raises(ApiError) as missing:
            call("nightly")
        assert missing.value.status == 404


def test_schedule_errors_are_api_errors(api: OrchestratorClient) -> None:
    with pytest.raises(ApiError) as invalid:
        api.create_schedule(_schedule(trigger={"cron": "0 25 * * *"}))
    assert invalid.value.status == 422 and invalid.value.message.startswith("trigger.cron")
    with pytest.raises(ApiError) as mismatch:
        api.put_schedule("other", _schedule())
    assert mismatch.value.status == 422
    with pytest.raises(ApiError) as missing:
        api.trigger_schedule("nope", idempotency_key="k")
    assert missing.value.status == 404
