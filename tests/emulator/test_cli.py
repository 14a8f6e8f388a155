"""`orchestrator emulator` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from emulator.envfile import parse_env_text
from emulator.testing import parse_env_file

EXPECTED_KEYS = {
    "AZURE_ARM_ENDPOINT",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "REQUESTS_CA_BUNDLE",
    "AZURE_EMULATOR_TOKEN",
}


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "emulator did not start"
        time.sleep(0.05)


def test_emulator_command_prints_env_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "emu.env"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "emulator",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--env-file",
            str(env_file),
            "--seed",
            "3",
            "--fault",
            "error500:1:Files_CreateShare",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(env_file, proc)
        env = parse_env_file(env_file)
        assert set(env) == EXPECTED_KEYS
        assert env["AZURE_ARM_ENDPOINT"].startswith("https://127.0.0.1:")
        assert f"FileEndpoint={env['AZURE_ARM_ENDPOINT']}" in env["AZURE_STORAGE_CONNECTION_STRING"]
        health = requests.get(
            env["AZURE_ARM_ENDPOINT"] + "/_emulator/stats",
            headers={"Authorization": f"Bearer {env['AZURE_EMULATOR_TOKEN']}"},
            verify=env["REQUESTS_CA_BUNDLE"],
            timeout=30,
        )
        assert health.json()["faults"][0]["kind"] == "error500"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert parse_env_text(out) == env
    assert env["AZURE_STORAGE_KEY"] not in err


def test_python_dash_m_emulator_is_the_same_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2  # a usage error, found by typer from the declared range
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for '--port'"), lines


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fault", "meteor:0.5"], "kind"),
        (["--fault", "drop:2"], "rate"),
        (["--port", "abc"], "--port"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--provision-seconds", "-1"], "--provision-seconds"),
    ],
)
def test_bad_flags_are_one_line_and_nonzero(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "emulator", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle in lines[0]


def test_port_in_use_is_one_line_and_nonzero(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "emulator",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot start the emulator")
