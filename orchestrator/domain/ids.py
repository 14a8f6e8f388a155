"""Run ids: generated (16 hex chars) or supplied by the caller.

A caller-supplied id makes enqueueing idempotent (the arq way). The pattern
keeps ids short and lowercase so every Azure name derived from one stays within
Batch AI's 64-character limit and its `^[-\\w_]+$` alphabet.
"""

from __future__ import annotations

import re
import uuid

RUN_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,29}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


def new_run_id() -> str:
    """A fresh run id: 16 lowercase hex characters from a uuid4."""
    return uuid.uuid4().hex[:16]


def validate_run_id(value: str) -> str:
    """Return `value` if it is an acceptable run id; ValueError naming run_id otherwise."""
    if not isinstance(value, str) or not _RUN_ID.fullmatch(value):
        raise ValueError(
            f"run_id {value!r} is invalid: use 1-30 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return value
