"""benchmarks/schedule_latency.py end to end with 5 ticks: sane figures, never a speed."""

from __future__ import annotations

import pytest

from tests.benchmarks.test_benchmarks_smoke import run_benchmark

pytestmark = pytest.mark.integration


def test_schedule_latency_five_ticks() -> None:
    summary = run_benchmark("schedule_latency.py", "--ticks", "5")
    assert (summary["ticks"], summary["every_seconds"], summary["workers"]) == (5, 1, 1)
    latency = summary["latency_seconds"]
    # A run is created after its tick, and p50 <= p95 <= max; mean within [min, max].
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert 0 <= latency["mean"] <= latency["max"]
    # Five ticks one second apart: the span is four seconds plus any tick missed between.
    assert summary["missed_between"] >= 0
    assert summary["span_seconds"] == 4 + summary["missed_between"]
