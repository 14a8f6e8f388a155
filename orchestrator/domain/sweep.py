"""The sweep spec: a run spec tried with many hyperparameter values (no I/O but load_sweep).

Field names follow Azure ML's sweep job YAML (search_space, sampling_algorithm,
objective, limits, early_termination), so a reader of Azure's documentation
finds the same words here. Strict like the run spec: unknown fields are refused
and every problem is reported with its dotted field path, one line each.

One difference from Azure ML, on purpose: a loguniform's min_value and
max_value are the bounds of the values themselves (0.0001..0.1), not of their
logarithms; a learning rate reads as a learning rate.

How values are drawn is orchestrator/domain/sampling.py; when a trial is
stopped early, orchestrator/domain/early_termination.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.domain.spec import (
    MAX_WALL_CLOCK_SECONDS,
    NAME_PATTERN,
    ParameterName,
    ParameterValue,
    RunSpec,
    parse_iso8601_duration,
)

MAX_SEARCH_PARAMETERS = 50
MAX_CHOICES = 1000
# The failure rule (a sweep fails once failure_threshold trials have failed)
# waits for this many ended trials unless max_failed_trials is explicit, so a
# sweep of 20 is not failed by its first unlucky trial.
MIN_ENDED_FOR_FAILURE_RULE = 4
TRIAL_TAG = "sweep_trial"
METRIC_PATTERN = r"^[A-Za-z_][\w.-]*$"

# Finite: the values go into JSON records and onto command lines.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class SweepError(ValueError):
    """A sweep that cannot be accepted; the message names the offending field."""


class SamplingAlgorithm(StrEnum):
    GRID = "grid"  # every combination of choice values, in order
    RANDOM = "random"  # independent draws, reproducible from (seed, trial index)
    BAYESIAN = "bayesian"  # Optuna's TPE, fed with the trials that ended


class Goal(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------ search space
class _Range(_Strict):
    min_value: Number
    max_value: Number

    @field_validator("max_value")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_value")
        if low is not None and not value > low:
            raise ValueError(f"min_value ({low}) must be below max_value ({value})")
        return value

    @property
    def is_discrete(self) -> bool:
        return False


def _same(a: ParameterValue, b: ParameterValue) -> bool:
    # 1, 1.0 and True are equal in Python but are different arguments to a script.
    return type(a) is type(b) and a == b


class Choice(_Strict):
    type: Literal["choice"]
    values: Annotated[list[ParameterValue], Field(min_length=1, max_length=MAX_CHOICES)]

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list[ParameterValue]) -> list[ParameterValue]:
        for position, value in enumerate(values):
            if any(_same(value, earlier) for earlier in values[:position]):
                raise ValueError(f"{value!r} is listed twice")
        return values

    def index_of(self, value: Any) -> int | None:
        """The position of `value` among values (type-exact), or None."""
        return next((i for i, known in enumerate(self.values) if _same(known, value)), None)

    @property
    def is_discrete(self) -> bool:
        return True


class Uniform(_Range):
    type: Literal["uniform"]


class LogUniform(_Range):
    # Bounds of the values (not of their logarithms, unlike Azure ML).
    type: Literal["loguniform"]
    min_value: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]


class RandInt(_Strict):
    type: Literal["randint"]
    # Values 0, 1, ..., upper - 1.
    upper: Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]

    @property
    def is_discrete(self) -> bool:
        return True


class QUniform(_Range):
    # Multiples of q between min_value and max_value (Azure: round(uniform / q) * q,
    # kept inside the range here so that every sampler agrees on the values).
    type: Literal["quniform"]
    q: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]

    @field_validator("q")
    @classmethod
    def _a_multiple_fits(cls, value: float, info: ValidationInfo) -> float:
        low, high = info.data.get("min_value"), info.data.get("max_value")
        if low is not None and high is not None:
            first, last = _multiples(low, high, value)
            if first > last:
                raise ValueError(f"no multiple of {value} lies between min_value and max_value")
        return value

    @property
    def multiples(self) -> tuple[int, int]:
        """(first, last): the values are k * q for k in first..last."""
        return _multiples(self.min_value, self.max_value, self.q)

    def multiple(self, count: int) -> float:
        """count * q without binary noise (3 * 0.1 is 0.3, not 0.30000000000000004)."""
        return float(Decimal(str(self.q)) * count)


def _multiples(low: float, high: float, q: float) -> tuple[int, int]:
    # Decimal, so that 0.3 / 0.1 is 3 and not 2.9999999999999996.
    step = Decimal(str(q))
    return math.ceil(Decimal(str(low)) / step), math.floor(Decimal(str(high)) / step)


class Normal(_Strict):
    type: Literal["normal"]
    mu: Number
    sigma: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]

    @property
    def is_discrete(self) -> bool:
        return False


SearchParameter = Annotated[
    Choice | Uniform | LogUniform | RandInt | QUniform | Normal, Field(discriminator="type")
]
PARAMETER_TYPES = ("choice", "uniform", "loguniform", "randint", "quniform", "normal")


def _representative(parameter: SearchParameter) -> ParameterValue:
    """One value the parameter can take (to check the trial it produces)."""
    match parameter:
        case Choice():
            return parameter.values[0]
        case RandInt():
            return 0
        case QUniform():
            return parameter.multiple(parameter.multiples[0])
        case Normal():
            return parameter.mu
        case _:
            return parameter.min_value


# ------------------------------------------------------- objective, limits
class Objective(_Strict):
    # A metric the run's metrics parser reads from the job's output.
    primary_metric: Annotated[StrictStr, Field(pattern=METRIC_PATTERN, max_length=64)]
    goal: Goal


class Limits(_Strict):
    max_total_trials: Annotated[StrictInt, Field(ge=1, le=1000)]
    max_concurrent_trials: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    # ISO 8601 durations. timeout: the whole sweep (what runs then is cancelled);
    # trial_timeout: each trial's job.max_wall_clock.
    timeout: Annotated[StrictStr, Field(max_length=64)] | None = None
    trial_timeout: Annotated[StrictStr, Field(max_length=64)] | None = None
    # The sweep fails once this many trials have failed (see failure_threshold).
    max_failed_trials: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None

    @field_validator("timeout")
    @classmethod
    def _is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_iso8601_duration(value)
        return value

    @field_validator("trial_timeout")
    @classmethod
    def _is_wall_clock(cls, value: str | None) -> str | None:
        # It becomes the trial's job.max_wall_clock, which the run spec caps.
        if value is not None and parse_iso8601_duration(value) > MAX_WALL_CLOCK_SECONDS:
            raise ValueError("must be at most 30 days (P30D)")
        return value

    @field_validator("max_concurrent_trials")
    @classmethod
    def _not_above_total(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("max_total_trials")
        if total is not None and value > total:
            raise ValueError(f"must be at most max_total_trials ({total}), not {value}")
        return value

    @property
    def timeout_seconds(self) -> float | None:
        return parse_iso8601_duration(self.timeout) if self.timeout else None

    @property
    def trial_timeout_seconds(self) -> float | None:
        return parse_iso8601_duration(self.trial_timeout) if self.trial_timeout else None

    @property
    def failure_threshold(self) -> int:
        """Failed trials that fail the sweep: max_failed_trials, else half the trials."""
        if self.max_failed_trials is not None:
            return self.max_failed_trials
        return max(1, math.ceil(self.max_total_trials / 2))

    def too_many_failures(self, failed: int, ended: int) -> bool:
        """True when `failed` trials (of `ended` ended ones) fail the sweep.

        An explicit max_failed_trials applies at once; the default threshold
        only once MIN_ENDED_FOR_FAILURE_RULE trials have ended.
        """
        if self.max_failed_trials is None and ended < MIN_ENDED_FOR_FAILURE_RULE:
            return False
        return failed >= self.failure_threshold


# ------------------------------------------------------ early termination
class _Policy(_Strict):
    # One printed value of the primary metric is one interval.
    evaluation_interval: Annotated[StrictInt, Field(ge=1)] = 1
    delay_evaluation: Annotated[StrictInt, Field(ge=0)] = 0


class MedianStopping(_Policy):
    type: Literal["median_stopping"]


class Bandit(_Policy):
    type: Literal["bandit"]
    slack_factor: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)] | None = None
    slack_amount: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)] | None = None

    @model_validator(mode="after")
    def _one_slack(self) -> Self:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("needs exactly one of slack_factor or slack_amount")
        return self


class TruncationSelection(_Policy):
    type: Literal["truncation_selection"]
    truncation_percentage: Annotated[StrictInt, Field(ge=1, le=99)]


EarlyTermination = Annotated[
    MedianStopping | Bandit | TruncationSelection, Field(discriminator="type")
]
POLICY_TYPES = ("median_stopping", "bandit", "truncation_selection")


# ------------------------------------------------------------------ sweep
class SweepSpec(_Strict):
    # Prefix of every trial's experiment and job names.
    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, min_length=1, max_length=32)]
    # The run each trial is; its parameters are overridden by the sampled values.
    trial: RunSpec
    # Parameter name -> distribution; the name becomes the script's --name option.
    search_space: Annotated[
        dict[ParameterName, SearchParameter],
        Field(min_length=1, max_length=MAX_SEARCH_PARAMETERS),
    ]
    sampling_algorithm: SamplingAlgorithm = SamplingAlgorithm.RANDOM
    # For random and bayesian: the same seed draws the same values.
    seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    objective: Objective
    limits: Limits
    early_termination: EarlyTermination | None = None

    @model_validator(mode="after")
    def _grid_over_choices(self) -> Self:
        if self.sampling_algorithm is SamplingAlgorithm.GRID:
            for key, parameter in self.search_space.items():
                if not isinstance(parameter, Choice):
                    raise ValueError(
                        f"search_space.{key}: grid sampling needs every parameter to be"
                        f" a choice, not {parameter.type}"
                    )
        return self

    @model_validator(mode="after")
    def _trial_renders(self) -> Self:
        # Fails at submission, not at the first trial, if the merged spec is invalid
        # (too many parameters or tags, say).
        point = {key: _representative(value) for key, value in self.search_space.items()}
        self.trial_spec(0, point)
        return self

    @property
    def total_trials(self) -> int:
        """Trials the sweep runs at most: grid stops when its points run out."""
        if self.sampling_algorithm is SamplingAlgorithm.GRID:
            points = math.prod(
                len(parameter.values) if isinstance(parameter, Choice) else 1
                for parameter in self.search_space.values()
            )
            return min(self.limits.max_total_trials, points)
        return self.limits.max_total_trials

    def trial_spec(self, index: int, parameters: dict[str, ParameterValue]) -> RunSpec:
        """Trial `index`'s run: parameters merged over the trial's, tag sweep_trial=index,
        and job.max_wall_clock = limits.trial_timeout when given."""
        data = self.trial.model_dump(mode="json")
        data["parameters"] = {**data["parameters"], **parameters}
        data["tags"] = {**data["tags"], TRIAL_TAG: str(index)}
        if self.limits.trial_timeout is not None:
            data["job"]["max_wall_clock"] = self.limits.trial_timeout
        try:
            return RunSpec.model_validate(data)
        except ValidationError as exc:
            raise SweepError(
                f"the trial these parameters produce is invalid: {_problems(exc, 'trial')}"
            ) from None

    def fingerprint(self) -> str:
        """Stable hash of the sweep's content, for idempotency checks."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# ----------------------------------------------------------------- errors
