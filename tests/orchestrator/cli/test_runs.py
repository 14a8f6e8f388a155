"""`orchestrator submit | status | cancel` against a real Redis (no worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from orchestrator.domain.status import RunStatus
from orchestrator.settings import get_settings
from orchestrator.store import RunStore
from tests.support.cli import run_cli


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    # A share: input: nothing to upload, so no Azure call (uploads from the CLI
    # are tested against the emulator in tests/integration/test_inputs_e2e.py).
    path = tmp_path / "run.yaml"
    path.write_text("name: cli\njob:\n  script: train.py\ninputs:\n  CODE: share:code\n")
    return path


def test_submit_prints_the_run_id_and_queues_the_run(
    env: str, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["submit", str(spec_file), "--param", "epochs=3"], capsys)
    assert code == 0
    run_id = out.strip().splitlines()[-1]
    record = RunStore(redis.Redis.from_url(env)).get(run_id)
    assert record.status is RunStatus.QUEUED and record.dispatched
    assert record.spec.parameters == {"epochs": 3}

    code, out, _ = run_cli(["status", run_id, "--json"], capsys)
    assert code == 0 and json.loads(out)["run_id"] == run_id

    code, out, _ = run_cli(["cancel", run_id, "--json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    # The one cancel rule (chain/cancel.py), as the API's 409: an ended run is refused.
    code, _, err = run_cli(["cancel", run_id], capsys)
    assert code == 1
    assert err.strip().splitlines() == [f"error: run {run_id!r} has already ended (cancelled)"]
    assert RunStore(redis.Redis.from_url(env)).get(run_id).status is RunStatus.CANCELLED


def test_bad_spec_names_the_field(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\njob:\n  script: t.py\n  toolkit: keras\ninputs: {A: .}\n")
    code, _, err = run_cli(["submit", str(path)], capsys)
    assert code == 1
    assert "job.toolkit" in _error_line(err)


def test_bad_param_and_unknown_run_are_one_line_errors(
    env: str, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["submit", str(spec_file), "--param", "novalue"], capsys)
    assert code == 1 and "key=value" in _error_line(err)
    for command in ("status", "cancel"):
        code, _, err = run_cli([command, "no-such-run"], capsys)
        assert code == 1 and "not found" in _error_line(err)


def test_unreachable_redis_is_one_line(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter22@127.0.0.1:1/0")
    get_settings.cache_clear()
    try:
        code, _, err = run_cli(["status", "abc"], capsys)
    finally:
        get_settings.cache_clear()
    line = _error_line(err)
    assert code == 1 and "cannot reach Redis" in line
    assert "hunter22" not in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ORCH_POLL_INITIAL_SECONDS", "abc"), ("ORCH_STEP_MAX_RETRIES", "-1")],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    for argv in (["runs"], ["status", "abc"], ["api", "--port", "1"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 1 and variable in _error_line(err)


@pytest.mark.parametrize("url", ["localhost:6379", "redis://:hunter22@[::1/0"])
def test_a_malformed_redis_url_is_one_line(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    try:
        code, _, err = run_cli(["runs"], capsys)
    finally:
        get_settings.cache_clear()
    assert code == 1 and "REDIS_URL" in _error_line(err)
    assert "hunter22" not in err


def test_worker_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    # Usage errors, found by typer from the options' declared ranges and choices.
    code, _, err = run_cli(["worker", "--concurrency", "0"], capsys)
    assert code == 2 and "--concurrency" in _error_line(err)
    code, _, err = run_cli(["worker", "--loglevel", "LOUD"], capsys)
    assert code == 2 and "--loglevel" in _error_line(err)
    code, _, err = run_cli(["worker", "--pool", "gevent"], capsys)
    assert code == 2 and "--pool" in _error_line(err)
