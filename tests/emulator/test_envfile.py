"""The env file and the printed lines read back identically by bash, dotenv and
pydantic-settings (docker compose v2 documents the same single-quote rule: values are
taken literally)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from emulator.envfile import EnvValueError, env_line, format_env, parse_env_text
from tests.emulator.test_cli import EXPECTED_KEYS, run_on_a_terminal

# Prints each named variable as NAME=VALUE\0, so any byte of a value survives.
PRINT_VARS = 'for k in "$@"; do printf "%s=%s\\0" "$k" "${!k}"; done'


class EmulatorEnv(BaseSettings):
    """The emulator's variables as a pydantic-settings consumer reads them from the file."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="forbid")

    AZURE_ARM_ENDPOINT: str
    AZURE_SUBSCRIPTION_ID: str
    AZURE_STORAGE_ACCOUNT: str
    AZURE_STORAGE_KEY: str
    AZURE_STORAGE_CONNECTION_STRING: str
    REQUESTS_CA_BUNDLE: str
    AZURE_EMULATOR_TOKEN: str

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the file: the test process may export REQUESTS_CA_BUNDLE itself.
        return (dotenv_settings,)


def bash_values(script: str, env_file: Path | None = None) -> dict[str, str]:
    """Run script in a bash with an (almost) empty environment, then print EXPECTED_KEYS."""
    environment = {"PATH": "/usr/bin:/bin"}
    if env_file is not None:
        environment["ENV_FILE"] = str(env_file)
    result = subprocess.run(
        ["bash", "-c", f"{script}\n{PRINT_VARS}", "bash", *sorted(EXPECTED_KEYS)],
        env=environment,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert not result.stderr, result.stderr
    pairs = [item.decode().split("=", 1) for item in result.stdout.split(b"\0") if item]
    return {key: value for key, value in pairs if value}


def run_emulator_once(tmp_path: Path) -> tuple[str, Path]:
    """(stdout on a terminal, env file) of `orchestrator emulator --env-file`, started
    and stopped. On a terminal, as a user who copies the lines sees them."""
    env_file = tmp_path / "emulator" / "env"
    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "--env-file", str(env_file)]
    return run_on_a_terminal(args, env_file), env_file


def test_env_file_and_printed_lines_read_the_same_everywhere(tmp_path: Path) -> None:
    out, env_file = run_emulator_once(tmp_path)
    printed = parse_env_text(out)
    assert set(printed) == EXPECTED_KEYS
    # The value that broke `. FILE` before it was quoted.
    assert ";" in printed["AZURE_STORAGE_CONNECTION_STRING"]

    sourced = bash_values('set -a; . "$ENV_FILE"; set +a', env_file)
    assert sourced == printed
    pasted = bash_values(out)
    assert pasted == printed
    # Exported by set -a: a child process sees them too.
    exported = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; set +a; exec env', "bash", str(env_file)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for key, value in printed.items():
        assert f"{key}={value}" in exported.splitlines(), key

    assert dotenv_values(env_file) == printed
    settings = EmulatorEnv(_env_file=env_file)
    assert settings.model_dump() == printed


@pytest.mark.parametrize("value", ["it's", "tls\\ca.pem", "two\nlines", "${HOME}/ca.pem"])
def test_values_no_reader_agrees_on_are_refused(value: str) -> None:
    with pytest.raises(EnvValueError):
        env_line("REQUESTS_CA_BUNDLE", value)


def test_names_must_be_shell_names() -> None:
    with pytest.raises(EnvValueError):
        env_line("NOT-A-NAME", "x")


def test_format_and_parse_round_trip() -> None:
    env = {"A": "x;y=z", "B": "", "C": "$HOME `id` # not a comment"}
    text = format_env(env)
    assert text == "A='x;y=z'\nB=''\nC='$HOME `id` # not a comment'\n"
    assert parse_env_text(text) == env
    assert dotenv_values(stream=io.StringIO(text)) == env
