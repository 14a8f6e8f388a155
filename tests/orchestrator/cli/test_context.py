"""Which stack a command talks to (cli/context.py), the root options
(--version, --connect-timeout), and `runs` against a Redis without our data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli.context import (
    StackContext,
    apply_context,
    find_context,
    read_context,
    write_context,
)
from orchestrator.devstack.redis_server import free_port
from orchestrator.observability.logs import redact_text
from orchestrator.settings import Settings, get_settings
from tests.orchestrator.cli.test_view import make_run
from tests.support.cli import run_cli


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def context_in(folder: Path, pid: int) -> StackContext:
    context = StackContext(
        path=folder / ".orchestrator" / "context.json",
        pid=pid,
        home=folder / ".orchestrator",
        env={"REDIS_URL": "redis://127.0.0.1:1234/0", "ORCH_ARTIFACTS_DIR": "/data/artifacts"},
        api_url="http://127.0.0.1:8123",
        api_token_file=str(folder / ".orchestrator" / "api-token"),
    )
    write_context(context)
    return context


def test_the_context_file_is_private_and_reads_back(tmp_path: Path) -> None:
    written = context_in(tmp_path, os.getpid())
    assert oct(written.path.stat().st_mode & 0o777) == "0o600"
    assert read_context(written.path) == written
    written.path.write_text("{not json")
    assert read_context(written.path) is None


def test_a_subfolder_uses_the_running_stack_and_the_environment_wins(tmp_path: Path) -> None:
    context_in(tmp_path, os.getpid())
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    environ: dict[str, str] = {"ORCH_ARTIFACTS_DIR": "/mine"}
    assert apply_context(environ, deep) is not None
    assert environ == {"REDIS_URL": "redis://127.0.0.1:1234/0", "ORCH_ARTIFACTS_DIR": "/mine"}

    # REDIS_URL set (environment or .env) names another stack: nothing is mixed in.
    named = {"REDIS_URL": "redis://elsewhere:6379/0"}
    assert apply_context(named, deep) is None and named == {"REDIS_URL": "redis://elsewhere:6379/0"}
    (deep / ".env").write_text("REDIS_URL='redis://fromdotenv:6379/0'\n")
    assert apply_context({}, deep) is None


def test_the_context_of_a_stack_that_is_gone_is_ignored(tmp_path: Path) -> None:
    context_in(tmp_path, dead_pid())
    environ: dict[str, str] = {}
    assert apply_context(environ, tmp_path) is None and environ == {}
    assert find_context(tmp_path) is not None  # still reported by `orchestrator context`


def test_artifacts_dir_is_absolute_once_settings_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(ORCH_ARTIFACTS_DIR="out/artifacts")
    monkeypatch.chdir("/")
    assert settings.artifacts_dir == tmp_path / "out" / "artifacts"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("orchestrator 0.")


def test_an_unreachable_redis_is_one_line_after_the_connect_timeout(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, out, err = run_cli(["--connect-timeout", "0.5", "runs"], capsys)
    assert code == 1 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: cannot reach Redis at redis://127.0.0.1:")
    assert "within 0.5s" in line and "orchestrator up" in line


def test_runs_says_when_redis_holds_no_orchestrator_data(
    cli_env: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    code, out, _ = run_cli(["runs"], capsys)
    assert code == 0
    shown = redact_text(redis_url)  # the embedded Redis has a password: never printed
    assert out.startswith(f"no runs: the Redis at {shown} holds no orchestrator data")
    from orchestrator.store import RunStore

    make_run(RunStore.from_url(redis_url), "one")
    code, out, _ = run_cli(["runs", "--name", "other"], capsys)
    assert (code, out) == (0, "no run matches these filters\n")


def test_context_command_says_where_the_stack_comes_from(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, out, _ = run_cli(["context"], capsys)
    assert code == 0 and out.startswith(f"stack: none found in {cli_env} or above")
    context_in(cli_env, dead_pid())
    code, out, _ = run_cli(["context"], capsys)
    assert "stack: none running" in out and "orchestrator up" in out
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    code, out, _ = run_cli(["context"], capsys)
    assert out.splitlines()[:2] == [
        "stack: named by the environment",
        "REDIS_URL=redis://127.0.0.1:9/0",
    ]
