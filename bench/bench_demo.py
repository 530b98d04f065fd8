"""The main job's figure: `scorehouse demo` must finish in under a minute.

Baseline, same run: the steps a data scientist would do by hand with no scorehouse at all
(generate the data, train the same pipeline, joblib dump + load, score the CSV with pandas
and write it). The ratio is scorehouse's time over the baseline's: the price of the schema,
baseline profile, lineage, registry and validation that scorehouse adds.

Run: python bench/bench_demo.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402


def demo_seconds(workdir: Path) -> float:
    env = dict(os.environ, SCOREHOUSE_HOME=str(workdir / "home"))
    env.pop("SCOREHOUSE_REGISTRY", None)
    t = time.perf_counter()
    # The script beside this interpreter (a venv's), so the bench runs without activating it.
    script = shutil.which("scorehouse", path=str(Path(sys.executable).parent)) or "scorehouse"
    subprocess.run([script, "demo", "--dir", str(workdir / "demo"), "--json"], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def by_hand_seconds(workdir: Path) -> float:
    code = f"""
import joblib, pandas as pd
from scorehouse.demo import churn_frame, dirty_batch, train_pipeline
from scorehouse.demo.data import TARGET
data = churn_frame(25_000)
train, fresh = data.iloc[:20_000], data.iloc[20_000:].reset_index(drop=True)
model = train_pipeline(train)
joblib.dump(model, {str(workdir / 'model.joblib')!r})
dirty_batch(fresh).to_csv({str(workdir / 'in.csv')!r}, index=False)
model = joblib.load({str(workdir / 'model.joblib')!r})
batch = pd.read_csv({str(workdir / 'in.csv')!r})
X = batch.drop(columns=['customer_id'])
X['tenure'] = pd.to_numeric(X['tenure'], errors='coerce')   # by hand: bad values become NaN
out = pd.DataFrame(model.predict_proba(X), columns=model.classes_)
out.insert(0, 'customer_id', batch['customer_id'])
out.to_csv({str(workdir / 'out.csv')!r}, index=False)
"""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    demo, hand = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            demo.append(demo_seconds(Path(d)))
            hand.append(by_hand_seconds(Path(d)))
    d, h = statistics.median(demo), statistics.median(hand)
    body = f"""## Main job: `scorehouse demo` (issue 2; goal: under 60 s)

`python bench/bench_demo.py --repeat {args.repeat}` on {machine()}; medians of {args.repeat} runs,
each a fresh process and an empty registry.

| what | seconds |
|---|---|
| `scorehouse demo`: generate 20k rows, train, package, register, promote, score 5k rows | {d:.1f} |
| baseline: the same by hand (train, joblib dump/load, pandas read_csv + predict_proba + to_csv) | {h:.1f} |
| ratio scorehouse / by hand | {d / h:.2f} |
| goal met (< 60 s) | {"yes" if d < 60 else "NO"} |
"""
    write_section("demo", body)
    print(body)


if __name__ == "__main__":
    main()
