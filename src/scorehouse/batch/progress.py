"""Progress of a batch run: a rich bar with rows/s and ETA on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

#: Seconds between progress lines when stderr is not a terminal (cron, Airflow logs).
LOG_EVERY = 30.0


class Progress:
    """Reports rows scored; `total` is in `unit` ('bytes' of input read, or 'rows')."""

    def __init__(self, total: int | None, unit: str, *, enabled: bool = True,
                 stream: TextIO | None = None, log_every: float = LOG_EVERY):
        self.total, self.unit = total, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.log_every = log_every
        self.start = time.perf_counter()
        self._last_log = self.start
        self._bar: Any = None
        self._task: Any = None
        if enabled and self.stream.isatty():
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(TextColumn("scoring"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        console=Console(file=self.stream), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("score", total=self.total, rows=0, rate=0.0)

    def update(self, rows: int, done: int | None) -> None:
        """`rows` read so far; `done` units of the input consumed (bytes or rows)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = rows / (now - self.start) if now > self.start else 0.0
        if self._bar is not None:
            completed = done if done is not None else rows
            self._bar.update(self._task, completed=completed, rows=rows, rate=rate)
        elif now - self._last_log >= self.log_every:
            self._last_log = now
            share = ""
            if self.total and done is not None:
                share = f" ({100 * min(done / self.total, 1):.0f}% of the input)"
            print(f"scorehouse: {rows:,} rows read{share}, {rate:,.0f} rows/s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
