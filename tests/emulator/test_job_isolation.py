"""What a job process can see and do: a clean environment, an unprivileged user when the
emulator is root, and command-line arguments read with POSIX shell quoting."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.batchai import runner
from emulator.testing import RunningEmulator, arm_client, file_service, start_emulator
from tests.emulator.test_batchai_sdk import custom_job, finished, make_cluster, read_share
from tests.emulator.test_quickstart_flow import prepare_quickstart

# What the orchestrator and the emulator hold; a job must see none of it.
PARENT_SECRETS = {
    "AZURE_STORAGE_KEY": "parent-storage-key-value",
    "AZURE_STORAGE_CONNECTION_STRING": "AccountKey=parent-conn-key",
    "AZURE_EMULATOR_TOKEN": "parent-emulator-token",
    "ORCH_API_TOKEN": "parent-api-token",
    "AZURE_CLIENT_SECRET": "parent-client-secret",
    "REDIS_URL": "redis://:parent-redis-password@127.0.0.1:6379/0",
}
# PWD is set by the job's own shell.
BASICS = {"PATH", "HOME", "LANG", "TMPDIR", "PWD"}

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs the emulator to run as root")


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A data dir every user can traverse (pytest's tmp dirs are 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="emu-isolation-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_job(emulator: RunningEmulator, command: str, **extra: Any) -> tuple[Any, Any]:
    files = file_service(emulator.env)
    client = prepare_quickstart(emulator, arm_client(emulator.env), files)
    make_cluster(client, emulator.env)
    custom_job(client, "probe", command, **extra)
    return finished(client, "probe"), files


def job_environment(files: Any) -> dict[str, str]:
    text = read_share(files, "", "environ.txt")
    return dict(item.split("=", 1) for item in text.split("\0") if item)


ENV_COMMAND = 'cat /proc/self/environ > "$AZ_BATCHAI_MOUNT_ROOT/afs/environ.txt"'


def test_a_job_sees_only_its_own_environment(
    reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PARENT_SECRETS.items():
        monkeypatch.setenv(name, value)
    import azure.mgmt.batchai.models as models

    with start_emulator(reachable_dir) as emulator:
        job, files = run_job(
            emulator,
            ENV_COMMAND,
            environment_variables=[models.EnvironmentVariable(name="SPEC_VAR", value="x")],
        )
        assert job.execution_state == "succeeded"
        seen = job_environment(files)
        secrets = set(PARENT_SECRETS.values()) | {
            emulator.env["AZURE_STORAGE_KEY"],
            emulator.access_token,
        }
    text = "\n".join(f"{k}={v}" for k, v in seen.items())
    assert not [secret for secret in secrets if secret in text]
    assert seen["SPEC_VAR"] == "x"
    unexpected = {
        name for name in seen if name not in BASICS | {"SPEC_VAR"} and not name.startswith("AZ_")
    }
    assert unexpected == set()


@as_root
def test_jobs_run_as_the_unprivileged_user_and_can_write_their_folders(
    reachable_dir: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    command = (
        'id -u > "$AZ_BATCHAI_MOUNT_ROOT/afs/uid.txt"; '
        'echo out > "$AZ_BATCHAI_OUTPUT_MODEL/model.txt"; echo tmp > "$TMPDIR/t"'
    )
    import azure.mgmt.batchai.models as models

    with start_emulator(reachable_dir) as emulator:
        job, files = run_job(
            emulator,
            command,
            output_directories=[
                models.OutputDirectory(id="MODEL", path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs")
            ],
        )
        assert job.execution_state == "succeeded", job.execution_info
        assert read_share(files, "", "uid.txt").strip() == str(nobody.pw_uid)


@as_root
def test_an_interpreter_the_user_cannot_reach_falls_back_with_a_warning(
    reachable_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest's tmp_path sits in a 0700 directory of root, like a venv under /root.
    hidden = tmp_path / "bin"
    hidden.mkdir()
    (hidden / "python").symlink_to(sys.executable)
    caplog.set_level(logging.WARNING, logger="emulator")
    runner._warned.clear()
    with start_emulator(reachable_dir, python=str(hidden / "python")) as emulator:
        files = file_service(emulator.env)
        client = prepare_quickstart(emulator, arm_client(emulator.env), files)
        make_cluster(client, emulator.env)
        _python_job(client, files)
        job = finished(client, "py")
        assert job.execution_state == "succeeded", job.execution_info
        assert read_share(files, "", "uid.txt").strip() == "0"
    assert "is not readable and executable by user 'nobody'" in caplog.text


def _python_job(client: Any, files: Any) -> None:
    import azure.mgmt.batchai.models as models

    from tests.emulator.test_quickstart_flow import (
        CLUSTER,
        EXPERIMENT,
        GROUP,
        SHARE,
        WORKSPACE,
    )

    files.create_file_from_text(
        SHARE, None, "uid.py", "import os, sys\nopen(sys.argv[1], 'w').write(str(os.getuid()))\n"
    )
    client.jobs.begin_create(
        GROUP,
        WORKSPACE,
        EXPERIMENT,
        "py",
        models.JobCreateParameters(
            cluster=models.ResourceId(id=client.clusters.get(GROUP, WORKSPACE, CLUSTER).id),
            node_count=1,
            std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
            py_torch_settings=models.PyTorchSettings(
                python_script_file_path="$AZ_BATCHAI_MOUNT_ROOT/afs/uid.py",
                command_line_args="$AZ_BATCHAI_MOUNT_ROOT/afs/uid.txt",
            ),
        ),
    ).result()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'$HOME' \"$HOME\" $HOME", ["$HOME", "/home/job", "/home/job"]),
        ("'a b' \"c d\" e\\ f", ["a b", "c d", "e f"]),
        ("$SPACED", ["one", "two"]),
        ('"$SPACED"', ["one  two"]),
        ("x$SPACED'y'", ["xone", "twoy"]),
        ("'' \"\" $EMPTY", ["", ""]),
        ("\\$HOME \"\\$HOME\" '\\$HOME'", ["$HOME", "$HOME", "\\$HOME"]),
        ("${HOME}/a $UNKNOWN", ["/home/job/a", "$UNKNOWN"]),
        ("--lr=0.1 --name='my run'", ["--lr=0.1", "--name=my run"]),
    ],
)
def test_arguments_follow_posix_shell_quoting(text: str, expected: list[str]) -> None:
    env = {"HOME": "/home/job", "SPACED": "one  two", "EMPTY": ""}
    properties = {"pyTorchSettings": {"pythonScriptFilePath": "train.py", "commandLineArgs": text}}
    assert runner.main_command(properties, env, "python")[2:] == expected


@pytest.mark.parametrize("text", ["'open", '"open', "a 'b\" c"])
def test_an_unclosed_quote_is_a_launch_error(text: str) -> None:
    properties = {"pyTorchSettings": {"pythonScriptFilePath": "t.py", "commandLineArgs": text}}
    with pytest.raises(runner.LaunchError, match="unclosed"):
        runner.main_command(properties, {}, "python")


SHELL_CASES = [
    "$AZ_X/sub",
    "${AZ_X}b",
    "a b",
    'q"uote',
    "back\\slash",
    "tick`id`",
    "$(id)",
    "${X:-$(id)}",
    "cost $5",
    "$",
    "it's",
]


def test_the_orchestrators_quoting_reads_the_same_in_sh_and_in_the_emulator() -> None:
    """job.args as the orchestrator quotes them: /bin/sh and the emulator's reader agree,
    and only $NAME / ${NAME} expand."""
    import subprocess

    from orchestrator.azure.job_params import shell_word_expanding_variables

    env = {"AZ_X": "/in", "X": "x", "PATH": "/usr/bin:/bin"}
    line = " ".join(shell_word_expanding_variables(arg) for arg in SHELL_CASES)
    shell = subprocess.run(
        ["/bin/sh", "-c", f'for a in {line}; do printf "%s\\0" "$a"; done'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    from_shell = shell.stdout.split("\0")[:-1]
    assert runner.split_command_line(line, env) == from_shell
    assert from_shell[:2] == ["/in/sub", "/inb"]
    assert from_shell[2:] == SHELL_CASES[2:]  # everything else literal
