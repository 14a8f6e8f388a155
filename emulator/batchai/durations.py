"""maxWallClockTime values: ISO 8601 durations (what the SDKs send) and .NET TimeSpan
strings (the spec's default "7.00:00:00"). Responses always carry ISO 8601, because
msrest parses 'duration' with isodate and rejects the TimeSpan form."""

from __future__ import annotations

import re

_ISO = re.compile(
    r"P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_TIMESPAN = re.compile(
    r"(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+(?:\.\d+)?)"
)
_UNIT_SECONDS = {
    "weeks": 604800.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
}

DEFAULT_MAX_WALL_CLOCK = "P7D"


def parse_seconds(text: str) -> float:
    """Seconds in an ISO 8601 duration or TimeSpan; ValueError when it is neither."""
    value = text.strip()
    match = _ISO.fullmatch(value) or _TIMESPAN.fullmatch(value)
    if not match or value.upper() in ("P", "PT"):
        raise ValueError(f"'{text}' is not an ISO 8601 duration such as PT1H30M")
    return sum(
        float(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def to_iso(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    out = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or fraction:
        time += f"{secs + fraction:g}S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"
