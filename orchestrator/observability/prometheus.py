"""Prometheus metrics of the API process, read from Redis at scrape time.

- ``orchestrator_runs{status}`` (gauge): runs per status, from the store's indexes.
- ``orchestrator_queue_depth{queue}`` (gauge): tasks waiting in the Celery
  queue, the LLEN of its Redis list on the broker.
- ``orchestrator_step_duration_seconds{step}`` (histogram): how long each step
  of finished runs took (finished_at - started_at of the step record, waits and
  retries included). Each run is observed once, when this process first sees
  it terminal (runs that ended before the process started are observed at its
  first scrape), so it behaves like any counter that resets with the process.
- ``orchestrator_azure_requests_total{operation,outcome}`` (counter): the
  workers count their Azure requests in their own processes and add them to a
  Redis hash (orchestrator.observability.azure_stats); this process exposes those fleet-wide
  totals.
- ``orchestrator_schedule_ticks_total{outcome}`` (counter): schedule ticks the
  workers recorded, by outcome (ran, skipped, replaced, missed); each tick is
  counted once, by the worker whose history record won (chain/schedules.py).
- ``orchestrator_schedule_tick_to_enqueue_seconds`` (histogram): how late a
  scheduled run was enqueued after its tick (manual triggers not observed),
  kept by the workers in a Redis hash (bucket, sum, count).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from orchestrator.chain.schedules import LATENCY_BUCKETS
from orchestrator.domain.schedule import TickOutcome
from orchestrator.domain.status import STEP_ORDER, RunStatus, Step, SweepStatus
from orchestrator.observability.azure_stats import request_counts
from orchestrator.store import RunNotFound, RunRecord, RunStore
from orchestrator.store.keys import Keys

STEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)


class StepDurations:
    """Cumulative step-duration histogram over the runs that have ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended: set[str] = set()
        self._counts = {step: [0] * (len(STEP_BUCKETS) + 1) for step in STEP_ORDER}
        self._sums = dict.fromkeys(STEP_ORDER, 0.0)

    def refresh(self, store: RunStore) -> None:
        """Observe every run that ended since the last refresh (once per run)."""
        with self._lock:
            for run_id in store.run_ids():
                if run_id in self._ended:
                    continue
                try:
                    record = store.get(run_id)
                except RunNotFound:
                    continue
                if record.terminal:
                    self._observe(record)
                    self._ended.add(run_id)

    def _observe(self, record: RunRecord) -> None:
        for step, step_record in record.steps.items():
            if step_record.started_at is None or step_record.finished_at is None:
                continue
            seconds = max(0.0, step_record.finished_at - step_record.started_at)
            index = next(
                (i for i, bound in enumerate(STEP_BUCKETS) if seconds <= bound),
                len(STEP_BUCKETS),
            )
            self._counts[step][index] += 1
            self._sums[step] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "orchestrator_step_duration_seconds",
            "Duration of each step of ended runs (step started_at to finished_at).",
            labels=["step"],
        )
        with self._lock:
            for step in STEP_ORDER:
                cumulative, buckets = 0, []
                for bound, count in zip(
                    [*STEP_BUCKETS, float("inf")], self._counts[step], strict=True
                ):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
                family.add_metric([Step(step).value], buckets, self._sums[step])
        return family


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in raw.items()
    }


def schedule_tick_families(
    client: redis.Redis, keys: Keys
) -> tuple[CounterMetricFamily, HistogramMetricFamily]:
    """The fleet-wide tick outcomes and tick -> enqueue latency the workers keep in Redis."""
    ticks = CounterMetricFamily(
        "orchestrator_schedule_ticks",
        "Schedule ticks recorded by the workers, by outcome.",
        labels=["outcome"],
    )
    counts = _decoded(client.hgetall(keys.schedule_tick_stats))
    for outcome in TickOutcome:
        ticks.add_metric([outcome.value], float(counts.get(outcome.value, 0)))

    stats = _decoded(client.hgetall(keys.schedule_latency_stats))
    cumulative, buckets = 0, []
    for bound in [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]:
        cumulative += int(stats.get(bound, 0))
        buckets.append((bound, float(cumulative)))
    latency = HistogramMetricFamily(
        "orchestrator_schedule_tick_to_enqueue_seconds",
        "How late each scheduled run was enqueued after its tick.",
        buckets=buckets,
        sum_value=float(stats.get("sum", 0.0)),
    )
    return ticks, latency


def sweep_families(store: RunStore) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    """Sweeps by status, and their trials by status and reason."""
    sweeps = GaugeMetricFamily("orchestrator_sweeps", "Sweeps by status.", labels=["status"])
    trials = GaugeMetricFamily(
        "orchestrator_sweep_trials",
        "Trials of every sweep by status and reason (reason '' when none).",
        labels=["status", "reason"],
    )
    by_status: dict[str, int] = {status.value: 0 for status in SweepStatus}
    by_trial: dict[tuple[str, str], int] = {}
    for record in store.sweeps.all():
        by_status[record.status.value] += 1
        for trial in record.trials:
            key = (trial.status.value, trial.reason.value if trial.reason else "")
            by_trial[key] = by_trial.get(key, 0) + 1
    for status, count in by_status.items():
        sweeps.add_metric([status], count)
    for (status, reason), count in sorted(by_trial.items()):
        trials.add_metric([status, reason], count)
    return sweeps, trials


class OrchestratorCollector:
    def __init__(self, store: RunStore, broker: redis.Redis, queue: str) -> None:
        self.store = store
        self.broker = broker
        self.queue = queue
        self.step_durations = StepDurations()

    def describe(self) -> list[Any]:
        # No describe-time samples: registering must not touch Redis.
        return []

    def collect(self) -> Iterator[Any]:
        runs = GaugeMetricFamily("orchestrator_runs", "Runs by status.", labels=["status"])
        for status, count in self.store.count_by_status().items():
            runs.add_metric([RunStatus(status).value], count)
        yield runs

        depth = GaugeMetricFamily(
            "orchestrator_queue_depth", "Tasks waiting in the Celery queue.", labels=["queue"]
        )
        depth.add_metric([self.queue], int(self.broker.llen(self.queue)))
        yield depth

        self.step_durations.refresh(self.store)
        yield self.step_durations.family()

        azure = CounterMetricFamily(
            "orchestrator_azure_requests",
            "Requests the workers sent to Azure (or the emulator), by operation and outcome.",
            labels=["operation", "outcome"],
        )
        totals = request_counts(self.store.redis, self.store.keys)
        for (operation, outcome), count in sorted(totals.items()):
            azure.add_metric([operation, outcome], float(count))
        yield azure

        yield from schedule_tick_families(self.store.redis, self.store.keys)
        yield from sweep_families(self.store)


def build_registry(collector: OrchestratorCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
