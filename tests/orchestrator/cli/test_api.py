from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_api_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"ORCH_API_TOKEN", "ORCH_API_ALLOW_UNAUTHENTICATED"}
    }
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "api", "--port", "8000"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no .env here
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ORCH_API_TOKEN is not set"), proc.stderr


def test_api_rejects_a_bad_port(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "api", "--port", "70000"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    # A usage error (typer validates the range): exit 2, one line naming the option.
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for '--port'"), lines
    assert "65535" in lines[0]
