"""The values a sweep's trial runs with: a pure function of (spec, index, finished).

- grid: the index-th point of the cartesian product of the choices, keys in
  the search space's order, the last key varying fastest.
- random: drawn from a generator seeded with (spec.seed, index) alone, so the
  trials that ended do not matter and a worker that crashed and suggests index
  i again gets the same values.
- bayesian: Optuna's TPE by ask-and-tell on an in-memory study rebuilt, on
  every call, from the trials that ended (`finished`, in trial index order),
  with a sampler seeded from (spec.seed, index). The same inputs give the same
  values: a retried step suggests what the first attempt suggested.

Why not Optuna's own storage (its Redis journal, say): our sweep store is the
one source of truth. A second copy of the trials would have to be reconciled
with ours after every crash (a trial told to Optuna but not recorded, or the
reverse), Optuna's Redis journal does not speak Sentinel, and rebuilding a
study of at most a thousand trials is cheap next to a training job.

Distributions in Optuna's terms: choice -> CategoricalDistribution over the
positions of the values (1, 1.0 and True stay distinct); uniform ->
FloatDistribution; loguniform -> FloatDistribution(log=True); randint ->
IntDistribution(0, upper - 1); quniform -> FloatDistribution(step=q) between
the first and last multiples of q inside the range (so the range is divisible
by q); normal -> FloatDistribution over mu +- 4 sigma, since TPE has no normal
prior (random sampling does draw from the normal itself).
"""

from __future__ import annotations

import hashlib
import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from orchestrator.domain.spec import ParameterValue
from orchestrator.domain.sweep import (
    Choice,
    Goal,
    LogUniform,
    Normal,
    QUniform,
    RandInt,
    SamplingAlgorithm,
    SearchParameter,
    SweepSpec,
    Uniform,
)

# Bayesian sampling treats normal(mu, sigma) as uniform over mu +- this many sigmas.
NORMAL_SPAN_SIGMAS = 4.0

# Optuna logs every trial at INFO and warns about experimental features; a
# worker's log is not the place for either.
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class FinishedTrial:
    parameters: dict[str, ParameterValue]
    value: float | None  # the primary metric's last value; None: failed, or no metric


def suggest(
    spec: SweepSpec, index: int, finished: Sequence[FinishedTrial]
) -> dict[str, ParameterValue]:
    """The parameters of trial `index` (0-based). IndexError past the grid's end."""
    if index < 0:
        raise IndexError(f"trial index {index} is negative")
    match spec.sampling_algorithm:
        case SamplingAlgorithm.GRID:
            return _grid_point(spec, index)
        case SamplingAlgorithm.RANDOM:
            rng = random.Random(f"{spec.seed}:{index}")
            return {key: _draw(rng, value) for key, value in spec.search_space.items()}
        case SamplingAlgorithm.BAYESIAN:
            return _bayesian(spec, index, finished)


# ------------------------------------------------------------------- grid
def grid_size(spec: SweepSpec) -> int:
    """Points of the grid: the product of the choices' sizes."""
    return math.prod(len(_choice(value).values) for value in spec.search_space.values())


def _choice(parameter: SearchParameter) -> Choice:
    if not isinstance(parameter, Choice):
        raise ValueError(f"grid sampling needs choice parameters, not {parameter.type}")
    return parameter


def _grid_point(spec: SweepSpec, index: int) -> dict[str, ParameterValue]:
    if index >= grid_size(spec):
        raise IndexError(f"trial index {index} is past the grid's {grid_size(spec)} points")
    point: dict[str, ParameterValue] = {}
    rest = index
    # Mixed radix, the last key the fastest digit (itertools.product's order).
    for key in reversed(spec.search_space):
        values = _choice(spec.search_space[key]).values
        rest, digit = divmod(rest, len(values))
        point[key] = values[digit]
    return {key: point[key] for key in spec.search_space}


