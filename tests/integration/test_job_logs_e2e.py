"""Every run that got as far as a job keeps its job's stdout and stderr, and a
failed job's cause is on the `status` line: a real worker, the emulator running
the job as a local process, and the CLI as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.testing import file_service
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.status import FailureReason, RunStatus
from tests.support.chain_stack import Stack, wait_for

pytestmark = pytest.mark.integration

# Prints a line, says so through a marker file, then runs until cancelled.
LONG_JOB = """\
import pathlib, sys, time
print("epoch 1 of 100 done", flush=True)
pathlib.Path(sys.argv[1]).write_text("printed")
time.sleep(600)
"""


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_script_and_a_wrong_argument_show_their_cause(stack: Stack) -> None:
    stack.start_worker()
    # The script is missing from a share: folder (an upload without it would be
    # refused at submission): only the job finds out.
    files = file_service(stack.emulator.env)
    share = stack.settings().azure_file_share
    files.create_share(share)
    files.create_directory(share, "code")
    files.create_file_from_bytes(share, "code", "other.py", b"print('not the script')\n")
    missing_data = stack.spec("missing").model_dump(mode="json")
    missing_data["job"]["script"] = "no_such_train.py"
    missing_data["inputs"]["SCRIPTS"] = "share:code"
    missing_id = stack.submit(parse_spec(missing_data))
    wrong_id = stack.submit(stack.spec("wrongarg", bogus_flag=1))

    for run_id, cause in (
        (missing_id, "No such file or directory"),
        (wrong_id, "unrecognized arguments: --bogus_flag"),
    ):
        record = stack.wait_terminal(run_id)
        assert (record.status, record.reason) == (RunStatus.FAILED, FailureReason.JOB_FAILED)
        status = cli(stack, "status", run_id)
        assert status.returncode == 0, status.stderr
        first_line = status.stdout.splitlines()[0]
        assert cause in first_line, status.stdout
        logs = cli(stack, "logs", run_id, "--stderr")
        assert logs.returncode == 0, logs.stderr
        assert cause in logs.stdout
        assert (stack.artifacts / run_id / "stderr.txt").is_file()


def test_a_cancelled_run_keeps_its_partial_stdout(stack: Stack, tmp_path: Path) -> None:
    code = tmp_path / "long"
    code.mkdir()
    (code / "train.py").write_text(LONG_JOB)
    printed = tmp_path / "printed"
    spec = parse_spec(
        {
            "name": "cancelled",
            "job": {"script": "train.py", "args": [str(printed)]},
            "inputs": {"CODE": str(code)},
        }
    )
    stack.start_worker()
    run_id = stack.submit(spec)
    wait_for(printed.exists, 90, "the job to print its first line")
    cancel = cli(stack, "cancel", run_id)
    assert cancel.returncode == 0, cancel.stderr

    record = stack.wait_terminal(run_id)
    assert record.status is RunStatus.CANCELLED
    assert "epoch 1 of 100 done" in (stack.artifacts / run_id / "stdout.txt").read_text()
    logs = cli(stack, "logs", run_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "epoch 1 of 100 done\n"
    status = cli(stack, "status", run_id)
    assert status.stdout.splitlines()[0] == f"{run_id}  cancelled by request"
