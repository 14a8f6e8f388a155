"""Inputs and outputs from anywhere (issue 8), on the real parts: Redis, the
emulator, a worker process and the API over HTTP.

- a caller uploads through the API and deletes its folder at once: the run
  succeeds; the same data again uploads nothing; one changed file uploads alone
- the API and the worker share no disk: every output comes from the share
- a job's symlink in its outputs is never followed
- a share: input trains where it lies, and nothing is uploaded
- the probe (a worker path) is refused with nothing uploaded
- an upload over the limit leaves nothing; retention collects unused uploads
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.common import AzureMissingResourceHttpError
from pydantic import SecretStr

from emulator.testing import file_service
from orchestrator.api import create_app
from orchestrator.azure.gateway import AzureGateway
from orchestrator.chain.enqueue import direct_uploads
from orchestrator.chain.reaper import reap
from orchestrator.chain.steps import StepContext
from orchestrator.client import OrchestratorClient
from orchestrator.domain.inputs import Manifest, ManifestEntry
from orchestrator.domain.naming import upload_blob_path
from orchestrator.domain.spec import parse_spec
from tests.support.chain_stack import RUN_TIMEOUT, TRAIN_SCRIPT, Stack
from tests.support.live_server import serve

pytestmark = pytest.mark.integration

TOKEN = "inputs-token-0123456789"
# The job also leaves two symlinks among its outputs: one to a file of the
# worker's machine, one to another folder of the share.
SYMLINKING_SCRIPT = (
    TRAIN_SCRIPT.replace("sys.exit(args.exit_code)", "")
    + """
