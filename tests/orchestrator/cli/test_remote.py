"""`submit` and `outputs` through the API (ORCH_API_URL set): the CLI uploads its
local inputs over HTTP and fetches outputs from any machine. The API's share is
the in-memory gateway here; tests/integration/test_inputs_e2e.py has the real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.api import create_app
from orchestrator.settings import Settings, get_settings
from orchestrator.store import RunRecord, RunStore, StoredOutput
from tests.support.api import TOKEN, settings, store
from tests.support.chain_fakes import FakeGateway
from tests.support.cli import run_cli
from tests.support.live_server import serve

__all__ = ["settings", "store"]


@pytest.fixture
def share() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def api_env(
    settings: Settings, share: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    app = create_app(settings)
    app.state.gateway = share
    with serve(app) as url:
        # Only the API: no REDIS_URL, as on a machine that cannot reach Redis.
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv("ORCH_API_URL", url)
        monkeypatch.setenv("ORCH_API_TOKEN", TOKEN)
        get_settings.cache_clear()
        yield url
        get_settings.cache_clear()


def test_submit_uploads_through_the_api_and_outputs_download_from_it(
    api_env: str,
    share: FakeGateway,
    store: RunStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print(1)\n")
    spec = tmp_path / "run.yaml"
    spec.write_text("name: remote\njob:\n  script: train.py\ninputs:\n  CODE: code\n")
    code, out, err = run_cli(["submit", str(spec)], capsys)
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    value = store.get(run_id).spec.inputs["CODE"]
    assert value.startswith("upload:")
    assert [p for p in share.share_files if p.startswith("uploads/sha256/")]

    share.share_files["outputs/remote/x/model.bin"] = b"weights"

    def collected(record: RunRecord) -> None:
        record.output_files = {
            "outputs/MODEL/model.bin": StoredOutput(share_path="outputs/remote/x/model.bin", size=7)
        }

    store.update(run_id, collected)
    target = tmp_path / "fetched"
    code, out, err = run_cli(["outputs", run_id, "--download", str(target)], capsys)
    assert code == 0, err
    assert (target / "outputs" / "MODEL" / "model.bin").read_bytes() == b"weights"
    assert "copied 1 file(s)" in out


def test_a_local_input_that_cannot_be_uploaded_is_one_line(
    api_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").symlink_to("/etc/hostname")
    spec = tmp_path / "run.yaml"
    spec.write_text("name: remote\njob:\n  script: train.py\ninputs:\n  CODE: code\n")
    code, _, err = run_cli(["submit", str(spec)], capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("error: inputs.CODE: ") and line.endswith(
        "is a symlink; only regular files are uploaded"
    )
