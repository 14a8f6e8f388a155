"""`orchestrator runs | watch | logs | outputs` against a real Redis (no worker):
records are written through the store, artifacts into a temporary folder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus
from orchestrator.settings import get_settings
from orchestrator.store import RunRecord, RunStore
from tests.support.cli import run_cli


@pytest.fixture
def store(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunStore]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ORCH_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield RunStore.from_url(redis_url)
    get_settings.cache_clear()


def make_run(store: RunStore, name: str, tags: dict[str, str] | None = None) -> str:
    spec = parse_spec(
        {"name": name, "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}, "tags": tags or {}}
    )
    record, _ = store.create_run(spec)
    return record.run_id


def finish(store: RunStore, run_id: str, status: RunStatus, **kwargs: object) -> None:
    for step in (RunStatus.PROVISIONING, RunStatus.RUNNING, RunStatus.COLLECTING):
        store.transition(run_id, step)
    store.transition(run_id, status, **kwargs)  # type: ignore[arg-type]


def test_runs_filters_by_status_name_and_tag(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    nightly = make_run(store, "nightly", {"team": "vision"})
    sweep = make_run(store, "sweep")
    finish(store, sweep, RunStatus.SUCCEEDED)

    code, out, _ = run_cli(["runs", "--json"], capsys)
    assert code == 0
    assert {r["run_id"] for r in json.loads(out)} == {nightly, sweep}

    code, out, _ = run_cli(["runs", "--json", "--status", "succeeded"], capsys)
    assert [r["run_id"] for r in json.loads(out)] == [sweep]
    code, out, _ = run_cli(["runs", "--json", "--tag", "team=vision"], capsys)
    assert [r["run_id"] for r in json.loads(out)] == [nightly]
    code, out, _ = run_cli(["runs", "--name", "sweep"], capsys)
    assert sweep in out and nightly not in out


def test_runs_filters_by_submitter(store: RunStore, capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_spec({"name": "n", "job": {"script": "a.py"}, "inputs": {"A": "/tmp"}})
    mine, _ = store.create_run(spec, submitted_by="vision")
    store.create_run(spec, submitted_by="speech")
    code, out, _ = run_cli(["runs", "--json", "--submitted-by", "vision"], capsys)
    assert code == 0
    assert [r["run_id"] for r in json.loads(out)] == [mine.run_id]
    code, out, _ = run_cli(["runs", "--submitted-by", "nobody"], capsys)
    assert out.strip() == "no run matches these filters"


def test_runs_rejects_a_malformed_tag_in_one_line(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["runs", "--tag", "novalue"], capsys)
    assert code == 1
    assert err.strip().splitlines() == ["error: --tag must be key=value, got 'novalue'"]


def test_outputs_lists_and_downloads_collected_files(
    store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "outputs")
    root = tmp_path / "artifacts" / run_id
    (root / "outputs" / "MODEL").mkdir(parents=True)
    (root / "outputs" / "MODEL" / "model.pt").write_bytes(b"weights")
    (root / "stdout.txt").write_text("line 1\nline 2\n")
    store.update(run_id, lambda r: r.outputs.extend(["outputs/MODEL/model.pt", "stdout.txt"]))

    code, out, _ = run_cli(["outputs", run_id, "--json"], capsys)
    assert code == 0
    listed = {f["path"]: f["size"] for f in json.loads(out)["files"]}
    assert listed == {"outputs/MODEL/model.pt": 7, "stdout.txt": 14}

    target = tmp_path / "download"
    code, out, _ = run_cli(["outputs", run_id, "--download", str(target)], capsys)
    assert code == 0
    assert (target / "outputs" / "MODEL" / "model.pt").read_bytes() == b"weights"

    code, out, _ = run_cli(["logs", run_id], capsys)
    assert code == 0 and out == "line 1\nline 2\n"


def test_downloading_into_a_file_is_one_error_line(
    store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "outputs")
    root = tmp_path / "artifacts" / run_id
    (root / "outputs" / "MODEL").mkdir(parents=True)
    (root / "outputs" / "MODEL" / "model.pt").write_bytes(b"weights")
    store.update(run_id, lambda r: r.outputs.append("outputs/MODEL/model.pt"))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")

    code, _, err = run_cli(["outputs", run_id, "--download", str(not_a_folder)], capsys)
    assert code == 1
    line, *rest = err.strip().splitlines()
    assert not rest and line.startswith(f"error: cannot copy the outputs to {not_a_folder}")


def test_logs_of_a_run_without_output_is_one_error_line(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "nolog")
    code, _, err = run_cli(["logs", run_id], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: no stdout.txt for run {run_id} yet (status queued)"
    ]
    code, _, err = run_cli(["logs", "nosuchrun"], capsys)
    assert code == 1 and err.strip() == "error: run 'nosuchrun' not found"


def test_logs_of_a_finished_run_never_say_yet(
    store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before_job = make_run(store, "early")
    store.decide_ending(before_job, RunStatus.FAILED, FailureReason.INVALID_SPEC, "no input")
    store.transition(before_job, RunStatus.FAILED, reason=FailureReason.INVALID_SPEC)
    code, _, err = run_cli(["logs", before_job, "--stderr"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: run {before_job} ended failed before its job started: it has no stderr.txt"
    ]

    failed = make_run(store, "failed")
    store.update(failed, lambda r: r.resources.update(job="job-1"))
    finish(store, failed, RunStatus.FAILED, reason=FailureReason.JOB_FAILED)
    root = tmp_path / "artifacts" / failed
    root.mkdir(parents=True)
    (root / "stderr.txt").write_text("Traceback\nValueError: bad lr\n")
    (root / "stdout.txt").write_text("")
    code, out, _ = run_cli(["logs", failed, "--stderr"], capsys)
    assert (code, out) == (0, "Traceback\nValueError: bad lr\n")
    code, out, err = run_cli(["logs", failed], capsys)
    assert (code, out) == (0, "")
    assert err.strip() == f"the job of run {failed} wrote nothing to stdout (status failed)"


def test_watch_follows_until_the_end_and_exits_by_outcome(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "watched")
    ender = threading.Timer(
        0.5, finish, (store, run_id, RunStatus.FAILED), {"reason": FailureReason.JOB_FAILED}
    )
    ender.start()
    code, out, _ = run_cli(["watch", run_id], capsys)
    ender.join()
    assert code == 1  # not succeeded
    assert "failed" in out and "job_failed" in out and "poll_job" in out


HOSTILE_LOG = "epoch 1\x1b]0;pwned\x07 \x1b[31mloss=0.5\x1b[0m\r\n\x1b[2J10%\r20%\n"


def test_logs_strip_terminal_escapes_unless_raw(
    store: RunStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "hostile")
    store.update(run_id, lambda r: r.resources.update(job="job-1"))
    finish(store, run_id, RunStatus.FAILED, reason=FailureReason.JOB_FAILED, error="boom")
    root = tmp_path / "artifacts" / run_id
    root.mkdir(parents=True)
    (root / "stdout.txt").write_bytes(HOSTILE_LOG.encode())
    code, out, _ = run_cli(["logs", run_id], capsys)
    assert (code, out) == (0, "epoch 1 loss=0.5\n10%\n20%\n")
    code, out, _ = run_cli(["logs", run_id, "--raw"], capsys)
    assert (code, out) == (0, HOSTILE_LOG)


def test_status_shows_a_job_quoting_error_without_its_escapes(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "quoted")
    error = "job exited with code 1; stderr: \x1b]0;pwned\x07\x1b[31mValueError\x1b[0m\nnext"
    finish(store, run_id, RunStatus.FAILED, reason=FailureReason.JOB_FAILED, error=error)
    code, out, _ = run_cli(["status", run_id], capsys)
    assert code == 0
    assert out.splitlines()[0] == (
        f"{run_id}  failed (job_failed)  error: job exited with code 1; stderr: ValueError next"
    )
    assert "\x1b" not in out and "truncated" not in out
    code, out, _ = run_cli(["status", run_id, "--json"], capsys)
    assert json.loads(out)["error"] == error  # the record itself is kept as written


def test_status_says_when_metrics_were_truncated(
    store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = make_run(store, "chatty")

    def parsed(record: RunRecord) -> None:
        record.metrics = {"loss": 0.1}
        record.metrics_truncated = True

    store.update(run_id, parsed)
    code, out, _ = run_cli(["status", run_id], capsys)
    assert code == 0
    assert "  metrics truncated: the job printed more than is kept" in out