out = os.environ["AZ_BATCHAI_OUTPUT_MODEL"]
os.symlink("/etc/hostname", os.path.join(out, "host-file"))
os.symlink(os.environ["AZ_BATCHAI_INPUT_DATA"], os.path.join(out, "data-link"))
sys.exit(args.exit_code)
"""
)


@pytest.fixture
def api(stack: Stack) -> Iterator[OrchestratorClient]:
    """The API as on a third machine: its own (empty) artifacts folder."""
    settings = stack.settings(
        ORCH_ARTIFACTS_DIR=str(stack.tmp_path / "api-artifacts"),
        ORCH_API_TOKEN=SecretStr(TOKEN),
    )
    with serve(create_app(settings)) as url, OrchestratorClient(url, token=TOKEN) as client:
        yield client


def _caller_folder(root: Path) -> Path:
    """A spec and its data, as a caller on another machine has them."""
    (root / "code").mkdir(parents=True)
    (root / "code" / "train.py").write_text(SYMLINKING_SCRIPT)
    (root / "data").mkdir()
    (root / "data" / "train.txt").write_text("0 1 2 3\n" * 2000)
    (root / "data" / "labels.txt").write_text("7\n" * 500)
    spec = {
        "name": "remote",
        "job": {"script": "train.py", "max_wall_clock": "PT10M"},
        "inputs": {"SCRIPTS": "code", "DATA": "data"},
        "outputs": ["MODEL"],
    }
    (root / "run.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root / "run.yaml"


def test_a_caller_elsewhere_brings_its_data_and_gets_every_output(
    stack: Stack, api: OrchestratorClient
) -> None:
    stack.start_worker()
    spec_file = _caller_folder(stack.tmp_path / "caller")
    run_id = api.submit(spec_file)["run_id"]
    uploaded = stack.stats()["bytes_uploaded"]
    shutil.rmtree(stack.tmp_path / "caller")  # the caller's machine forgets it all
    assert api.last_upload.files == 3 and api.last_upload.sent_files == 3
    assert uploaded == api.last_upload.sent_bytes > 16000

    final = api.wait(run_id, timeout=RUN_TIMEOUT)
    assert final["status"] == "succeeded", final["error"]
    kinds = {input_id: item["kind"] for input_id, item in final["inputs"].items()}
    assert kinds == {"SCRIPTS": "upload", "DATA": "upload"}
    assert final["inputs"]["DATA"]["files"] == 2

    # The API shares no disk with the worker: every output comes from the share,
    # byte for byte as the job wrote it.
    listed = {item["path"]: item["size"] for item in api.outputs(run_id)}
    assert set(listed) == {"stdout.txt", "stderr.txt", "outputs/MODEL/ConvNet_MNIST.model"}
    for path in listed:
        body = api.download(run_id, path, stack.tmp_path / "fetched" / path).read_bytes()
        assert body == (stack.artifacts / run_id / path).read_bytes()
        assert len(body) == listed[path]
    assert not (stack.tmp_path / "api-artifacts").exists()
    # Neither symlink the job wrote was listed, collected or served.
    assert not list((stack.artifacts / run_id).rglob("host-file"))
    assert not list((stack.artifacts / run_id).rglob("data-link"))

    # The same data from another folder: nothing is uploaded again.
    again = _caller_folder(stack.tmp_path / "caller-2")
    api.submit(again)
    assert api.last_upload.sent_files == 0
    assert stack.stats()["bytes_uploaded"] == uploaded
    # One file changed: that file alone is sent.
    (again.parent / "data" / "labels.txt").write_text("8\n" * 500)
    api.submit(again)
    assert api.last_upload.sent_files == 1
    assert stack.stats()["bytes_uploaded"] == uploaded + len("8\n" * 500)


def test_a_share_input_trains_where_it_lies_and_nothing_is_uploaded(stack: Stack) -> None:
    files = file_service(stack.emulator.env)
    share = stack.settings().azure_file_share
    files.create_share(share)
    for folder in ("etl", "etl/mnist", "etl/mnist/2026-11-30", "etl/code"):
        files.create_directory(share, folder)
    files.create_file_from_bytes(share, "etl/mnist/2026-11-30", "train.txt", b"0 1\n" * 100)
    files.create_file_from_bytes(share, "etl/code", "train.py", TRAIN_SCRIPT.encode())
    before = stack.stats()["bytes_uploaded"]
    stack.start_worker()
    spec = parse_spec(
        {
            "name": "nightly",
            "job": {"script": "train.py", "max_wall_clock": "PT10M"},
            "inputs": {"SCRIPTS": "share:etl/code", "DATA": "share:etl/mnist/2026-11-30"},
            "outputs": ["MODEL"],
        }
    )
    final = stack.wait_terminal(stack.submit(spec))
    assert final.status.value == "succeeded", final.error
    assert stack.stats()["bytes_uploaded"] == before  # nothing was uploaded
    seen = final.inputs["DATA"]
    assert (seen.kind.value, seen.files, seen.bytes) == ("share", 1, 400)
    assert seen.listing[0]["path"] == "train.txt" and seen.listing[0]["size"] == 400


def test_the_probe_uploads_nothing_and_creates_no_run(
    stack: Stack, api: OrchestratorClient, tmp_path: Path
) -> None:
    planted = tmp_path / "worker-folder"
    planted.mkdir()
    (planted / ".env").write_text("AZURE_STORAGE_KEY=planted\n")
    body: dict[str, Any] = {
        "name": "probe",
        "job": {"toolkit": "custom", "command": "cat $AZ_BATCHAI_INPUT_X/.env"},
    }
    for path in (str(planted), "/proc/self/environ", f"{planted}/../worker-folder"):
        response = api._http.post("/v1/runs", json={"spec": {**body, "inputs": {"X": path}}})
        assert response.status_code == 422
        assert response.json()["message"].startswith("spec.inputs.X: ")
    assert stack.stats()["bytes_uploaded"] == 0
    assert api.list()["items"] == []


def test_an_upload_over_the_limit_leaves_nothing(stack: Stack) -> None:
    settings = stack.settings(ORCH_INPUT_MAX_BYTES="1000", ORCH_API_TOKEN=SecretStr(TOKEN))
    big = b"x" * 1001
    digest = hashlib.sha256(big).hexdigest()
    with serve(create_app(settings)) as url, OrchestratorClient(url, token=TOKEN) as client:
        response = client._http.put(f"/v1/uploads/content/{digest}", content=big)
        assert response.status_code == 413
        # A body cut short by a lying client: nothing it sent stays either.
        small = b"y" * 10
        wrong = hashlib.sha256(b"z" * 10).hexdigest()
        response = client._http.put(f"/v1/uploads/content/{wrong}", content=small)
        assert response.status_code == 422
    files = file_service(stack.emulator.env)
    for name in (digest, wrong):
        with pytest.raises(AzureMissingResourceHttpError):
            files.get_file_properties(settings.azure_file_share, "uploads/sha256", name)
    assert stack.stats()["bytes_uploaded"] == 10  # the refused body was never written


def test_retention_collects_unused_uploads_and_keeps_those_of_live_runs(stack: Stack) -> None:
    settings = stack.settings()
    gateway = AzureGateway(settings)
    now = 2_000_000_000.0
    ids = {}
    for label in ("unused", "queued"):
        body = f"{label} content".encode()
        digest = hashlib.sha256(body).hexdigest()
        source = stack.tmp_path / label
        source.write_bytes(body)
        uploads = direct_uploads(settings, stack.store)
        uploads.clock = lambda: now - 8 * 86400  # uploaded and last used 8 days ago
        uploads.put_file(digest, source)
        manifest = Manifest(files=[ManifestEntry(path="a.txt", sha256=digest, size=len(body))])
        ids[label] = (uploads.commit(manifest), digest)
    spec = parse_spec(
        {
            "name": "waiting",
            "job": {"toolkit": "custom", "command": "true"},
            "inputs": {"X": f"upload:{ids['queued'][0]}"},
        }
    )
    stack.store.create_run(spec)  # queued, never started (no worker here)
    report = reap(StepContext(settings, stack.store, gateway, clock=lambda: now))
    assert report.deleted_uploads == [ids["unused"][0]]
    assert report.deleted_contents == [ids["unused"][1]]
    assert gateway.share_file(settings.azure_file_share, upload_blob_path(ids["unused"][1])) is None
    kept = gateway.share_file(settings.azure_file_share, upload_blob_path(ids["queued"][1]))
    assert kept is not None and kept.md5 is not None


def test_each_job_mounts_only_its_own_run_share(stack: Stack) -> None:
    """Issue 16's finding: every cluster mounted the whole share, so one run's job read
    another's inputs and wrote into its outputs. Now the cluster mounts nothing and each
    job mounts its run's own share, holding its own inputs and outputs only."""
    stack.start_worker()
    files = file_service(stack.emulator.env)
    victim = stack.wait_terminal(stack.submit(stack.spec("victim")))
    assert victim.status.value == "succeeded", victim.error
    probe = (
        'ls "$AZ_BATCHAI_JOB_MOUNT_ROOT/azfiles" "$AZ_BATCHAI_JOB_MOUNT_ROOT/azfiles/inputs"; '
        'test -e "$AZ_BATCHAI_MOUNT_ROOT/azfiles" && echo cluster-mount-present; '
        'echo backdoor > "$AZ_BATCHAI_OUTPUT_MODEL/backdoor.pt"'
    )
    spec = parse_spec(
        {
            "name": "victim",  # the same name: the same experiment, as a sweep's runs
            "job": {"toolkit": "custom", "command": probe},
            "inputs": {"OWN": str(stack.data_dir)},
            "outputs": ["MODEL"],
        }
    )
    attacker = stack.wait_terminal(stack.submit(spec))
    assert attacker.status.value == "succeeded", attacker.error
    # `ls` of two folders: a heading line ending in ":" before each listing.
    seen = [
        word
        for word in (stack.artifacts / attacker.run_id / "stdout.txt").read_text().split()
        if not word.endswith(":")
    ]
    assert seen == ["inputs", "outputs", "OWN"], seen  # its own input, no other run's
    # The victim's outputs are its own, on its own share.
    assert all(not path.endswith("backdoor.pt") for path in victim.output_files)
    victim_share = {stored.share for stored in victim.output_files.values()}
    attacker_share = {stored.share for stored in attacker.output_files.values()}
    assert len(victim_share) == len(attacker_share) == 1 and victim_share != attacker_share
    # The victim's input copies were deleted at its cleanup; its outputs stay.
    [share] = victim_share
    assert [item.name for item in files.list_directories_and_files(share)] == ["outputs"]
