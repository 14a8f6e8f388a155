"""The run spec: the public contract of what a caller asks for.

Strict (unknown fields are refused), documented field by field, loadable from
YAML or JSON. Relative input paths resolve against the spec file's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.domain.inputs import InputKind, InputRef, parse_input

# Azure Batch AI names: ^[-\w_]+$, at most 64 characters. Names the orchestrator
# derives from these get a run-id suffix, so user-given parts are kept shorter.
NAME_PATTERN = r"^[A-Za-z0-9][-\w]*$"
IDENTIFIER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"  # input/output ids become env var suffixes

# Bounds on what a caller may store in a run record (it is kept in Redis, listed and
# rendered): Azure's own tag limits, and room for any real hyperparameter.
MAX_TAGS = 50
MAX_TAG_LENGTH = 256  # key and value alike
MAX_PARAMETERS = 100
MAX_PARAMETER_NAME_LENGTH = 128
MAX_PARAMETER_VALUE_LENGTH = 1024  # characters of a string value
MAX_WALL_CLOCK_SECONDS = 30 * 86400

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class SpecError(ValueError):
    """A spec that cannot be accepted; the message names the offending field."""


def parse_iso8601_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration such as PT2H or P1DT30M (no years/months)."""
    found = _DURATION.fullmatch(text)
    if not found or text in {"P", "PT"} or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT2H or P1DT30M")
    parts = {key: float(value) for key, value in found.groupdict().items() if value}
    seconds = (
        parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )
    if seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


class Toolkit(StrEnum):
    CNTK = "cntk"  # cntkSettings: python script + command line args (the quickstart's)
    PYTORCH = "pytorch"  # pyTorchSettings
    TENSORFLOW = "tensorflow"  # tensorFlowSettings
    CUSTOM = "custom"  # customToolkitSettings: a shell command line


class VmPriority(StrEnum):
    DEDICATED = "dedicated"  # regular nodes
    LOWPRIORITY = "lowpriority"  # cheaper, preemptible nodes


class ClusterPolicy(StrEnum):
    PER_RUN = "per-run"  # created for the run, deleted at cleanup
    SHARED = "shared"  # a named cluster kept warm and never deleted by a run


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class ClusterSpec(_Strict):
    vm_size: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "STANDARD_NC6"
    node_count: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    vm_priority: VmPriority = VmPriority.DEDICATED
    policy: ClusterPolicy = ClusterPolicy.PER_RUN
    # Name of the shared cluster; required with policy=shared, refused otherwise.
    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, max_length=64)] | None = None

    @model_validator(mode="after")
    def _name_matches_policy(self) -> Self:
        if self.policy is ClusterPolicy.SHARED and not self.name:
            raise ValueError("cluster.name is required when cluster.policy is shared")
        if self.policy is ClusterPolicy.PER_RUN and self.name:
            raise ValueError("cluster.name is only allowed when cluster.policy is shared")
        return self


class JobSpec(_Strict):
    toolkit: Toolkit = Toolkit.CNTK
    # Recorded on the job; Batch AI pulls it on real nodes.
    image: StrictStr | None = "microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0"
    # Path of the script inside the first input directory (not for custom).
    script: StrictStr | None = None
    args: list[StrictStr] = Field(default_factory=list)
    # Shell command line (custom toolkit only).
    command: StrictStr | None = None
    # ISO 8601 duration, at most 30 days; the job is killed past it.
    max_wall_clock: Annotated[StrictStr, Field(max_length=64)] = "PT2H"

    @field_validator("script")
    @classmethod
    def _script_is_relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in Path(value).parts or not value):
            raise ValueError("must be a relative path inside the first input directory")
        return value

    @field_validator("max_wall_clock")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        if parse_iso8601_duration(value) > MAX_WALL_CLOCK_SECONDS:
            raise ValueError("must be at most 30 days (P30D)")
        return value

    @model_validator(mode="after")
    def _script_or_command(self) -> Self:
        if self.toolkit is Toolkit.CUSTOM:
            if not self.command:
                raise ValueError("job.command is required when job.toolkit is custom")
            if self.script:
                raise ValueError("job.script is not used when job.toolkit is custom; use command")
        else:
            if not self.script:
                raise ValueError(f"job.script is required when job.toolkit is {self.toolkit}")
            if self.command:
                raise ValueError("job.command is only allowed when job.toolkit is custom")
        return self

    @property
    def max_wall_clock_seconds(self) -> float:
        return parse_iso8601_duration(self.max_wall_clock)


