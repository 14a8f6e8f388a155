"""Job-written text made safe to print on a terminal.

A job's stdout, stderr, error tail and file names are the job's own bytes: an
escape sequence among them could retitle the user's terminal (OSC), recolour
or clear it (CSI), or write to its clipboard (OSC 52). What the CLI prints of
them goes through here first; `orchestrator logs --raw` does not.

Removed: CSI sequences (ESC [ or U+009B, parameters, final byte), the string
sequences OSC, DCS, SOS, PM and APC (ESC ] P X ^ _ or U+009D U+0090 U+0098
U+009E U+009F, up to BEL or ST), other ESC sequences, and every other C0/C1
control and DEL. Kept: newline and tab. A carriage return before a newline is
dropped; a lone one (a progress bar redrawing its line) becomes a newline, so
nothing is overwritten on screen and every redraw stays readable.

The scan is linear in the text whatever it holds (one pass, terminator
searches cached), so a hostile log cannot make printing it quadratic.
"""

from __future__ import annotations

import re

# The longest sequence held back across chunks, and the longest string
# sequence (OSC...) removed as one: past it, only the introducer is removed
# and the text after it stays visible (inert, with every control gone).
MAX_SEQUENCE = 4096

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STRING_TERMINATOR = re.compile(r"\x07|\x1b\\|\x9c")
_CSI_BODY = re.compile(r"[\x30-\x3f]*[\x20-\x2f]*")
_ESC_INTERMEDIATES = re.compile(r"[\x20-\x2f]*")
_ESC_STRING_STARTS = frozenset("]PX^_")
_C1_STRING_STARTS = frozenset("\x90\x98\x9d\x9e\x9f")
_C1_CSI = "\x9b"


class _Terminators:
    """Where the next string terminator is, searched once per stretch of text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._searched_from = -1
        self._found: re.Match[str] | None = None

    def after(self, start: int) -> re.Match[str] | None:
        cached = self._searched_from != -1 and self._searched_from <= start
        if not cached or (self._found is not None and self._found.start() < start):
            self._found = _STRING_TERMINATOR.search(self.text, start)
            self._searched_from = start
        return self._found


def _sequence_end(text: str, i: int, terminators: _Terminators, final: bool) -> int | None:
    """Where the control sequence starting at text[i] ends (exclusive), or None
    when the text ends inside it and more may follow (not `final`)."""
    n = len(text)
    can_wait = not final and n - i <= MAX_SEQUENCE
    char = text[i]
    if char == "\x1b":
        if i + 1 == n:
            return None if can_wait else n
        kind = text[i + 1]
        if kind == "[":
            return _csi_end(text, i + 2, can_wait)
        if kind in _ESC_STRING_STARTS:
            return _string_end(text, i, i + 2, terminators, can_wait)
        if "\x20" <= kind <= "\x7e":
            # ESC, intermediates, one final byte (ESC c, ESC ( B, ESC 7...).
            j = _ESC_INTERMEDIATES.match(text, i + 1)
            end = j.end() if j else i + 1
            if end == n:
                return None if can_wait else n
            return end + 1 if "\x30" <= text[end] <= "\x7e" else end
        return i + 1  # ESC before another control or non-ASCII: ESC alone
    if char == _C1_CSI:
        return _csi_end(text, i + 1, can_wait)
    if char in _C1_STRING_STARTS:
        return _string_end(text, i, i + 1, terminators, can_wait)
    return i + 1


def _csi_end(text: str, body: int, can_wait: bool) -> int | None:
    found = _CSI_BODY.match(text, body)
    end = found.end() if found else body
    if end == len(text):
        return None if can_wait else end
    # A final byte ends it; anything else aborts it (and is scanned on its own).
    return end + 1 if "\x40" <= text[end] <= "\x7e" else end


def _string_end(
    text: str, start: int, body: int, terminators: _Terminators, can_wait: bool
) -> int | None:
    found = terminators.after(body)
    if found is not None and found.end() - start <= MAX_SEQUENCE:
        return found.end()
    if found is None and can_wait:
        return None
    return body  # unterminated or too long: the introducer only


def _scan(text: str, *, final: bool) -> tuple[str, int]:
    """(the text without controls, where an unfinished trailing sequence starts)."""
    out: list[str] = []
    terminators = _Terminators(text)
    position = 0
    while (found := _CONTROL.search(text, position)) is not None:
        i = found.start()
        out.append(text[position:i])
        if text[i] == "\r":
            if i + 1 == len(text) and not final:
                return "".join(out), i  # a newline may follow in the next chunk
            if not text.startswith("\n", i + 1):
                out.append("\n")
            position = i + 1
            continue
        end = _sequence_end(text, i, terminators, final)
        if end is None:
            return "".join(out), i
        position = end
    out.append(text[position:])
    return "".join(out), len(text)


def strip_terminal_controls(text: str) -> str:
    """`text` with every terminal control sequence removed (see the module doc)."""
    return _scan(text, final=True)[0]


def one_line(text: str) -> str:
    """`text` as one safe line: controls removed, line breaks turned into spaces."""
    return " ".join(strip_terminal_controls(text).splitlines())


class TerminalSanitizer:
    """strip_terminal_controls for text arriving in chunks: a sequence cut by a
    chunk boundary is held back (at most MAX_SEQUENCE characters) until the
    next chunk completes it, so it is removed whole."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk
        clean, cut = _scan(text, final=False)
        self._pending = text[cut:]
        return clean

    def flush(self) -> str:
        """What was held back, cleaned as if the text ended here."""
        text, self._pending = self._pending, ""
        return strip_terminal_controls(text)
