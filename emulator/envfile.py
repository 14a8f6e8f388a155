"""The emulator's KEY='VALUE' lines: printed on stdout and written to --env-file.

Values are single-quoted because the storage connection string contains `;`, which
ends a command when the file is sourced unquoted. Single quotes are the one quoting
that bash (`set -a; . FILE`), python-dotenv / pydantic-settings and docker compose v2
`env_file` all read the same way, as the literal text between the quotes, provided the
text holds no `'` (no reader agrees on an escape for it), no backslash (dotenv and
compose treat `\\'` and `\\\\` as escapes inside single quotes, bash does not), no `${`
(python-dotenv expands `${NAME}` even inside single quotes) and no line break. Values
that break that rule are refused rather than written wrongly.

The secret values (SECRET_NAMES) are printed only to a terminal: when stdout is a file
or a pipe (a log of `orchestrator up`, a container log) their lines are comments naming
the variable and where to find it, so no log ever holds the key or the token.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

# Variable names every reader accepts (POSIX shell names).
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNQUOTABLE = frozenset("'\\\n\r")
SECRET_NAMES = frozenset(
    {"AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_EMULATOR_TOKEN"}
)


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


def format_env_for_stdout(env: dict[str, str], *, terminal: bool, env_file: Path | None) -> str:
    """The lines to print: all of them on a terminal (a user copies them); elsewhere the
    secret ones become `# NAME: not printed ...` comments, which every reader skips."""
    if terminal:
        return format_env(env)
    where = f"read it from {env_file}" if env_file else "pass --env-file to get it"
    return "".join(
        f"# {key}: not printed (stdout is not a terminal); {where}\n"
        if key in SECRET_NAMES
        else env_line(key, value)
        for key, value in env.items()
    )


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Written atomically (a watcher never reads half a file) and private: created with
    mode 0600, so there is no moment when the storage key and token are readable by
    others (a chmod after writing would leave one)."""
    text = format_env(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # A leftover from a crash keeps its old mode under O_CREAT: start from nothing.
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
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
