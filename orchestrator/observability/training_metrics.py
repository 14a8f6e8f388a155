"""Metrics from a job's stdout: CNTK progress lines and plain ``name=value`` lines.

Recognised, line by line (anything else is ignored, so arbitrary output is safe):

- ``Finished Epoch[3 of 5]: [Training] loss = 0.0612 * 1437, metric = 1.74% * 1437 ...``
  (also the ``ce = ...; errs = ...%`` form): epoch, train_loss, train_metric
  (percentages become fractions);
- ``Final Results: Minibatch[1-N]: errs = 3.12% * 360``: test_error (a fraction);
- ``name=value`` with a numeric value and a name matching METRIC_NAME_PATTERN.

Every value is appended to the metric's series; `values` holds the last one.
Non-finite numbers are dropped (the run record is JSON).

Bounded, whatever the job prints (the series go into the run record, which
every list call serves): names of at most MAX_METRIC_NAME_LENGTH characters,
at most MAX_METRIC_SERIES names (the first ones seen), and per series the
last MAX_POINTS_PER_SERIES points; past MAX_TOTAL_POINTS in all, every series
keeps its last points within an equal share of that budget (a short series
leaves what it does not use to the others). Anything cut sets `truncated`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field

MAX_METRIC_NAME_LENGTH = 128
MAX_METRIC_SERIES = 100
MAX_POINTS_PER_SERIES = 10_000
# About 1 MB of JSON at most (a point is some 20 characters).
MAX_TOTAL_POINTS = 50_000

METRIC_NAME_PATTERN = r"^[A-Za-z_][\w.\-/]*$"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EPOCH = re.compile(r"Finished Epoch\[\s*(\d+)(?:\s+of\s+\d+)?\s*\]:\s*\[Training\]\s*(.*)")
_TRAIN_LOSS = re.compile(rf"\b(?:loss|ce)\s*=\s*({_NUMBER})")
_TRAIN_METRIC = re.compile(rf"\b(?:metric|errs)\s*=\s*({_NUMBER})\s*(%?)")
_FINAL = re.compile(rf"Final Results:.*?\berrs\s*=\s*({_NUMBER})\s*(%?)")
_PLAIN = re.compile(rf"^\s*([A-Za-z_][\w.\-/]*)\s*=\s*({_NUMBER})\s*$")
_LINE = re.compile(r"[^\r\n]+")


@dataclass
class ParsedMetrics:
    values: dict[str, float] = field(default_factory=dict)
    _points: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _cut: bool = field(default=False, repr=False)

    def record(self, name: str, value: float) -> None:
        if not math.isfinite(value):
            return
        points = self._points.get(name)
        if points is None:
            if len(name) > MAX_METRIC_NAME_LENGTH or len(self._points) >= MAX_METRIC_SERIES:
                self._cut = True
                return
            points = self._points[name] = deque(maxlen=MAX_POINTS_PER_SERIES)
        if len(points) == MAX_POINTS_PER_SERIES:
            self._cut = True  # the oldest point makes room
        points.append(value)
        self.values[name] = value

    @property
    def series(self) -> dict[str, list[float]]:
        """Each metric's points, oldest first: its last ones when cut to the budget."""
        keep = _shares({name: len(points) for name, points in self._points.items()})
        return {
            name: list(points)[len(points) - keep[name] :] for name, points in self._points.items()
        }

    @property
    def truncated(self) -> bool:
        """True when a name, a series or points were left out to stay in bounds."""
        return self._cut or sum(map(len, self._points.values())) > MAX_TOTAL_POINTS


def _shares(lengths: dict[str, int], budget: int = MAX_TOTAL_POINTS) -> dict[str, int]:
    """Points kept per series: all of them within `budget`, else equal shares
    of it, a series shorter than its share giving the rest to the longer ones."""
    keep: dict[str, int] = {}
    left = len(lengths)
    for name, length in sorted(lengths.items(), key=lambda item: item[1]):
        keep[name] = min(length, budget // left)
        budget -= keep[name]
        left -= 1
    return keep


def _fraction(number: str, percent: str) -> float:
    value = float(number)
    return value / 100 if percent else value


def parse_metrics(stdout: str) -> ParsedMetrics:
    """Metrics found in `stdout`; never raises on unexpected content."""
    parsed = ParsedMetrics()
    for found in _LINE.finditer(stdout):
        line = found.group()
        if epoch := _EPOCH.search(line):
            parsed.record("epoch", float(epoch.group(1)))
            rest = epoch.group(2)
            if loss := _TRAIN_LOSS.search(rest):
                parsed.record("train_loss", float(loss.group(1)))
            if metric := _TRAIN_METRIC.search(rest):
                parsed.record("train_metric", _fraction(metric.group(1), metric.group(2)))
        elif final := _FINAL.search(line):
            parsed.record("test_error", _fraction(final.group(1), final.group(2)))
        elif plain := _PLAIN.match(line):
            parsed.record(plain.group(1), float(plain.group(2)))
    return parsed
