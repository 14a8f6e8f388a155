"""Which running trials of a sweep to stop early, by Azure ML's policies (no I/O).

Semantics follow Azure ML's "Early termination policies"
(https://learn.microsoft.com/en-us/azure/machine-learning/how-to-tune-hyperparameters#early-termination-policies),
as implemented here:

- An interval is one printed value of the primary metric: a trial's values
  (v1, ..., vn) are its metric at intervals 1..n.
- An active trial is evaluated at its latest interval n only when
  n >= delay_evaluation and n is a multiple of evaluation_interval ("the
  policy applies every multiple of evaluation_interval that is greater than
  or equal to delay_evaluation"). Intervals a trial passed between two calls
  are not evaluated afterwards.
- It is compared with every trial, active or ended, that reached interval n,
  using their values up to n only (a young trial is not judged against older
  trials' later, better values).
- median_stopping: stopped if its best value up to n is worse than the median,
  over all trials that reached n (itself included), of their running averages
  of intervals 1..n. Needs at least one other trial at n.
- bandit: with best the best value at interval n among those trials, stopped
  if its value at n is outside the slack: minimize, above best * (1 + slack_factor)
  or best + slack_amount; maximize, below best / (1 + slack_factor) or
  best - slack_amount (Azure's example: best AUC 0.8, factor 0.2, stop below
  0.8 / 1.2). A factor reads as intended for a metric of one sign only, as
  in Azure; use slack_amount for a metric that can be negative.
- truncation_selection: the trials that reached n are ranked by their value
  at n, worst first (ties by trial id); the first truncation_percentage
  percent of them, rounded down but at least one, are stopped if active,
  unless level with the best value at n (when all are level, none is worse).
  Azure does not say how the count is rounded; rounding down never stops every
  trial, since the percentage is at most 99. Needs at least two trials at n.

"Worse" is strict: a trial level with the median or the best is not stopped.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.domain.sweep import (
    Bandit,
    EarlyTermination,
    Goal,
    MedianStopping,
    TruncationSelection,
)


@dataclass(frozen=True)
class TrialProgress:
    trial: str
    values: tuple[float, ...]  # the primary metric at intervals 1..n, in print order
    active: bool  # still running (only active trials can be stopped)


def is_better(goal: Goal, a: float, b: float) -> bool:
    """True when `a` is strictly better than `b` for `goal`."""
    return a < b if goal is Goal.MINIMIZE else a > b


def best_index(goal: Goal, values: Sequence[float | None]) -> int | None:
    """The position of the best value (the first on a tie); None values are skipped."""
    best: tuple[int, float] | None = None
    for position, value in enumerate(values):
        if value is None or not math.isfinite(value):
            continue
        if best is None or is_better(goal, value, best[1]):
            best = (position, value)
    return best[0] if best is not None else None


def _best(goal: Goal, values: Sequence[float]) -> float:
    return min(values) if goal is Goal.MINIMIZE else max(values)


def trials_to_stop(
    policy: EarlyTermination, goal: Goal, trials: Sequence[TrialProgress]
) -> list[str]:
    """The ids of the active trials the policy stops now, sorted."""
    stopped = []
    for trial in trials:
        interval = len(trial.values)
        if not trial.active or not _due(policy, interval):
            continue
        peers = [other for other in trials if len(other.values) >= interval]
        if _stops(policy, goal, trial, peers, interval):
            stopped.append(trial.trial)
    return sorted(stopped)


def _due(policy: EarlyTermination, interval: int) -> bool:
    return (
        interval >= 1
        and interval >= policy.delay_evaluation
        and interval % policy.evaluation_interval == 0
    )


def _stops(
    policy: EarlyTermination,
    goal: Goal,
    trial: TrialProgress,
    peers: Sequence[TrialProgress],
    interval: int,
) -> bool:
    """Whether `trial` is stopped at `interval`; peers reached it (trial included)."""
    match policy:
        case MedianStopping():
            if len(peers) < 2:
                return False
            median = statistics.median(statistics.fmean(peer.values[:interval]) for peer in peers)
            return is_better(goal, median, _best(goal, trial.values[:interval]))
        case Bandit():
            return _outside_slack(policy, goal, trial, peers, interval)
        case TruncationSelection():
            if len(peers) < 2:
                return False
            # Worst first; the trial id makes ties deterministic.
            sign = -1.0 if goal is Goal.MINIMIZE else 1.0
            ranked = sorted(peers, key=lambda peer: (sign * peer.values[interval - 1], peer.trial))
            cut = max(1, len(peers) * policy.truncation_percentage // 100)
            best = _best(goal, [peer.values[interval - 1] for peer in peers])
            return trial in ranked[:cut] and is_better(goal, best, trial.values[interval - 1])


def _outside_slack(
    policy: Bandit, goal: Goal, trial: TrialProgress, peers: Sequence[TrialProgress], interval: int
) -> bool:
    best = _best(goal, [peer.values[interval - 1] for peer in peers])
    value = trial.values[interval - 1]
    if goal is Goal.MINIMIZE:
        if policy.slack_factor is not None:
            return value > best * (1 + policy.slack_factor)
        return value > best + (policy.slack_amount or 0.0)
    if policy.slack_factor is not None:
        return value < best / (1 + policy.slack_factor)
    return value < best - (policy.slack_amount or 0.0)
