"""`python -m emulator [flags]` = `orchestrator emulator [flags]`."""

from __future__ import annotations

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    main(["emulator", *sys.argv[1:]])
