"""`orchestrator demo` and `orchestrator up`, as a user runs them: real
processes end to end (embedded Redis, emulator, API, worker, beat)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.devstack.redis_server import free_port

pytestmark = pytest.mark.integration

# The stack must find its own Redis and the emulator, whatever this shell has.
STRIPPED = ("REDIS_URL", "AZURE_CLIENT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ARM_ENDPOINT")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in STRIPPED}


def children_of(pid: int) -> set[int]:
    """PIDs whose parent is pid (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_demo_trains_the_convnet_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo", "--home", str(tmp_path / "demo")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "status:     succeeded" in proc.stdout
    error = re.search(r"test error: ([0-9.]+)%", proc.stdout)
    assert error is not None and float(error.group(1)) < 10.0
    model = re.search(r"model file: (\S+)", proc.stdout)
    assert model is not None and Path(model.group(1)).stat().st_size > 0
    # The live log panel names the model as the artifacts do.
    assert "Model saved to outputs/MODEL/ConvNet_MNIST.pt" in proc.stdout
    summary = proc.stdout.split("4/4", 1)[1]
    assert "http" not in summary  # the stack is stopped: no dead URLs
    steps = summary.split("Next steps:", 1)[1].strip().splitlines()
    assert [line.split(".", 1)[0].strip() for line in steps] == ["1", "2", "3"]
    assert " up " in steps[0] and " submit " in steps[1] and "README.md" in steps[2]
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""


def test_up_serves_until_interrupted_then_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    # A token file left readable by an earlier run (or made by hand) is made private.
    home.mkdir()
    (home / "api-token").write_text("old\n")
    (home / "api-token").chmod(0o644)
    port = free_port()
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "up",
            "--home",
            str(home),
            "--api-port",
            str(port),
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    try:
        banner = []
        for line in up.stdout:
            banner.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(banner)
        # The embedded Redis has a password; the banner shows it redacted.
        assert "REDIS_URL=redis://:***@127.0.0.1:" in text, text
        assert "AZURE_ARM_ENDPOINT=https://127.0.0.1:" in text, text
        token = (home / "api-token").read_text().strip()
        assert token not in text  # the token is in a private file, not on the terminal
        assert oct((home / "api-token").stat().st_mode & 0o777) == "0o600"
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        runs = httpx.get(
            f"http://127.0.0.1:{port}/v1/runs",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert runs.status_code == 200
        children = children_of(up.pid)
        # redis-server, emulator, worker, beat, api
        assert len(children) >= 5, children
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        up.kill()
    assert not [pid for pid in children if alive(pid)]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


JOB = """\
import os
print("accuracy=0.9", flush=True)
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_MODEL"], "model.txt"), "w") as out:
    out.write("weights")
"""


def test_commands_below_the_folder_of_up_find_its_stack(tmp_path: Path) -> None:
    project = tmp_path / "project"
    sub = project / "experiments" / "one"
    (sub / "code").mkdir(parents=True)
    (sub / "code" / "train.py").write_text(JOB)
    (sub / "run.yaml").write_text(
        "name: ctx\njob:\n  script: train.py\ninputs:\n  CODE: code\noutputs: [MODEL]\n"
    )
    env = {k: v for k, v in clean_env().items() if k != "ORCH_ARTIFACTS_DIR"}
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "up", "--api-port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def cli(*args: str, cwd: Path = sub) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert up.stdout is not None
    context_file = project / ".orchestrator" / "context.json"
    try:
        for line in up.stdout:
            if "Ctrl-C stops everything" in line:
                break
        assert oct(context_file.stat().st_mode & 0o777) == "0o600"

        second = cli("up", "--api-port", str(free_port()), cwd=project)
        assert second.returncode == 1
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(
            f"error: a stack is already running from {project / '.orchestrator'}"
        )
        assert f"pid {up.pid}" in line

        context = cli("context")
        assert f"(pid {up.pid}) from {project / '.orchestrator'}" in context.stdout
        assert f"API: http://127.0.0.1:{port}" in context.stdout

        # A fresh stack: its Redis holds no run yet, and `runs` says so.
        assert "holds no orchestrator data" in cli("runs").stdout
        submitted = cli("submit", "run.yaml", "--wait")
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        run_id = submitted.stdout.splitlines()[0]
        assert run_id in cli("runs").stdout
        assert cli("status", run_id).stdout.startswith(f"{run_id}  succeeded")
        assert cli("logs", run_id).stdout == "accuracy=0.9\n"
        downloaded = cli("outputs", run_id, "--download", "copy")
        assert downloaded.returncode == 0, downloaded.stderr
        assert (sub / "copy" / "outputs" / "MODEL" / "model.txt").read_text() == "weights"
        # The artifacts are where `up` ran, whatever folder a command runs from.
        assert (project / "artifacts" / run_id / "stdout.txt").is_file()

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        up.kill()
    assert not context_file.exists()
