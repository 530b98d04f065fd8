"""The compiled runtime's figures: single-row latency, 1M-row batch throughput, scorer overhead.

Three models trained on 20k rows of the 13-column churn data (the demo's 12 features plus a
`device` string column; numbers, strings and gaps): a scikit-learn pipeline (median/most
frequent imputation, scaling, one-hot) ending in a 100-tree random forest (max_depth=10), the
same preprocessing ending in a 300-tree LightGBM classifier, and a 300-tree LightGBM after a
ColumnTransformer whose imputed one-hot block comes before the numbers (the column order that
kept such pipelines from compiling until issue 17). Each is packaged with
`scorehouse.package` (which compiles it to ONNX; the artifact must default to the "onnx"
runtime) and measured three ways, all in one process:

1. Single row: p50/p99 of `scorer.predict(row_dict)` over held-out rows given as plain dicts
   (None for missing). Baseline: the native pipeline's `predict_proba` on a one-row DataFrame
   (`X.iloc[[i]]`, built before timing). The native forest runs with n_jobs=1 here: n_jobs=-1
   would start a thread pool on every call and inflate the ratio. Goals: native p50 /
   scorehouse p50 >= 50 (forest), >= 20 (LightGBM).
2. Batch: `scorer.predict(table)` on a 1,000,000-row Arrow table (best of 3). Baseline: the
   native `predict_proba` on the same rows as a pandas DataFrame (best of 2); for the forest
   both n_jobs=1 and n_jobs=-1 (one thread per core) are timed and the faster is the
   baseline; LightGBM runs with its default threads (OpenMP, one per core). scorehouse uses
   every core too: batches of 32k rows and more run as 8,192-row chunks on one thread per
   usable CPU (see `scorehouse.runtime.onnx`). Goal: scorehouse rows/s / native rows/s >= 1.
3. Scorer overhead: `scorer.predict(row_dict)` against `scorer.runtime.session.run(None, feed)`
   with the row's feed (numpy (1, 1) arrays) prebuilt, interleaved call by call over the same
   rows. Goal: p50 difference < 30 us.

Run: python bench/bench_runtime.py [--quick] [--models forest,lightgbm,onehot_lightgbm]
(--quick: 100k batch rows, fewer calls, prints only and leaves BENCHMARKS.md alone; with
--models, only those models' subsections of the section are replaced, each naming its run)
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402

DEVICES = ["ios", "android", "web"]
TRAIN_ROWS = 20_000
GOAL_ROW = {"forest": 50.0, "lightgbm": 20.0, "onehot_lightgbm": 20.0}
NAMES = {"forest": "random forest (100 trees, depth 10)", "lightgbm": "LightGBM (300 trees)",
         "onehot_lightgbm": "LightGBM (300 trees) after one-hot first"}
GOAL_BATCH = 1.0
GOAL_OVERHEAD_US = 30.0


def frame(n: int, seed: int) -> pd.DataFrame:
    """`n` rows of churn data with 13 features: the demo's 12 and a seeded `device` column."""
    from scorehouse.demo.data import TARGET, churn_frame

    data = churn_frame(n, seed=seed)
    device = np.random.default_rng(seed + 1000).choice(DEVICES, n, p=[0.4, 0.4, 0.2])
    data.insert(len(data.columns) - 1, "device", device)
    assert data.columns[-1] == TARGET and len(data.columns) == 14
    return data


def train(kind: str, data: pd.DataFrame) -> Any:
    from sklearn.pipeline import Pipeline

    from scorehouse.demo.data import TARGET
    from scorehouse.demo.run import preprocessor

    X = data.drop(columns=[TARGET])
    pre = preprocessor(X) if kind != "onehot_lightgbm" else onehot_first(X)
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier
        est = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1)
    else:
        import lightgbm
        est = lightgbm.LGBMClassifier(n_estimators=300, verbose=-1)
    return Pipeline([("features", pre), ("model", est)]).fit(X, data[TARGET])


def onehot_first(X: pd.DataFrame) -> Any:
    """Impute + one-hot the text columns, then median-impute the numbers (text block first)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = [c for c in X.columns if X[c].dtype.kind in "if"]
    text = [c for c in X.columns if c not in numeric]
    return ColumnTransformer([
        ("text", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore"))]), text),
        ("numbers", SimpleImputer(strategy="median"), numeric)])


def records(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python dicts, None for missing (what a JSON request would carry)."""
    return X.astype(object).where(X.notna(), None).to_dict("records")


