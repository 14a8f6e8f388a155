"""Metrics from a job's stdout: CNTK progress lines and plain ``name=value`` lines.

Recognised, line by line (anything else is ignored, so arbitrary output is safe):

- ``Finished Epoch[3 of 5]: [Training] loss = 0.0612 * 1437, metric = 1.74% * 1437 ...``
  (also the ``ce = ...; errs = ...%`` form): epoch, train_loss, train_metric
  (percentages become fractions);
- ``Final Results: Minibatch[1-N]: errs = 3.12% * 360``: test_error (a fraction);
- ``name=value`` with a numeric value and a name matching METRIC_NAME_PATTERN.

Every value is appended to the metric's series; `values` holds the last one.
Non-finite numbers are dropped (the run record is JSON).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

METRIC_NAME_PATTERN = r"^[A-Za-z_][\w.\-/]*$"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EPOCH = re.compile(r"Finished Epoch\[\s*(\d+)(?:\s+of\s+\d+)?\s*\]:\s*\[Training\]\s*(.*)")
_TRAIN_LOSS = re.compile(rf"\b(?:loss|ce)\s*=\s*({_NUMBER})")
_TRAIN_METRIC = re.compile(rf"\b(?:metric|errs)\s*=\s*({_NUMBER})\s*(%?)")
_FINAL = re.compile(rf"Final Results:.*?\berrs\s*=\s*({_NUMBER})\s*(%?)")
_PLAIN = re.compile(rf"^\s*([A-Za-z_][\w.\-/]*)\s*=\s*({_NUMBER})\s*$")
_LINES = re.compile(r"[\r\n]+")


@dataclass
class ParsedMetrics:
    values: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str, value: float) -> None:
        if not math.isfinite(value):
            return
        self.values[name] = value
        self.series.setdefault(name, []).append(value)


def _fraction(number: str, percent: str) -> float:
    value = float(number)
    return value / 100 if percent else value


def parse_metrics(stdout: str) -> ParsedMetrics:
    """Metrics found in `stdout`; never raises on unexpected content."""
    parsed = ParsedMetrics()
    for line in _LINES.split(stdout):
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
