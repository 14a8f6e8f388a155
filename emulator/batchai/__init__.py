"""Batch AI emulation (placeholder; the Batch AI module replaces this file)."""

from __future__ import annotations

from emulator.core import EmulatorContext
from emulator.http import Router


def register(router: Router, ctx: EmulatorContext) -> None:
    pass
