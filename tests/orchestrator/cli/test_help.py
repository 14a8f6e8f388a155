"""Help a user can read at 80 columns: every command listed whole in one line,
every parameter explained, values named (no `<list[str]>` or `<int range>`)."""

from __future__ import annotations

import re

import pytest

from orchestrator import __version__
from orchestrator.cli import COMMANDS, main

# typer's rendering of a type instead of a name for the value.
TYPE_LEAKS = re.compile(r"<(list\[|int|float|str|path)[^>]*>")


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def test_the_command_list_shows_each_command_whole_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text([], capsys)
    listing = text.split("Commands:", 1)[1].splitlines()[1:]
    for name, _command, one_line in COMMANDS:
        assert f"  {name:<10}{one_line}" in listing
    assert not [line for line in listing if line.rstrip().endswith("...")]
    assert "--install-completion" in text and "--version" in text


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_every_option_names_its_value_and_says_what_it_does(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_text([name], capsys)
    options = text.split("Options:", 1)[1]
    assert not TYPE_LEAKS.search(options), options


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"orchestrator {__version__}\n"
