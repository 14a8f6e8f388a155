"""`python -m orchestrator.cli`: the console script without an install."""

from orchestrator.cli import main

main()