def feed_for(session: Any, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """The ONNX Runtime feed for one row: one (1, 1) array per input column."""
    feed = {}
    for i in session.get_inputs():
        v = row.get(i.name)
        if i.type == "tensor(string)":
            feed[i.name] = np.array([["" if v is None else v]], dtype=object)
        else:
            dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64}.get(i.type, np.float64)
            feed[i.name] = np.array([[math.nan if v is None else v]], dtype=dtype)
    return feed


def timed_us(fn: Any, args: list[Any], calls: int, warmup: int) -> np.ndarray:
    """Per-call latencies in microseconds of `fn(a)`, cycling through `args`."""
    for k in range(warmup):
        fn(args[k % len(args)])
    gc.collect()
    out = np.empty(calls)
    clock = time.perf_counter_ns
    for k in range(calls):
        a = args[k % len(args)]
        t = clock()
        fn(a)
        out[k] = clock() - t
    return out / 1e3


def best_seconds(fn: Any, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def overhead_us(scorer: Any, rows: list[dict[str, Any]], calls: int, warmup: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved per-call latencies (us): direct session.run vs scorer.predict, same rows."""
    session = scorer.runtime.session
    feeds = [feed_for(session, r) for r in rows]
    for k in range(warmup):
        session.run(None, feeds[k % len(rows)])
        scorer.predict(rows[k % len(rows)])
    gc.collect()
    direct, full = np.empty(calls), np.empty(calls)
    clock = time.perf_counter_ns
    for k in range(calls):
        j = k % len(rows)
        row, feed = rows[j], feeds[j]
        if k % 2:  # alternate which goes first so neither always gets the warmer cache
            t0 = clock()
            session.run(None, feed)
            t1 = clock()
            scorer.predict(row)
            t2 = clock()
            direct[k], full[k] = t1 - t0, t2 - t1
        else:
            t0 = clock()
            scorer.predict(row)
            t1 = clock()
            session.run(None, feed)
            t2 = clock()
            full[k], direct[k] = t1 - t0, t2 - t1
    return direct / 1e3, full / 1e3


def measure(kind: str, train_data: pd.DataFrame, holdout: pd.DataFrame, batch: pd.DataFrame,
            table: pa.Table, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import scorehouse
    from scorehouse.demo.data import TARGET

    say = lambda *a: print(f"[{kind}]", *a, flush=True)  # noqa: E731
    t = time.perf_counter()
    model = train(kind, train_data)
    say(f"trained in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    path = scorehouse.package(model, train_data, name=f"bench-{kind}", target=TARGET,
                              path=workdir / f"{kind}.shz")
    say(f"packaged in {time.perf_counter() - t:.1f} s")
    scorer = scorehouse.load(path, trust=True)
    assert scorer.runtime.name == "onnx", f"{kind}: default runtime is {scorer.runtime.name!r}"
    classes = list(model.classes_)
    assert classes == list(scorer.classes), (classes, scorer.classes)

    X = holdout.drop(columns=[TARGET]).iloc[: args.rows].reset_index(drop=True)
    rows = records(X)
    one_row_frames = [X.iloc[[i]] for i in range(len(X))]
    native_proba = model.predict_proba(X)
    got = np.vstack([scorer.predict(r).output.probabilities for r in rows])
    row_diff = float(np.abs(got - native_proba).max())

    # 1. single row
    sh = timed_us(scorer.predict, rows, args.calls, warmup=min(300, args.calls))
    nat = timed_us(model.predict_proba, one_row_frames, args.native_calls, warmup=20)
    say(f"single row p50 scorehouse {np.percentile(sh, 50):.0f} us, "
        f"native {np.percentile(nat, 50):.0f} us")

    # 2. batch
    result = scorer.predict(table)  # warm-up and check
    assert result.n_scored == len(batch), (result.n_scored, result.n_rejected, result.rejects[:3])
    sh_s = best_seconds(lambda: scorer.predict(table), args.repeat)
    say(f"batch scorehouse best {sh_s:.2f} s")
    native_batch = {}
    model.predict_proba(batch.iloc[:1000])
    native_batch["n_jobs=1" if kind == "forest" else "default threads"] = best_seconds(
        lambda: model.predict_proba(batch), args.native_repeat)
    if kind == "forest":
        model.set_params(model__n_jobs=-1)
        model.predict_proba(batch.iloc[:1000])
        native_batch["n_jobs=-1"] = best_seconds(lambda: model.predict_proba(batch),
                                                 args.native_repeat)
        model.set_params(model__n_jobs=1)
    say("batch native best " + ", ".join(f"{k}: {v:.2f} s" for k, v in native_batch.items()))
    batch_diff = float(np.abs(result.output.probabilities - model.predict_proba(batch)).max())

    # 3. scorer overhead over the bare session
    direct, full = overhead_us(scorer, rows[:200], args.calls, warmup=min(300, args.calls))

    best_native = min(native_batch, key=native_batch.get)
    n = len(batch)
    return {
        "model": kind, "artifact_mb": path.stat().st_size / 1e6,
        "row_sh_p50": float(np.percentile(sh, 50)), "row_sh_p99": float(np.percentile(sh, 99)),
        "row_nat_p50": float(np.percentile(nat, 50)), "row_nat_p99": float(np.percentile(nat, 99)),
        "row_calls": len(sh), "row_native_calls": len(nat), "row_distinct": len(rows),
        "batch_rows": n, "batch_sh_rps": n / sh_s,
        "batch_native": {k: n / v for k, v in native_batch.items()}, "batch_best_native": best_native,
        "batch_threads": batch_threads(scorer, n),
        "ovh_direct_p50": float(np.percentile(direct, 50)),
        "ovh_full_p50": float(np.percentile(full, 50)),
        "row_max_diff": row_diff, "batch_max_diff": batch_diff,
    }


def batch_threads(scorer: Any, n: int) -> str:
    """How the compiled runtime spreads an n-row batch over the CPUs."""
    from scorehouse.runtime import onnx as onnx_runtime

    if n >= onnx_runtime.PARALLEL_MIN_ROWS and scorer.runtime.workers > 1:
        return (f"{onnx_runtime.CHUNK_ROWS:,}-row chunks on {scorer.runtime.workers} threads, "
                "each through a single-threaded ORT session")
    return "one ORT session run on ORT's default intra-op threads"


def revision() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               cwd=root, check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown revision"
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def table_for(r: dict[str, Any]) -> str:
    kind = r["model"]
    row_ratio = r["row_nat_p50"] / r["row_sh_p50"]
    nat_rps = r["batch_native"][r["batch_best_native"]]
    batch_ratio = r["batch_sh_rps"] / nat_rps
    ovh = r["ovh_full_p50"] - r["ovh_direct_p50"]
    goal = GOAL_ROW[kind]
    natives = "; ".join(f"{k} {v:,.0f}" for k, v in r["batch_native"].items())
    lines = [
        "| measure | scorehouse (onnx) | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|",
        f"| single row p50, µs | {r['row_sh_p50']:.0f} | {r['row_nat_p50']:.0f} (native predict_proba) "
        f"| {row_ratio:.1f}x | >= {goal:.0f}x | {yes(row_ratio >= goal)} |",
        f"| single row p99, µs | {r['row_sh_p99']:.0f} | {r['row_nat_p99']:.0f} "
        f"| {r['row_nat_p99'] / r['row_sh_p99']:.1f}x | | |",
        f"| batch {r['batch_rows']:,} rows, rows/s | {r['batch_sh_rps']:,.0f} | {nat_rps:,.0f} "
        f"(native, {r['batch_best_native']}) | {batch_ratio:.2f}x | >= {GOAL_BATCH:.1f}x "
        f"| {yes(batch_ratio >= GOAL_BATCH)} |",
        f"| scorer overhead, p50 µs | {r['ovh_full_p50']:.0f} (`scorer.predict(dict)`) "
        f"| {r['ovh_direct_p50']:.0f} (`session.run`) | +{ovh:.0f} µs | < {GOAL_OVERHEAD_US:.0f} µs "
        f"| {yes(ovh < GOAL_OVERHEAD_US)} |",
    ]
    notes = (f"Native batch rows/s: {natives}. scorehouse batch: {r['batch_threads']}. "
             f"Max |probability difference| against native: "
             f"{r['row_max_diff']:.1e} (single rows), {r['batch_max_diff']:.1e} (batch). "
             f"Artifact {r['artifact_mb']:.1f} MB.")
    return "\n".join(lines) + "\n\n" + notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100k batch rows, fewer calls; print only")
    ap.add_argument("--models", default=",".join(NAMES),
                    help=f"comma-separated, of: {','.join(NAMES)}")
    args = ap.parse_args()
    args.batch = 100_000 if args.quick else 1_000_000
    args.rows = 200 if args.quick else 500
    args.calls = 500 if args.quick else 2000
    args.native_calls = 60 if args.quick else 300
    args.repeat = 2 if args.quick else 3
    args.native_repeat = 1 if args.quick else 2
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    if set(kinds) - set(NAMES):
        ap.error(f"unknown model(s) {sorted(set(kinds) - set(NAMES))}; choose from {list(NAMES)}")

    from scorehouse.demo.data import TARGET

    data = frame(TRAIN_ROWS + 5_000, seed=7)
    train_data = data.iloc[:TRAIN_ROWS].reset_index(drop=True)
    holdout = data.iloc[TRAIN_ROWS:].reset_index(drop=True)
    t = time.perf_counter()
    batch = frame(args.batch, seed=21).drop(columns=[TARGET])
    table = pa.Table.from_pandas(batch, preserve_index=False)
    print(f"built the {len(batch):,}-row batch in {time.perf_counter() - t:.1f} s", flush=True)

    rev = revision()
    results = []
    with tempfile.TemporaryDirectory() as d:
        for kind in kinds:
            results.append(measure(kind, train_data, holdout, batch, table, args, Path(d)))
    if revision() != rev:  # someone committed or edited src/ while this ran: say so
        rev = f"{rev} (src/ changed during the run: now {revision()})"

    cmd = "python bench/bench_runtime.py" + (" --quick" if args.quick else "")
    if kinds != list(NAMES):
        cmd += f" --models {','.join(kinds)}"
    run = f"`{cmd}` on {machine()}, {rev}."
    measured = {r["model"]: f"### {NAMES[r['model']]}\n\n{run}\n\n{table_for(r)}"
                for r in results}
    parts = [
        "## Compiled runtime: single row, 1M-row batch, scorer overhead (goals: single row "
        ">= 50x native for the forest and >= 20x for LightGBM; batch >= 1x native; overhead "
        "< 30 µs)",
        f"Models trained on {TRAIN_ROWS:,} rows of 13 mixed columns (the demo's 12 plus a "
        "`device` string column), packaged with `scorehouse.package`; the artifacts default "
        "to the ONNX runtime. The forest and the first LightGBM share the demo's imputation + "
        "scaling + one-hot preprocessing (numbers first); the second LightGBM has imputation + "
        "one-hot on the text columns first, then imputed numbers. Each model's subsection "
        "names the run that measured it.",
        f"Method: single-row figures are {args.calls:,} `scorer.predict(dict)` calls cycling "
        f"through {args.rows} held-out rows (plain dicts, None for missing) against "
        f"{args.native_calls} `predict_proba` calls on prebuilt one-row DataFrames, with the native "
        "forest at n_jobs=1 (n_jobs=-1 would add thread start-up to every call); batch figures "
        f"are the best of {args.repeat} `scorer.predict(arrow_table)` runs against the best of "
        f"{args.native_repeat} native `predict_proba(DataFrame)` runs on the same rows, the "
        "faster native setting being the baseline (the forest at n_jobs=1 and at n_jobs=-1, one "
        f"thread per core; LightGBM at its default, one OpenMP thread per core; {os.cpu_count()} "
        "cores here); overhead is `scorer.predict(dict)` against "
        "`session.run(None, feed)` with the feed prebuilt, interleaved call by call (the scorer "
        "fetches only the probabilities output, `session.run(None, ...)` the labels too).",
    ]
    kept = previous_subsections()
    for kind in NAMES:  # models not measured in this run keep their last figures
        if kind in measured or kind in kept:
            parts.append(measured.get(kind) or kept[kind])
    body = "\n\n".join(parts) + "\n"
    print()
    print(body)
    if not args.quick:
        write_section("runtime", body)
        print("wrote the 'runtime' section of BENCHMARKS.md")


def previous_subsections() -> dict[str, str]:
    """The runtime section's current per-model subsections (`### name` to the next one)."""
    from report import BENCHMARKS

    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    start, end = "<!-- runtime:start -->", "<!-- runtime:end -->"
    if start not in text:
        return {}
    section = text[text.index(start) + len(start): text.index(end)]
    found = {}
    for chunk in section.split("\n### ")[1:]:
        title, _, rest = chunk.partition("\n")
        kind = next((k for k, name in NAMES.items() if name == title.strip()), None)
        if kind is not None:
            found[kind] = f"### {title.strip()}\n{rest}".strip()
    return found


if __name__ == "__main__":
    main()
