"""Settings that parse more than a number: ORCH_RUN_RETENTION."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.settings import DEFAULT_RUN_RETENTION_SECONDS, Settings


def retention(text: str) -> float | None:
    return Settings.model_validate({"ORCH_RUN_RETENTION": text}).run_retention_seconds


def test_run_retention_defaults_to_30_days() -> None:
    assert Settings().run_retention_seconds == DEFAULT_RUN_RETENTION_SECONDS == 30 * 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("P30D", 30 * 86400), ("PT12H", 12 * 3600), ("P1DT30M", 86400 + 1800), ("3600", 3600)],
)
def test_run_retention_is_seconds_or_an_iso_8601_duration(text: str, seconds: float) -> None:
    assert retention(text) == seconds


def test_never_keeps_runs_forever() -> None:
    assert retention("never") is None
    assert retention(" Never ") is None


@pytest.mark.parametrize("text", ["0", "-5", "PT0S", "30 days", "P", "inf", "nan", ""])
def test_a_retention_that_is_no_positive_duration_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="ORCH_RUN_RETENTION"):
        retention(text)
