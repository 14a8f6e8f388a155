"""Errors that say what to do: one line, a non-zero exit, the field, port or
flag to change -- before anything starts or is enqueued."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.cli import run_cli


def cli_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def write_spec(folder: Path, script: str = "train.py", inputs: str = "CODE: code") -> Path:
    (folder / "code").mkdir(exist_ok=True)
    (folder / "code" / "train.py").write_text("print(1)\n")
    spec = folder / "run.yaml"
    spec.write_text(f"name: e\njob:\n  script: {script}\ninputs:\n  {inputs}\n")
    return spec


@pytest.mark.parametrize(
    ("script", "inputs", "expected"),
    [
        ("train.py", "CODE: nowhere", "inputs.CODE: {tmp}/nowhere does not exist"),
        ("trian.py", "CODE: code", "job.script: trian.py is not in the first input"),
    ],
)
def test_submit_checks_inputs_and_script_before_enqueueing(
    env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    script: str,
    inputs: str,
    expected: str,
) -> None:
    spec = write_spec(tmp_path, script, inputs)
    code, out, err = run_cli(["submit", str(spec)], capsys)
    assert code == 1 and out == ""
    assert expected.format(tmp=tmp_path) in one_error_line(err)
    assert redis.Redis.from_url(env).dbsize() == 0  # nothing enqueued, no record


def test_worker_and_beat_refuse_an_invalid_redis_url_in_one_line() -> None:
    for command in ("worker", "beat"):
        proc = cli_process(command, env={"REDIS_URL": "localhost:6379"})
        assert proc.returncode == 1
        line = one_error_line(proc.stderr)
        assert line.startswith("error: REDIS_URL 'localhost:6379' is not a Redis URL")


def test_up_names_a_taken_api_port_and_the_flag(tmp_path: Path, listening_port: int) -> None:
    proc = cli_process("up", "--home", str(tmp_path / "home"), "--api-port", str(listening_port))
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == (
        f"error: port {listening_port} is in use; choose another with "
        "`orchestrator up --api-port N` (0 = no API)"
    )
    assert not (tmp_path / "home" / "redis").exists()  # refused before anything started


def test_emulator_names_a_taken_port_and_the_flag(tmp_path: Path, listening_port: int) -> None:
    proc = cli_process("emulator", "--port", str(listening_port), "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == (
        f"error: port {listening_port} on 127.0.0.1 is in use; choose another with "
        "`orchestrator emulator --port N` (0 picks a free one)"
    )


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_give_up_on_an_unreachable_redis_in_one_line(
    command: str, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe closes
    proc = cli_process(
        command,
        "--wait-for-redis",
        "1",
        env={"REDIS_URL": f"redis://:hunter22@127.0.0.1:{closed_port}/0"},
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert line.startswith(f"error: cannot reach Redis at redis://:***@127.0.0.1:{closed_port}/0")
    assert "after 1s" in line and "hunter22" not in proc.stderr + proc.stdout


def test_a_waiting_worker_says_so_every_few_seconds(tmp_path: Path) -> None:
    from orchestrator.cli.serve import WAIT_REPORT_SECONDS

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    wait = WAIT_REPORT_SECONDS + 1
    proc = cli_process(
        "worker",
        "--wait-for-redis",
        str(wait),
        env={"REDIS_URL": f"redis://127.0.0.1:{closed_port}/0"},
        cwd=tmp_path,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1
    assert [line.split(":")[0] for line in lines] == ["waiting for Redis at redis", "error"]


def test_a_worker_refuses_a_redis_that_can_evict_keys(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        proc = cli_process("worker", env={"REDIS_URL": redis_url}, cwd=tmp_path)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert "maxmemory-policy" in line and "allkeys-lru" in line, line
