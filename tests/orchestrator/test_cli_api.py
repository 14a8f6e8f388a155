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
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --port must be between 1 and 65535, got 70000"