# ----------------------------------------------------------------- random
def _between(rng: random.Random, low: float, high: float) -> float:
    # Written so that no intermediate overflows (high - low can exceed the largest float).
    fraction = rng.random()
    return min(high, max(low, low * (1 - fraction) + high * fraction))


def _draw(rng: random.Random, parameter: SearchParameter) -> ParameterValue:
    match parameter:
        case Choice():
            return parameter.values[rng.randrange(len(parameter.values))]
        case LogUniform():
            exponent = _between(rng, math.log(parameter.min_value), math.log(parameter.max_value))
            return min(parameter.max_value, max(parameter.min_value, math.exp(exponent)))
        case QUniform():
            first, last = parameter.multiples
            count = round(_between(rng, parameter.min_value, parameter.max_value) / parameter.q)
            return parameter.multiple(min(last, max(first, count)))
        case Uniform():
            return _between(rng, parameter.min_value, parameter.max_value)
        case RandInt():
            return rng.randrange(parameter.upper)
        case Normal():
            value = rng.gauss(parameter.mu, parameter.sigma)
            return value if math.isfinite(value) else parameter.mu


# --------------------------------------------------------------- bayesian
def _distribution(parameter: SearchParameter) -> BaseDistribution:
    match parameter:
        case Choice():
            return CategoricalDistribution(tuple(range(len(parameter.values))))
        case LogUniform():
            return FloatDistribution(parameter.min_value, parameter.max_value, log=True)
        case QUniform():
            first, last = parameter.multiples
            return FloatDistribution(
                parameter.multiple(first), parameter.multiple(last), step=parameter.q
            )
        case Uniform():
            return FloatDistribution(parameter.min_value, parameter.max_value)
        case RandInt():
            return IntDistribution(0, parameter.upper - 1)
        case Normal():
            span = NORMAL_SPAN_SIGMAS * parameter.sigma
            return FloatDistribution(parameter.mu - span, parameter.mu + span)


def _to_optuna(parameter: SearchParameter, value: Any) -> Any:
    """A trial's value as Optuna holds it (a choice by its position), or None."""
    if isinstance(parameter, Choice):
        return parameter.index_of(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if isinstance(parameter, RandInt) and value == int(value) else value


def _from_optuna(parameter: SearchParameter, value: Any) -> ParameterValue:
    match parameter:
        case Choice():
            return parameter.values[int(value)]
        case RandInt():
            return int(value)
        case QUniform():
            return parameter.multiple(round(float(value) / parameter.q))
        case _:
            return float(value)


def _frozen_trial(
    spec: SweepSpec, distributions: dict[str, BaseDistribution], trial: FinishedTrial
) -> optuna.trial.FrozenTrial | None:
    """The Optuna record of a finished trial; None if its values are not in the
    search space (so it cannot inform the sampler)."""
    params = {
        key: _to_optuna(spec.search_space[key], trial.parameters.get(key)) for key in distributions
    }
    if any(value is None for value in params.values()):
        return None
    succeeded = trial.value is not None and math.isfinite(trial.value)
    try:
        return optuna.trial.create_trial(
            state=TrialState.COMPLETE if succeeded else TrialState.FAIL,
            value=trial.value if succeeded else None,
            params=params,
            distributions=distributions,
        )
    except ValueError:  # a value outside its distribution
        return None


def _seed(spec: SweepSpec, index: int) -> int:
    digest = hashlib.sha256(f"{spec.seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _bayesian(
    spec: SweepSpec, index: int, finished: Sequence[FinishedTrial]
) -> dict[str, ParameterValue]:
    distributions = {key: _distribution(value) for key, value in spec.search_space.items()}
    direction = "minimize" if spec.objective.goal is Goal.MINIMIZE else "maximize"
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=_seed(spec, index))
    )
    records = [_frozen_trial(spec, distributions, trial) for trial in finished]
    study.add_trials([record for record in records if record is not None])
    asked = study.ask(distributions)
    return {
        key: _from_optuna(spec.search_space[key], asked.params[key]) for key in spec.search_space
    }
