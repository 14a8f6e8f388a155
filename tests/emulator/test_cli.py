"""`orchestrator emulator` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
    # stdout is a pipe here, as when it goes to a log: the secrets are named, not printed.
    secret_names = {"AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_EMULATOR_TOKEN"}
    assert parse_env_text(out) == {k: v for k, v in env.items() if k not in secret_names}
    for name in secret_names:
        assert f"# {name}: not printed (stdout is not a terminal); read it from {env_file}" in out
        assert env[name] not in out and env[name] not in err
    assert env["AZURE_STORAGE_KEY"] not in err


def run_on_a_terminal(args: list[str], env_file: Path) -> str:
    """stdout of `orchestrator emulator ARGS` with stdout a terminal (a pty), up to the
    moment it has written env_file; then it is stopped."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "emulator", *args],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        _wait_for(env_file, proc)
        expected = len(parse_env_file(env_file))
        deadline = time.monotonic() + 60
        # The lines are printed right after the file is written; read until all are in.
        while b"".join(chunks).count(b"\n") < expected and time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                chunks.append(os.read(master, 65536))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_every_line_is_printed_for_copying(tmp_path: Path) -> None:
    env_file = tmp_path / "emu.env"
    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "--env-file", str(env_file)]
    printed = run_on_a_terminal(args, env_file)
    assert parse_env_text(printed) == parse_env_file(env_file)
    assert set(parse_env_text(printed)) == EXPECTED_KEYS


def test_env_file_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode 0600 from its creation (os.open with the mode), not chmodded after writing."""
    import os

    from emulator.envfile import write_env_file

    created: list[tuple[str, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append((str(path), mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    env_file = tmp_path / "emu.env"
    # A world-readable leftover of a crash must not lend its mode.
    (tmp_path / "emu.env.tmp").write_text("stale")
    (tmp_path / "emu.env.tmp").chmod(0o644)
    write_env_file(env_file, {"AZURE_STORAGE_KEY": "k"})
    assert created == [(str(tmp_path / "emu.env.tmp"), 0o600)]
    assert env_file.stat().st_mode & 0o777 == 0o600


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
    # It names the port and the flag that changes it.
    assert lines[0].startswith(f"error: port {port} on 127.0.0.1 is in use"), lines
    assert "--port" in lines[0]