def _location(loc: tuple[int | str, ...], kind: str) -> list[str]:
    parts = [str(part) for part in loc]
    # pydantic names a tagged union's member by its tag (search_space.lr.loguniform.q)
    # and a dict key's own check by "[key]"; the user wrote neither.
    if len(parts) >= 3 and parts[0] == "search_space" and parts[2] in PARAMETER_TYPES:
        del parts[2]
    if len(parts) >= 2 and parts[0] == "early_termination" and parts[1] in POLICY_TYPES:
        del parts[1]
    parts = [part for part in parts if part != "[key]"]
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        parts.append("type")
    return parts


def _message(item: Any) -> str:
    context = item.get("ctx") or {}
    if item["type"] == "union_tag_invalid":
        return f"{context.get('tag')!r} is not one of {context.get('expected_tags')}"
    if item["type"] == "union_tag_not_found":
        return "is required"
    return str(item["msg"]).removeprefix("Value error, ")


def _problems(error: ValidationError, prefix: str = "") -> str:
    """One problem per dotted field path, joined by '; ' (spec.format_validation_error's
    style). A model-level rule's message names its own field."""
    problems = []
    for item in error.errors():
        parts = _location(item["loc"], item["type"])
        location = ".".join([prefix, *parts] if prefix else parts)
        message = _message(item)
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)


