"""How the CLI speaks: JSON for pipelines, short tables for people, one line per error.

Much of what it prints was typed by someone else: promotion reasons, descriptions, user
names, metric and column names, category values, error messages quoting input. None of it
may drive the terminal: every string printed has its control characters escaped, and rich
markup is only read where a call asks for it (`markup=True`, with the parts escaped).
JSON output (`--json`) escapes them by itself and stays exact.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

#: Control characters (C0, DEL, C1), the invisible ones that reorder text (bidi marks,
#: embeddings, overrides and isolates) and can make a line read as something it is not, and
#: lone surrogates (undecodable bytes of an argument), which cannot be written at all.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")


def figure(v: Any, digits: int = 4) -> str:
    """A figure as short table text: floats to `digits` significant digits, None as '-',
    anything else as its text."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with each control character written as a visible escape (`\\x1b`, `\\n`,
    `\\u202e`), so it cannot recolour, retitle or clear the terminal, hide what follows, or
    fake lines of output. `newlines=True` keeps line breaks (for text the CLI composed)."""
    def visible(m: re.Match[str]) -> str:
        c = m.group()
        if newlines and c == "\n":
            return c
        return repr(c)[1:-1] if ord(c) < 0x100 else f"\\u{ord(c):04x}"
    return _UNSAFE.sub(visible, text)


class SafeConsole(Console):
    """A rich Console whose `print` escapes control characters in every string it is given
    (line breaks kept); markup is off unless a call passes `markup=True`."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(printable(o, newlines=True) if isinstance(o, str) else o
                        for o in objects), **kwargs)


console = SafeConsole(highlight=False, soft_wrap=True, markup=False)
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False)


def emit_json(data: Any) -> None:
    """Print `data` as JSON on stdout (a record with `to_dict()`, such as the registry's
    `AliasMove`, as that dict; anything else JSON cannot write as its text)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    to_dict = getattr(o, "to_dict", None)
    return to_dict() if callable(to_dict) else str(o)


def emit(data: Any, as_json: bool, human: Callable[[], None] | str) -> None:
    """JSON when asked, else the human rendering (a callable or a line of text)."""
    if as_json:
        emit_json(data)
    elif callable(human):
        human()
    else:
        console.print(human)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Print a simple table."""
    t = Table(*columns, title=None if title is None else printable(title), show_edge=False,
              header_style="bold")
    for r in rows:  # one line per value: a line break in a reason shows as \n
        t.add_row(*(Text("" if v is None else printable(str(v))) for v in r))
    console.print(t)


def error_line(message: str, as_json: bool, exit_code: int, kind: str) -> None:
    """Report an error the way the caller reads output."""
    if as_json:
        emit_json({"error": message, "type": kind, "exit_code": exit_code})
    else:
        err_console.print(f"[bold red]error:[/] {escape(printable(message))}", markup=True)


def warning_line(message: str) -> None:
    """Report a warning in one line on stderr."""
    err_console.print(f"[yellow]warning:[/] {escape(printable(message))}", markup=True)
