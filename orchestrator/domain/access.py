"""Who may call the API and how often: scopes, key names and rate limits.

The rules only; the keys themselves live in store/apikeys.py and the checks
are the API's (api/auth.py).

Scopes are independent, except that `admin` implies the others: an admin key
can create itself any key, so refusing it a read would protect nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"  # GETs and event streams
    SUBMIT = "submit"  # create runs (and, later, sweeps and uploads)
    CANCEL = "cancel"  # cancel runs
    ADMIN = "admin"  # keys and schedules; implies every other scope


ALL_SCOPES = frozenset(Scope)

# The name runs and events carry for the bootstrap token (ORCH_API_TOKEN).
BOOTSTRAP_NAME = "admin"
# ... for an API serving without a token (ORCH_API_ALLOW_UNAUTHENTICATED).
ANONYMOUS_NAME = "anonymous"
# ... for what the CLI does straight on Redis (whoever can reach Redis is admin).
CLI_NAME = "cli"
RESERVED_NAMES = frozenset({BOOTSTRAP_NAME, ANONYMOUS_NAME, CLI_NAME})

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")


class AccessError(ValueError):
    """A key name, scope list or rate that is not valid; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def grants(scopes: frozenset[Scope], needed: Scope) -> bool:
    return needed in scopes or Scope.ADMIN in scopes


def validate_key_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccessError(
            "name",
            f"{name!r} is not a key name (1-64 of a-z 0-9 . _ -, "
            "starting and ending with a letter or digit)",
        )
    if name in RESERVED_NAMES:
        raise AccessError("name", f"{name!r} is reserved")
    return name


def parse_scopes(value: str | list[str]) -> frozenset[Scope]:
    """`submit,read` (or a list) -> the scopes; at least one, each known."""
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes: set[Scope] = set()
    for item in (part.strip() for part in items):
        if not item:
            continue
        try:
            scopes.add(Scope(item))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise AccessError("scopes", f"unknown scope {item!r} (known: {known})") from None
    if not scopes:
        raise AccessError("scopes", "at least one scope is needed")
    return frozenset(scopes)


def format_scopes(scopes: frozenset[Scope]) -> list[str]:
    """In a stable order: the order of Scope."""
    return [scope.value for scope in Scope if scope in scopes]


_UNITS = {
    "s": "second",
    "sec": "second",
    "second": "second",
    "m": "minute",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hour": "hour",
    "d": "day",
    "day": "day",
}
_RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,6})?\s*([a-z]+?)s?\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `per` `unit`s (a moving window)."""

    count: int
    unit: str
    per: int = 1

    def __str__(self) -> str:
        return (
            f"{self.count}/{self.per} {self.unit}" if self.per != 1 else f"{self.count}/{self.unit}"
        )

    @property
    def window_seconds(self) -> int:
        return self.per * _UNIT_SECONDS[self.unit]


def parse_rate(value: str) -> RateLimit:
    """`10/s`, `100/minute`, `5/10s`, `1000/h` -> RateLimit; AccessError naming `rate`."""
    match = _RATE.match(value.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise AccessError(
            "rate", f"{value!r} is not a rate (COUNT/UNIT, e.g. 10/s, 100/minute, 1000/h)"
        )
    count, per = int(match.group(1)), int(match.group(2) or 1)
    if count < 1 or per < 1:
        raise AccessError("rate", f"{value!r} must allow at least 1 request per window")
    return RateLimit(count=count, unit=unit, per=per)
