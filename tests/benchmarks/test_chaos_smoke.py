"""The chaos run's short form (benchmarks/chaos.py, 10 runs), at default settings:
workers SIGKILLed throughout, a clean Redis restart, 10% of Azure operations
failing. Nothing may be lost, doubled or left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_ten_runs_under_chaos_all_succeed_once_and_leave_nothing() -> None:
    args = ["--runs", "10", "--kill-every", "4", "--job-seconds", "5", "--redis-restarts", "1"]
    args += ["--timeout", "420"]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos.py"), *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads(completed.stdout)
    print(json.dumps(summary, indent=1))
    assert (summary["succeeded"], summary["failed"], summary["lost"]) == (10, 0, 0), summary
    assert summary["clusters_created_per_run"] == 1.0
    assert summary["jobs_created_per_run"] == 1.0
    assert summary["left_behind"] == {}
    assert summary["kills"] >= 3 and summary["redis_restarts"] == 1
    assert summary["unrecovered_kills"] == 0
