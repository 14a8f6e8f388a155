"""The emulator's KEY='VALUE' lines: printed on stdout and written to --env-file.

Values are single-quoted because the storage connection string contains `;`, which
ends a command when the file is sourced unquoted. Single quotes are the one quoting
that bash (`set -a; . FILE`), python-dotenv / pydantic-settings and docker compose v2
`env_file` all read the same way, as the literal text between the quotes, provided the
text holds no `'` (no reader agrees on an escape for it), no backslash (dotenv and
compose treat `\\'` and `\\\\` as escapes inside single quotes, bash does not), no `${`
(python-dotenv expands `${NAME}` even inside single quotes) and no line break. Values
that break that rule are refused rather than written wrongly.
"""

from __future__ import annotations

import re
from pathlib import Path

# Variable names every reader accepts (POSIX shell names).
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNQUOTABLE = frozenset("'\\\n\r")


class EnvValueError(ValueError):
    """A key or value that cannot be written so that every reader gets it back unchanged."""


def env_line(key: str, value: str) -> str:
    if not _KEY.fullmatch(key):
        raise EnvValueError(f"{key!r} is not a valid environment variable name")
    bad = sorted(_UNQUOTABLE.intersection(value)) + (["${"] if "${" in value else [])
    if bad:
        raise EnvValueError(
            f"{key}: the value contains {', '.join(repr(c) for c in bad)}, which shells, "
            "dotenv and docker compose do not read alike inside single quotes"
        )
    return f"{key}='{value}'\n"


def format_env(env: dict[str, str]) -> str:
    return "".join(env_line(key, value) for key, value in env.items())


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Written atomically (a watcher never reads half a file) and private (mode 0600:
    it holds the storage key)."""
    text = format_env(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def parse_env_text(text: str) -> dict[str, str]:
    """The inverse of format_env (blank lines and # comments skipped)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or len(value) < 2 or value[0] != "'" or value[-1] != "'":
            raise EnvValueError(f"not a KEY='VALUE' line: {line[:40]!r}")
        env[key.strip()] = value[1:-1]
    return env


def parse_env_file(path: Path) -> dict[str, str]:
    return parse_env_text(path.read_text())
