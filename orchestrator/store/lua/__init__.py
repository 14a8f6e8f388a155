"""The store's Lua scripts, kept as files so they read (and diff) as Lua."""

from __future__ import annotations

from importlib.resources import files

# Streams are capped at about this many entries (XADD MAXLEN ~).
EVENTS_MAXLEN = 1000


def load_script(name: str) -> str:
    """The text of `<name>.lua`, with its constants filled in."""
    text = (files(__package__) / f"{name}.lua").read_text()
    return text.replace("__EVENTS_MAXLEN__", str(EVENTS_MAXLEN))