# Finite floats only: JSON has no NaN or infinity, so the stored record could
# not be read back (pydantic writes them as null).
ParameterValue = (
    Annotated[StrictStr, Field(max_length=MAX_PARAMETER_VALUE_LENGTH)]
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | StrictBool
)
ParameterName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][-\w.]*$", max_length=MAX_PARAMETER_NAME_LENGTH)
]
Parameters = Annotated[dict[ParameterName, ParameterValue], Field(max_length=MAX_PARAMETERS)]


def _valid_input(value: str) -> str:
    parse_input(value)  # ValueError says what is wrong; pydantic names inputs.<ID>
    return value


InputValue = Annotated[StrictStr, AfterValidator(_valid_input)]


class RunSpec(_Strict):
    # Prefix for experiment and job names.
    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, min_length=1, max_length=32)]
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    job: JobSpec
    # Input id -> upload:<id>, share:<path>, or a path (orchestrator/domain/inputs.py).
    # Relative paths resolve against the spec file's folder when it is loaded.
    inputs: dict[Annotated[str, Field(pattern=IDENTIFIER_PATTERN)], InputValue] = Field(
        default_factory=dict
    )
    # Output directory ids; each becomes $AZ_BATCHAI_OUTPUT_<id>.
    outputs: list[Annotated[StrictStr, Field(pattern=IDENTIFIER_PATTERN)]] = Field(
        default_factory=list
    )
    # Free-form; appended to the job's args as --key value.
    parameters: Parameters = Field(default_factory=dict)
    # At most 50, each key and value at most 256 characters.
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags_are_bounded(cls, tags: dict[str, str]) -> dict[str, str]:
        # Checked here rather than by Field constraints, whose errors would quote the
        # offending (possibly huge) key back in the message.
        if len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, not {len(tags)}")
        for key, value in tags.items():
            if len(key) > MAX_TAG_LENGTH:
                raise ValueError(f"a tag key is longer than {MAX_TAG_LENGTH} characters")
            if len(value) > MAX_TAG_LENGTH:
                raise ValueError(f"a tag value is longer than {MAX_TAG_LENGTH} characters")
        return tags

    @model_validator(mode="after")
    def _inputs_for_script(self) -> Self:
        if self.job.toolkit is not Toolkit.CUSTOM and not self.inputs:
            raise ValueError("inputs needs at least one directory: job.script lives in the first")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError("outputs has duplicate ids")
        return self

    # ------------------------------------------------------------------ helpers
    def with_parameters(self, overrides: dict[str, Any]) -> RunSpec:
        """A copy with `overrides` merged over parameters (validated again)."""
        data = self.model_dump(mode="json")
        data["parameters"] = {**data["parameters"], **overrides}
        return parse_spec(data)

    def with_base_dir(self, base_dir: Path) -> RunSpec:
        """A copy whose relative input paths are resolved against base_dir."""
        data = self.model_dump(mode="json")
        data["inputs"] = {
            key: str((base_dir / value).resolve())
            if parse_input(value).kind is InputKind.PATH and not Path(value).is_absolute()
            else value
            for key, value in self.inputs.items()
        }
        return parse_spec(data)

    def with_inputs(self, inputs: dict[str, str]) -> RunSpec:
        """A copy with some inputs replaced (an uploaded path by its upload:<id>)."""
        data = self.model_dump(mode="json")
        data["inputs"] = {**data["inputs"], **inputs}
        return parse_spec(data)

    def input_refs(self) -> dict[str, InputRef]:
        return {key: parse_input(value) for key, value in self.inputs.items()}

    def job_args(self) -> list[str]:
        """The job's command line arguments: args, then --key value per parameter."""
        extra: list[str] = []
        for key, value in self.parameters.items():
            rendered = json.dumps(value) if isinstance(value, bool) else str(value)
            extra += [f"--{key}", rendered]
        return [*self.job.args, *extra]

    def fingerprint(self) -> str:
        """Stable hash of the spec's content, for idempotency checks."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the dotted field path."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "spec"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


def parse_spec(data: Any) -> RunSpec:
    """Validate a decoded spec (a mapping); raises SpecError naming the field."""
    if not isinstance(data, dict):
        raise SpecError("spec: must be a mapping of fields (name, cluster, job, ...)")
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None


def _one_line(error: Exception) -> str:
    """A parser's error as one line: YAML's span several (problem, mark, context)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())


def load_spec(path: Path) -> RunSpec:
    """Read a YAML or JSON spec file; relative input paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SpecError(f"{path} is not valid {kind}: {_one_line(exc)}") from None
    return parse_spec(data).with_base_dir(path.resolve().parent)
