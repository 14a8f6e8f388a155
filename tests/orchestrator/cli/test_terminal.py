"""Terminal control sequences in job-written text are removed before printing."""

from __future__ import annotations

import re

import pytest

from orchestrator.cli import terminal
from orchestrator.cli.terminal import (
    MAX_SEQUENCE,
    TerminalSanitizer,
    one_line,
    strip_terminal_controls,
)

# What a hostile job prints, and what the user must see of it.
ATTACKS = [
    ("retitle \x1b]0;pwned\x07done", "retitle done"),
    ("retitle \x1b]2;pwned\x1b\\done", "retitle done"),
    ("clipboard \x1b]52;c;cm0gLXJmIH4=\x07x", "clipboard x"),
    ("link \x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "link click"),
    ("\x1b[31mred\x1b[0m \x1b[1;38;5;196mbold\x1b[m", "red bold"),
    ("clear\x1b[2J\x1b[H\x1b[3J", "clear"),
    ("private \x1b[?1049h\x1b[?25l", "private "),
    ("dcs \x1bPq#0;2;0;0;0\x1b\\end", "dcs end"),
    ("apc \x1b_payload\x1b\\pm \x1b^x\x1b\\sos \x1bXy\x1b\\", "apc pm sos "),
    ("reset \x1bc charset \x1b(B keypad \x1b= save \x1b7", "reset  charset  keypad  save "),
    ("c1 \x9b31mcsi \x9d0;title\x9c osc \x90dcs\x9c", "c1 csi  osc "),
    ("bell\x07 back\x08space nul\x00 del\x7f vt\x0b ff\x0c", "bell backspace nul del vt ff"),
]


@pytest.mark.parametrize(("raw", "shown"), ATTACKS)
def test_control_sequences_are_removed(raw: str, shown: str) -> None:
    assert strip_terminal_controls(raw) == shown


def test_ordinary_text_is_untouched() -> None:
    text = "epoch 3\tloss=0.25\naccuracy: 98% — ünïcödé ✓ 训练\n[INFO] a[1] = b\n"
    assert strip_terminal_controls(text) == text


def test_newlines_are_kept_and_carriage_returns_never_overwrite() -> None:
    assert strip_terminal_controls("a\r\nb\r\n") == "a\nb\n"
    # A lone CR would let a later text hide an earlier one on the same line.
    assert strip_terminal_controls("rm -rf ~\rsafe") == "rm -rf ~\nsafe"
    assert strip_terminal_controls(" 10%\r 20%\r") == " 10%\n 20%\n"


def test_nothing_printable_is_left_of_any_escape() -> None:
    # Whatever the mix, no ESC, C1 or C0 other than \n and \t survives.
    raw = "".join(chr(c) for c in range(0xA0)) * 3 + "\x1b[" + "\x1b]" + "\x1b"
    clean = strip_terminal_controls(raw)
    assert not [c for c in clean if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


def test_an_unterminated_string_hides_only_its_introducer() -> None:
    # The rest stays visible: inert once the ESC is gone, and not swallowed.
    assert strip_terminal_controls("a\x1b]0;title\nnext line") == "a0;title\nnext line"
    too_long = "\x1b]0;" + "x" * MAX_SEQUENCE + "\x07tail"
    assert strip_terminal_controls(too_long) == "0;" + "x" * MAX_SEQUENCE + "tail"


def test_a_malformed_csi_stops_at_the_first_byte_that_cannot_be_in_it() -> None:
    assert strip_terminal_controls("\x1b[12\nnext") == "\nnext"
    assert strip_terminal_controls("\x1b[12é") == "é"


def test_one_line_joins_lines() -> None:
    assert one_line("job failed; stderr: \x1b[31mboom\x1b[0m\nmore\r\n") == (
        "job failed; stderr: boom more"
    )


@pytest.mark.parametrize(("raw", "shown"), ATTACKS)
def test_a_sequence_cut_across_chunks_is_removed_whole(raw: str, shown: str) -> None:
    for cut in range(len(raw) + 1):
        sanitizer = TerminalSanitizer()
        assert sanitizer.feed(raw[:cut]) + sanitizer.feed(raw[cut:]) + sanitizer.flush() == shown


def test_a_cr_lf_cut_between_chunks_is_one_newline() -> None:
    sanitizer = TerminalSanitizer()
    assert sanitizer.feed("a\r") == "a"
    assert sanitizer.feed("\nb") == "\nb"
    assert sanitizer.flush() == ""


def test_what_is_held_back_is_bounded() -> None:
    sanitizer = TerminalSanitizer()
    shown = sanitizer.feed("x\x1b]0;" + "y" * (2 * MAX_SEQUENCE))
    # Past MAX_SEQUENCE the unterminated OSC is not waited for: printed inert.
    assert shown == "x0;" + "y" * (2 * MAX_SEQUENCE)
    assert sanitizer.flush() == ""


def test_hostile_input_is_searched_for_terminators_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many string introducers and no terminator: searching for one from each
    # introducer would make the scan quadratic in the log's size. Counted, not
    # timed: the terminator search runs once for the whole text.
    searched: list[int] = []
    real = terminal._STRING_TERMINATOR

    class Counting:
        def search(self, text: str, start: int) -> re.Match[str] | None:
            searched.append(start)
            return real.search(text, start)

    monkeypatch.setattr(terminal, "_STRING_TERMINATOR", Counting())
    assert strip_terminal_controls("\x1b]" * 10_000 + "end") == "end"
    assert len(searched) == 1
    searched.clear()
    # Terminated strings: one search each, never a rescan of the rest.
    assert strip_terminal_controls("\x1b]0;t\x07." * 1000) == "." * 1000
    assert len(searched) == 1000
