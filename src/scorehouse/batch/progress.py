"""Progress of a batch run: a rich bar with rows/s and ETA on a terminal, log lines otherwise.

Progress counts rows *scored* (written out or rejected), never input consumed: the reader
runs ahead of scoring by a few chunks, and a file's bytes can all be read while most of its
rows are still to score. When the input's size is known only in bytes, the total number of
rows is estimated from the rows parsed per byte so far, and refined as the run goes on.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

#: Seconds between progress lines when stderr is not a terminal (cron, Airflow logs).
LOG_EVERY = 30.0


class Progress:
    """Reports rows scored against the input's (estimated) number of rows.

    `total` is the input's size in `unit`: 'rows' (exact) or 'bytes' (rows then estimated).
    """

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
        self._task = self._bar.add_task("score", total=self.rows_expected(0, None),
                                        rows=0, rate=0.0)

    def rows_expected(self, parsed: int, done: int | None) -> int | None:
        """The input's number of rows: exact for a 'rows' total; for 'bytes', rows parsed so
        far scaled by the share of the input consumed (None until something was read)."""
        if self.total is None:
            return None
        if self.unit == "rows":
            return self.total
        if not done or not parsed:
            return None
        return max(parsed, round(parsed * self.total / done))

    def update(self, scored: int, parsed: int | None = None, done: int | None = None) -> None:
        """`scored` rows accounted so far (scored or rejected); `parsed` rows the reader has
        produced; `done` units of the input the reader consumed (bytes or rows)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = scored / (now - self.start) if now > self.start else 0.0
        expected = self.rows_expected(parsed if parsed is not None else scored, done)
        if self._bar is not None:
            self._bar.update(self._task, completed=scored, total=expected, rows=scored, rate=rate)
        elif now - self._last_log >= self.log_every:
            self._last_log = now
            share = ""
            if expected:
                share = f" ({100 * min(scored / expected, 1):.0f}% of about {expected:,} rows)"
            print(f"scorehouse: {scored:,} rows scored{share}, {rate:,.0f} rows/s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
