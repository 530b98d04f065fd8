"""`scorehouse demo --drift`: after the demo, the model in production meets customers as
in training, then customers whose charges and ages moved; the prediction log records both,
and a monitoring report shows the drift."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..registry import Registry
from .data import TARGET, churn_frame

#: The columns `shifted` moves, and how.
SHIFTED = ("age", "monthly_charges")


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with prices up by half and every customer 30 years older."""
    out = frame.copy()
    out["monthly_charges"] = out["monthly_charges"] * 1.5
    out["age"] = out["age"] + 30
    return out


def run_drift(workdir: Path, registry: Registry, rows: int = 5_000,
              say: Any = print) -> dict[str, Any]:
    """Score `rows` clean then `rows` shifted customers with churn@production, logging
    every row to the default prediction log ($SCOREHOUSE_HOME/predictions), and write
    `workdir/report.html` with the two as windows. Returns what happened (for --json).

    Raises:
        NotFoundError: no churn@production (run the demo first).
    """
    from ..monitor import PredictionLogger
    from ..monitor.log import Channel
    from ..reports import build_report, log_report

    t0 = time.perf_counter()
    scorer = registry.load("churn@production")
    start = dt.datetime.now(dt.timezone.utc)
    clean = churn_frame(rows, seed=101).drop(columns=[TARGET])
    with PredictionLogger() as logger:  # closing it writes every queued row
        logger.attach(scorer, Channel.SCORE)
        scorer.predict(clean)
        scorer.predict(shifted(churn_frame(rows, seed=102).drop(columns=[TARGET])))
    say(f"6. scored {rows:,} customers as in training, then {rows:,} with "
        f"{' and '.join(SHIFTED)} shifted, logging every row -> $SCOREHOUSE_HOME/predictions")
    window = f"{rows}rows"
    report = log_report(scorer, window=window, since=start)
    path = workdir / "report.html"
    build_report(report, path)
    drifted = list(report.drift.drifted_columns)
    first = report.drift_series[0][1].drifted_columns
    say(f"7. monitoring report -> {path}\n   drifted columns: {', '.join(drifted) or 'none'} "
        f"in the shifted window ({', '.join(first) or 'none'} in the first)")
    return {"report": str(path), "drifted_columns": drifted, "shifted": list(SHIFTED),
            "window": window, "since": start.isoformat(),
            "seconds": round(time.perf_counter() - t0, 2)}


__all__ = ["SHIFTED", "run_drift", "shifted"]