# ---------------------------------------------------------------- parsing
def parse_sweep(data: Any, base_dir: Path | None = None) -> SweepSpec:
    """Validate a decoded sweep; raises SweepError naming the field.

    `trial` is an inline run spec (its relative input paths resolve against
    base_dir) or the path of a run spec file relative to base_dir (its relative
    input paths resolve against that file's folder).
    """
    if not isinstance(data, dict):
        raise SweepError("sweep: must be a mapping of fields (name, trial, search_space, ...)")
    trial = data.get("trial")
    if isinstance(trial, str):
        if base_dir is None:
            raise SweepError(
                "trial: a trial path needs the sweep file's folder; give the run spec inline"
            )
        trial_path = (base_dir / trial).resolve()
        data = {**data, "trial": _validate_trial(_read(trial_path, "trial"), trial_path.parent)}
    elif isinstance(trial, dict):
        data = {**data, "trial": _validate_trial(trial, base_dir)}
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepError(_problems(exc)) from None


def _validate_trial(data: Any, base_dir: Path | None) -> RunSpec:
    if not isinstance(data, dict):
        raise SweepError("trial: must be a run spec (name, job, inputs, ...) or its path")
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepError(_problems(exc, "trial")) from None
    return spec.with_base_dir(base_dir) if base_dir is not None else spec


def _read(path: Path, what: str) -> Any:
    """A YAML or JSON file's content; any problem as one line naming `what`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepError(f"{what}: {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
            problem = f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            problem = " ".join(str(exc).split())
        raise SweepError(f"{what}: {path} is not valid {kind}: {problem}") from None


def load_sweep(path: Path) -> SweepSpec:
    """Read a YAML or JSON sweep file; `trial` may be a path relative to it."""
    return parse_sweep(_read(path, "sweep"), path.resolve().parent)
