"""Running the console entry point in-process, as the CLI tests do."""

from __future__ import annotations

import pytest

from orchestrator.cli import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `orchestrator <argv>`, run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err
