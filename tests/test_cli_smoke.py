import subprocess
import sys


def test_unknown_command_is_one_line_and_nonzero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "no-such-command"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert "no-such-command" in lines[0]
