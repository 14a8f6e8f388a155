import re

import pytest

from orchestrator.domain.ids import RUN_ID_PATTERN, new_run_id, validate_run_id


def test_new_ids_are_16_hex_and_unique() -> None:
    ids = {new_run_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{16}", run_id) for run_id in ids)
    assert all(re.match(RUN_ID_PATTERN, run_id) for run_id in ids)


@pytest.mark.parametrize("good", ["a", "0", "nightly-2024-01-01", "x" * 30, "sweep-lr-0-1"])
def test_caller_ids_that_fit_are_accepted(good: str) -> None:
    assert validate_run_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "-leading", "Upper", "x" * 31, "under_score", "dot.ted", "a b", "ok\n", "é"]
)
def test_bad_ids_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match="run_id"):
        validate_run_id(bad)
