"""Drift over 1,000,000 logged rows x 13 columns (the demo's 12 inputs and the model's score)
against the training baseline: scorehouse's sketches vs Evidently's DataDriftPreset on the
same rows, with two columns shifted; peak memory at 10M rows vs 1M; per-row cost of the
live state.

Evidently 0.7 needs pandas<3, so it runs in a venv of its own (--evidently-python, default
/work/bench-venv/evidently/bin/python: `python3 -m venv` + pip install 'evidently==0.7.*'
'pandas<3'), in a subprocess that reads the same rows from Parquet; both sides are timed on
compute only (data in memory).

    python bench/bench_drift.py [--rows 1000000] [--memory-rows 10000000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scorehouse  # noqa: E402
from scorehouse.demo import churn_frame, train_pipeline  # noqa: E402
from scorehouse.demo.data import TARGET  # noqa: E402
from scorehouse.monitor import (  # noqa: E402
    baseline_reference,
    dataset_drift,
    empty_state,
    training_baseline,
)

SCORE = "prediction.probability_yes"
SHIFTED = ["monthly_charges", "contract"]
CHUNK = 500_000
EVIDENTLY = "/work/bench-venv/evidently/bin/python"


def shift(f: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Two columns shifted: charges up 30%, the contract mix turned towards two-year."""
    rng = np.random.default_rng(seed)
    f = f.copy()
    f["monthly_charges"] = f["monthly_charges"] * 1.3
    f["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(f),
                               p=[0.25, 0.25, 0.5])
    return f


def logged(scorer: scorehouse.Scorer, f: pd.DataFrame) -> pd.DataFrame:
    """The 13 logged columns: the inputs and the model's score."""
    out = f.drop(columns=[TARGET], errors="ignore").copy()
    out[SCORE] = scorer.predict(out).to_pandas()["probability_yes"].to_numpy()
    return out


def ours(scorer: scorehouse.Scorer, rows: pd.DataFrame) -> tuple[float, list[str]]:
    """Seconds to sketch `rows` in chunks and compute drift against the baseline."""
    baseline = training_baseline(scorer)
    columns = {k: rows[k].to_numpy() for k in rows.columns}
    start = time.perf_counter()
    state = empty_state(baseline, scorer.schema)
    for at in range(0, len(rows), CHUNK):
        state.update({k: v[at:at + CHUNK] for k, v in columns.items()})
    result = dataset_drift(state, baseline_reference(baseline, scorer.schema))
    seconds = time.perf_counter() - start
    drifted = [c.column for c in result.columns if c.drifted]
    return seconds, drifted


EVIDENTLY_CHILD = r"""
import json, sys, time
import pandas as pd
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
cats = [c for c in ref.columns if ref[c].dtype == object]
dd = DataDefinition(numerical_columns=[c for c in ref.columns if c not in cats],
                    categorical_columns=cats)
start = time.perf_counter()
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd),
                                       Dataset.from_pandas(ref, data_definition=dd))
seconds = time.perf_counter() - start
drifted = []
for m in snap.dict()["metrics"]:
    cfg = m["config"]
    if cfg["type"].endswith("ValueDrift"):
        test = "p_value" in cfg["method"]
        if (m["value"] < cfg["threshold"]) if test else (m["value"] >= cfg["threshold"]):
            drifted.append(cfg["column"])
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"seconds": seconds, "drifted": drifted, "peak_mb": int(hwm) / 1024,
                  "version": __import__("evidently").__version__}))
"""


def evidently(python: str, reference: pd.DataFrame, current: pd.DataFrame
              ) -> dict[str, object] | str:
    """Evidently's figures from its venv, or why it could not run."""
    if not Path(python).exists():
        return f"{python} not found"
    with tempfile.TemporaryDirectory() as tmp:
        ref, cur = Path(tmp) / "ref.parquet", Path(tmp) / "cur.parquet"
        reference.to_parquet(ref)
        current.to_parquet(cur)
        run = subprocess.run([python, "-c", EVIDENTLY_CHILD, str(ref), str(cur)],
                             capture_output=True, text=True)
    if run.returncode:
        return run.stderr.strip().splitlines()[-1]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def memory_child(artifact: str, rows: int) -> None:
    """Sketch `rows` generated rows in chunks in this process; print its peak memory."""
    scorer = scorehouse.load(artifact, trust=True)
    baseline = training_baseline(scorer)
    state = empty_state(baseline, scorer.schema)
    for i, at in enumerate(range(0, rows, CHUNK)):
        f = shift(churn_frame(min(CHUNK, rows - at), seed=100 + i), seed=i)
        state.update({k: f[k].to_numpy() for k in f.columns if k != TARGET})
    dataset_drift(state, baseline_reference(baseline, scorer.schema))
    print(json.dumps({"rows": rows, "peak_mb": vm_hwm_mb()}))


