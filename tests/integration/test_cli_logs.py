"""`orchestrator logs --follow` streams a job's stdout while the job runs
(read from the cluster's share through the gateway), then ends with the run,
printing every line exactly once across the switch to the collected copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import RunStatus
from tests.support.chain_stack import RUN_TIMEOUT, Stack

pytestmark = pytest.mark.integration

SLOW_JOB = """\
import os, sys, time
for epoch in (1, 2):
    line = f"Finished Epoch[{epoch} of 2]: [Training] loss = 0.5 * 10, metric = 5.00% * 10"
    print(line, flush=True)
print("halfway=1", flush=True)
# Wait, while running, until the test has seen the lines above live.
deadline = time.time() + 60
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.1)
print("done=1", flush=True)
"""


def test_logs_follow_streams_while_running(stack: Stack, tmp_path: Path) -> None:
    code = tmp_path / "slow"
    code.mkdir()
    (code / "train.py").write_text(SLOW_JOB)
    release = tmp_path / "release"
    spec = parse_spec(
        {
            "name": "logs",
            "job": {"script": "train.py", "args": [str(release)]},
            "inputs": {"CODE": str(code)},
        }
    )
    stack.start_worker()
    run_id = stack.submit(spec)
    follower = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "logs", run_id, "--follow"],
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    seen: list[str] = []
    try:
        for line in follower.stdout:
            seen.append(line.rstrip("\n"))
            if line.startswith("halfway=1"):
                # Printed live: the job is still running, held until we release it.
                assert stack.store.get(run_id).status is RunStatus.RUNNING
                release.write_text("go")
        follower.wait(timeout=RUN_TIMEOUT)
    finally:
        follower.kill()
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
    assert stack.wait_terminal(run_id).status is RunStatus.SUCCEEDED
    assert seen.count("halfway=1") == 1
    assert seen.count("done=1") == 1
    assert sum(line.startswith("Finished Epoch[") for line in seen) == 2
