"""Schedules: a run or a sweep fired on a cron or fixed-interval trigger (no I/O here).

The public contract (see README "Nightly retraining: schedules"): strict like
the run spec, each problem reported with its dotted field path.

Tick times are instants (UTC epoch seconds). Cron expressions are read in the
schedule's IANA zone, on wall-clock time, with these daylight-saving rules:

- a wall time skipped by the spring change (02:30 on Europe/Rome's spring
  night) fires at the same offset past the change (03:30 CEST), PEP 495's
  fold=0 reading; two wall times mapping to one instant fire once;
- a wall time repeated by the autumn change fires once, at its first
  occurrence, unless the hour field is every hour (`*`), where both
  occurrences fire: a nightly job runs once, an hourly one keeps its spacing.

`every` ticks are anchored at start_time (or the Unix epoch), so "every 5m"
fires at :00, :05, ... on every worker without any stored anchor.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.domain.spec import (
    NAME_PATTERN,
    ParameterValue,
    RunSpec,
    SpecError,
    format_validation_error,
    load_spec,
    parse_iso8601_duration,
)
from orchestrator.domain.sweep import SweepError, SweepSpec, load_sweep

MIN_INTERVAL_SECONDS = 1.0
_SHORT_DURATION = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Past this many ticks of downtime, older ticks are not enumerated one by one
# (they could never fire anyway, and only history_limit of them are kept).
MAX_TICKS_ENUMERATED = 10_000


class ScheduleError(SpecError):
    """A schedule that cannot be accepted; the message names the field."""


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `5m`, `1h`, `1d` or an ISO 8601 duration (`PT30S`)."""
    found = _SHORT_DURATION.fullmatch(text.strip())
    if found:
        seconds = float(found["amount"]) * _UNIT_SECONDS[found["unit"]]
        if seconds <= 0:
            raise ValueError("must be a positive duration")
        return seconds
    try:
        return parse_iso8601_duration(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 1h or PT30S") from None


class ConcurrencyPolicy(StrEnum):
    ALLOW = "allow"  # a tick starts a run even while the previous one is active
    FORBID = "forbid"  # a tick is skipped while the previous run is active
    REPLACE = "replace"  # the previous run is cancelled, then the tick's run starts


class TickOutcome(StrEnum):
    RAN = "ran"  # a run was enqueued for the tick
    SKIPPED = "skipped"  # forbid: the previous run was still active
    REPLACED = "replaced"  # replace: the previous run was cancelled, then one enqueued
    MISSED = "missed"  # not fired (downtime past starting_deadline, or older than the latest)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    # Five fields (minute hour day-of-month month day-of-week), in time_zone.
    cron: StrictStr | None = None
    # Fixed interval: 30s, 5m, 1h or ISO 8601 (PT30S); at least 1 s.
    every: StrictStr | None = None
    # IANA zone name of the cron's wall clock.
    time_zone: StrictStr = "UTC"
    # Optional window: no tick before start_time or after end_time (naive = in time_zone).
    start_time: datetime | None = None
    end_time: datetime | None = None

    @field_validator("cron")
    @classmethod
    def _five_field_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a 5-field cron expression such as '0 2 * * *'")
        return value

    @field_validator("every")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if parse_duration(value) < MIN_INTERVAL_SECONDS:
            raise ValueError("must be at least 1 s")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Rome") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.cron is None) == (self.every is None):
            raise ValueError("exactly one of cron or every is required")
        if self.start_time and self.end_time and self.window()[0] >= self.window()[1]:
            raise ValueError("end_time must be after start_time")
        return self

    # ----------------------------------------------------------------- times
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def interval_seconds(self) -> float | None:
        return parse_duration(self.every) if self.every is not None else None

    def _instant(self, value: datetime | None, default: float) -> float:
        if value is None:
            return default
        aware = value if value.tzinfo is not None else value.replace(tzinfo=self.zone)
        return aware.timestamp()

    def window(self) -> tuple[float, float]:
        return (
            self._instant(self.start_time, float("-inf")),
            self._instant(self.end_time, float("inf")),
        )

    def next_after(self, instant: float) -> float | None:
        """The first tick strictly after `instant` inside the window, or None."""
        start, end = self.window()
        if instant < start:
            # The first tick may be start_time itself.
            instant = start - 0.001
        interval = self.interval_seconds
        if interval is not None:
            anchor_ms = 0 if start == float("-inf") else round(start * 1000)
            step_ms = round(interval * 1000)
            steps = (round(instant * 1000) - anchor_ms) // step_ms + 1
            tick = (anchor_ms + steps * step_ms) / 1000
        else:
            tick = self._next_cron(instant)
        return tick if tick <= end else None

    def _next_cron(self, instant: float) -> float:
        assert self.cron is not None
        zone = self.zone
        every_hour = croniter.expand(self.cron)[0][1] == ["*"]
        local = datetime.fromtimestamp(instant, zone).replace(tzinfo=None, microsecond=0)
        # Start one hour of wall time back: after the autumn change the wall
        # clock repeats an hour, so the next tick can be an earlier wall time.
        iterator = croniter(self.cron, local - timedelta(hours=1))
        for _ in range(MAX_TICKS_ENUMERATED):
            wall: datetime = iterator.get_next(datetime)
            folds = (0, 1) if every_hour else (0,)
            for fold in folds:
                tick = wall.replace(tzinfo=zone, fold=fold).timestamp()
                if tick > instant:
                    return tick
        raise ScheduleError(f"trigger.cron: {self.cron!r} has no tick after {instant}")

    def ticks_between(self, first: float, last: float) -> list[float]:
        """Ticks t with first <= t <= last, oldest first; at most the newest
        MAX_TICKS_ENUMERATED (a long downtime skips ahead)."""
        if last - first > 0:
            interval = self.interval_seconds or 60.0
            span = interval * MAX_TICKS_ENUMERATED
            if last - first > span:
                first = last - span
        ticks: list[float] = []
        tick = self.next_after(first - 0.001)
        while tick is not None and tick <= last:
            ticks.append(tick)
            tick = self.next_after(tick)
        return ticks[-MAX_TICKS_ENUMERATED:]

    def upcoming(self, after: float, count: int) -> list[datetime]:
        """The next `count` ticks after `after`, in the schedule's zone."""
        times: list[datetime] = []
        tick = self.next_after(after)
        while tick is not None and len(times) < count:
            times.append(datetime.fromtimestamp(tick, self.zone))
            tick = self.next_after(tick)
        return times


class ScheduleSpec(_Strict):
    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
    trigger: Trigger
    # What every tick starts, exactly one of: a run spec, or a sweep spec (each
    # inline; a schedule file may give a path).
    run: RunSpec | None = None
    sweep: SweepSpec | None = None
    # Merged over run.parameters; "{trigger_time}" and "{trigger_date}" in a
    # string value are replaced by the tick's time (ISO 8601, in the zone) and date.
    parameters: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][-\w.]*$")], ParameterValue] = (
        Field(default_factory=dict)
    )
    # forbid by default: a nightly retraining that overran should not be doubled.
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    # A tick found later than this after its time is recorded missed, never run.
    starting_deadline: StrictStr = "PT1H"
    suspend: StrictBool = False
    history_limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 20

    @field_validator("starting_deadline")
    @classmethod
    def _deadline(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def starting_deadline_seconds(self) -> float:
        return parse_duration(self.starting_deadline)

    @model_validator(mode="after")
    def _parameters_render(self) -> Self:
        if (self.run is None) == (self.sweep is None):
            raise ValueError("run: give exactly one of run (a run spec) or sweep (a sweep spec)")
        # Fails at definition time, not at 02:00, if the substituted spec is invalid.
        self.target_for(0.0)
        return self

    @property
    def run_template(self) -> RunSpec:
        """The run every tick starts, or each trial of the sweep it starts."""
        if self.sweep is not None:
            return self.sweep.trial
        assert self.run is not None
        return self.run

    def target_for(self, tick: float) -> RunSpec | SweepSpec:
        """What the tick starts: run_spec_for, or sweep_spec_for."""
        return self.sweep_spec_for(tick) if self.sweep is not None else self.run_spec_for(tick)

    def sweep_spec_for(self, tick: float) -> SweepSpec:
        """The sweep fired for `tick`: its trial is the run of run_spec_for (so every
        trial carries the substituted parameters and the schedule's tags)."""
        assert self.sweep is not None
        trial = self.run_spec_for(tick)
        data = self.sweep.model_dump(mode="json")
        data["trial"] = trial.model_dump(mode="json")
        try:
            return SweepSpec.model_validate(data)
        except ValidationError as exc:
            problems = format_validation_error(exc)
            raise ValueError(
                f"sweep: the sweep the parameters produce is invalid: {problems}"
            ) from None

    def trigger_labels(self, tick: float) -> tuple[str, str, str]:
        """(UTC ISO of the tick, its ISO in the zone, its date in the zone)."""
        utc = datetime.fromtimestamp(tick, UTC)
        local = utc.astimezone(self.trigger.zone)
        return iso(tick), local.isoformat(), local.date().isoformat()

    def run_spec_for(self, tick: float) -> RunSpec:
        """The run fired for `tick`: parameters substituted, tags schedule= and trigger_time=."""
        tick_iso, local_iso, local_date = self.trigger_labels(tick)

        def substitute(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("{trigger_time}", local_iso).replace(
                    "{trigger_date}", local_date
                )
            return value

        data = self.run_template.model_dump(mode="json")
        data["parameters"] = {
            key: substitute(value)
            for key, value in {**data["parameters"], **self.parameters}.items()
        }
        data["tags"] = {**data["tags"], "schedule": self.name, "trigger_time": tick_iso}
        try:
            return RunSpec.model_validate(data)
        except ValidationError as exc:
            raise ValueError(
                f"parameters: the run they produce is invalid: {format_validation_error(exc)}"
            ) from None


def iso(instant: float) -> str:
    """The canonical UTC ISO 8601 form of a tick (idempotency keys, tags, history)."""
    moment = datetime.fromtimestamp(instant, UTC)
    timespec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_schedule(data: Any) -> ScheduleSpec:
    """Validate a decoded schedule; raises ScheduleError naming the field."""
    if not isinstance(data, dict):
        raise ScheduleError("schedule: must be a mapping of fields (name, trigger, run, ...)")
    try:
        return ScheduleSpec.model_validate(data)
    except ValidationError as exc:
        raise ScheduleError(_schedule_problems(exc)) from None


def _schedule_problems(error: ValidationError) -> str:
    # A model-level rule names its own field ("trigger: exactly one of ...").
    return format_validation_error(error).replace("spec: ", "")


def load_schedule(path: Path) -> ScheduleSpec:
    """Read a schedule YAML/JSON file; `run:` may be a path relative to it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise ScheduleError(f"cannot read schedule file {path}: {problem}") from None
    if isinstance(data, dict) and isinstance(data.get("run"), str):
        run = load_spec((path.parent / data["run"]).resolve())
        data = {**data, "run": run.model_dump(mode="json")}
    if isinstance(data, dict) and isinstance(data.get("sweep"), str):
        try:
            sweep = load_sweep((path.parent / data["sweep"]).resolve())
        except SweepError as exc:
            raise ScheduleError(f"sweep: {exc}") from None
        data = {**data, "sweep": sweep.model_dump(mode="json")}
    return parse_schedule(data)