def vm_hwm_mb() -> float:
    """This process's peak resident memory (VmHWM): unlike ru_maxrss, which Linux carries
    over from the parent through fork and exec, it starts afresh in a new program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb(artifact: Path, rows: int) -> float:
    """Peak RSS of a fresh process sketching `rows` rows."""
    run = subprocess.run([sys.executable, __file__, "--memory-child", str(artifact),
                          "--rows", str(rows)], capture_output=True, text=True, check=True)
    return float(json.loads(run.stdout.strip().splitlines()[-1])["peak_mb"])


def live_cost(scorer: scorehouse.Scorer, rows: pd.DataFrame, calls: int = 20_000
              ) -> tuple[float, float]:
    """µs per row the live state adds: the hook on single-row calls (buffered, flushes
    included), and per row of 1,000-row batches."""
    state = empty_state(training_baseline(scorer), scorer.schema)
    records = rows.head(500).astype(object).where(rows.head(500).notna(), None)
    events = []
    scorer.add_hook(events.append)
    for record in records.drop(columns=[SCORE]).to_dict("records"):
        scorer.predict(record)
    scorer.predict(rows.head(1000).drop(columns=[SCORE]))
    scorer.hooks.clear()
    singles, batch = events[:-1], events[-1]
    start = time.perf_counter()
    for i in range(calls):
        state.observe(singles[i % len(singles)])
    state.flush()
    single = (time.perf_counter() - start) / calls * 1e6
    start = time.perf_counter()
    for _ in range(50):
        state.observe(batch)
    return single, (time.perf_counter() - start) / (50 * 1000) * 1e6


def measure(args: argparse.Namespace) -> dict[str, object]:
    """Every figure of the section."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        training = churn_frame(20_000, seed=7)
        artifact = scorehouse.package(train_pipeline(training), training, name="churn",
                                      target=TARGET, path=Path(tmp) / "churn.shz")
        scorer = scorehouse.load(artifact, trust=True)
        reference = logged(scorer, training)
        current = logged(scorer, shift(churn_frame(args.rows, seed=11)))
        out["ours_seconds"], out["ours_drifted"] = ours(scorer, current)
        out["evidently"] = evidently(args.evidently_python, reference, current)
        out["peak_1m"] = peak_mb(artifact, 1_000_000)
        out["peak_big"] = peak_mb(artifact, args.memory_rows)
        out["live_single_us"], out["live_batch_us"] = live_cost(scorer, current)
    return out


def section(args: argparse.Namespace, r: dict[str, object]) -> str:
    """The BENCHMARKS.md section of the figures `r`."""
    from report import machine

    ev = r["evidently"]
    ours_s = float(r["ours_seconds"])  # type: ignore[arg-type]
    if isinstance(ev, dict):
        ev_s = float(ev["seconds"])
        ev_row = (f"| drift, {args.rows:,} rows x 13 columns, s | {ours_s:.2f} | {ev_s:.2f} "
                  f"(Evidently {ev['version']} `DataDriftPreset`) | {ev_s / ours_s:.1f}x | "
                  f">= 10x | {'yes' if ev_s / ours_s >= 10 else 'NO'} |")
        same = sorted(r["ours_drifted"]) == sorted(ev["drifted"])  # type: ignore[arg-type]
        drifted = (f"Drifted columns, scorehouse: {', '.join(sorted(r['ours_drifted']))}; "  # type: ignore[arg-type]
                   f"Evidently: {', '.join(sorted(ev['drifted']))} "
                   f"({'the same' if same else 'DIFFERENT'}; shifted: {', '.join(SHIFTED)}). "
                   f"Evidently's peak memory: {ev['peak_mb']:.0f} MB.")
    else:
        ev_row = f"| drift, {args.rows:,} rows x 13 columns, s | {ours_s:.2f} | not run: {ev} | | >= 10x | |"
        drifted = f"Drifted columns, scorehouse: {', '.join(r['ours_drifted'])}."  # type: ignore[arg-type]
    big, small = float(r["peak_big"]), float(r["peak_1m"])  # type: ignore[arg-type]
    single, batch = float(r["live_single_us"]), float(r["live_batch_us"])  # type: ignore[arg-type]
    title = ("## Drift: sketches against the training baseline (issue 21; goals: >= 10x "
             "Evidently at 1M rows, same drifted columns; peak memory at 10M rows <= 1.2x that "
             "at 1M; live state < 5 µs per row)")
    mem = (f"| peak memory, {args.memory_rows:,} rows vs 1,000,000 (chunks of {CHUNK:,}, fresh "
           f"process each), MB | {big:.0f} vs {small:.0f} | | {big / small:.2f}x | <= 1.2x | "
           f"{'yes' if big / small <= 1.2 else 'NO'} |")
    live = (f"| live state, single-row calls (hook, buffered), µs per row | {single:.2f} | | | "
            f"< 5 µs | {'yes' if single < 5 else 'NO'} |")
    return f"""{title}

`python bench/bench_drift.py` on {machine()}.

Rows: the demo's 12 inputs and the model's score (`probability_yes`) of {args.rows:,} rows from
the demo generator with two columns shifted (monthly charges x1.3; the contract mix moved towards
two-year), against a model trained and packaged on 20,000 rows. scorehouse: sketches on the
baseline's bins, updated in {CHUNK:,}-row chunks, then every column's drift
(`monitor.dataset_drift`, default methods). Evidently: `Report([DataDriftPreset()])` with the
training rows and their scores as reference, default methods, in its own venv (pandas<3).
Both timed on compute only, data in memory.

| measure | scorehouse | baseline | ratio | goal | met |
|---|---|---|---|---|---|
{ev_row}
{mem}
{live}
| live state, 1,000-row calls, µs per row | {batch:.3f} | | | < 5 µs | {'yes' if batch < 5 else 'NO'} |

{drifted}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--memory-rows", type=int, default=10_000_000)
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--evidently-python", default=EVIDENTLY)
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.rows)
        return
    body = section(args, measure(args))
    if not args.no_write:
        from report import write_section

        write_section("drift", body)
    print(body)


if __name__ == "__main__":
    main()
