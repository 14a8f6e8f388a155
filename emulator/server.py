"""HTTPS server for the emulator (placeholder until the emulator lands)."""

from __future__ import annotations

from emulator.core import EmulatorConfig


def serve_forever(config: EmulatorConfig) -> None:
    raise SystemExit("error: the emulator server is not implemented yet")
