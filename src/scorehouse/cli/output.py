"""How the CLI speaks: JSON for pipelines, short tables for people, one line per error."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print `data` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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
    t = Table(*columns, title=title, show_edge=False, header_style="bold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def error_line(message: str, as_json: bool, exit_code: int, kind: str) -> None:
    """Report an error the way the caller reads output."""
    if as_json:
        emit_json({"error": message, "type": kind, "exit_code": exit_code})
    else:
        err_console.print(f"[bold red]error:[/] {message}", markup=True)
