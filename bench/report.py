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
    """A one-line description of where the figures were taken."""
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, {platform.machine()}, "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")


def write_section(key: str, body: str) -> None:
    """Replace (or append) the section marked `key` in BENCHMARKS.md with `body`."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + \
        "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)
