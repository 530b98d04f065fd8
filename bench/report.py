"""Write one benchmark's section into BENCHMARKS.md, replacing that section's previous figures."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEach section is written by the script it names, which measures "
          "scorehouse and a baseline in the same run. Re-run a script to refresh its section.\n")


def machine() -> str:
    """A one-line description of where the figures were taken, with the CPU's speed."""
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, {platform.machine()} ({_cpu()}; a 10M-step Python loop "
            f"takes {_loop_seconds():.2f} s), {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")


def _cpu() -> str:
    # Machines of one kind differ in speed from day to day: absolute figures (events/s,
    # milliseconds) only compare between runs with a similar loop time.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _loop_seconds() -> float:
    import time

    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


def write_section(key: str, body: str) -> None:
    """Replace (or append) the section marked `key` in BENCHMARKS.md with `body`."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + \
        "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)
