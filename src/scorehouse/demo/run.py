"""`scorehouse demo`: generate churn data, train, package, register, promote, score a file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifact import read as read_artifact
from ..packaging import package
from ..packaging.parity import runtime_summary
from ..registry import Registry
from ..scorer.runs import RunManifest
from .data import TARGET, churn_frame, dirty_batch


def preprocessor(X: pd.DataFrame, dense: bool = False) -> Any:
    """Median-impute and scale numbers; impute and one-hot encode strings (sparse unless dense)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if X[c].dtype.kind in "if"]
    categorical = [c for c in X.columns if c not in numeric]
    return ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), numeric),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore",
                                                   sparse_output=not dense))]), categorical),
    ])


def train_pipeline(frame: pd.DataFrame) -> Any:
    """The data scientist's part: impute, scale, one-hot, random forest."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    X = frame.drop(columns=[TARGET])
    model = Pipeline([("features", preprocessor(X)), ("forest", RandomForestClassifier(
        n_estimators=100, max_depth=10, min_samples_leaf=5, n_jobs=-1, random_state=0))])
    return model.fit(X, frame[TARGET])


def score_file(scorer: Any, source: Path, scores: Path, rejects: Path,
               manifest: Path) -> RunManifest:
    """Score a CSV with the batch job `scorehouse score` runs, keeping the customer id."""
    from ..batch import BatchJob, RunOptions, run_job

    return run_job(scorer, BatchJob(str(source), str(scores),
                                    RunOptions(keep=["customer_id"], max_reject_rate=1.0),
                                    rejects=rejects, manifest=manifest, progress=False))


def run_demo(workdir: Path, registry: Registry, rows: int = 20_000,
             say: Any = print) -> dict[str, Any]:
    """Run the whole flow in `workdir`; returns what happened (for --json)."""
    from sklearn.metrics import roc_auc_score

    t0 = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    data = churn_frame(rows + 5_000)
    train, fresh = data.iloc[:rows].reset_index(drop=True), data.iloc[rows:].reset_index(drop=True)
    train_path = workdir / "train.parquet"
    train.to_parquet(train_path, index=False)
    say(f"1. generated {len(train):,} customers ({len(train.columns) - 1} features, "
        f"{train.isna().any().sum()} columns with gaps) -> {train_path}")

    model = train_pipeline(train)
    holdout = fresh.drop(columns=[TARGET])
    auc = roc_auc_score(fresh[TARGET] == "yes", model.predict_proba(holdout)[:, 1])
    say(f"2. trained a scikit-learn pipeline (impute + scale + one-hot + 100-tree forest); "
        f"hold-out AUC {auc:.3f}")

    artifact = package(model, train_path, name="churn", target=TARGET,
                       path=workdir / "churn.shz", metrics={"holdout_roc_auc": auc},
                       description="Customer churn, scorehouse demo")
    say(f"3. packaged -> {artifact} ({artifact.stat().st_size / 1e6:.1f} MB, schema, "
        "baseline and lineage inside)")
    say(f"   {runtime_summary(read_artifact(artifact, require_trust=False).manifest)}")

    mv = registry.register(artifact, description="demo run")
    move = registry.promote(mv.ref, "production", reason="demo: first model in production")
    say(f"4. registered {mv.ref} and promoted it to production "
        f"(was {move['from_version'] or 'unset'})")

    batch_path = workdir / "new_customers.csv"
    dirty_batch(fresh).to_csv(batch_path, index=False)
    scorer = registry.load("churn@production")
    scores_path, rejects_path = workdir / "scores.csv", workdir / "rejects.csv"
    run = score_file(scorer, batch_path, scores_path, rejects_path, workdir / "run.json").to_dict()
    c = run["counts"]
    s = {"model": scorer.name, "version": scorer.version, **c, "flags": run["flags"],
         "rejects_by_column": run["rejects_by_column"]}
    say(f"5. scored {batch_path.name} (the batch job: scorehouse score churn@production …): "
        f"read {c['read']:,}, scored {c['scored']:,}, rejected {c['rejected']} "
        f"(-> {rejects_path.name}), flagged {c['flagged']} {s['flags']} -> {scores_path}")
    return {"workdir": str(workdir), "artifact": str(artifact), "version": mv.ref,
            "holdout_roc_auc": auc, "scores": str(scores_path), "rejects": str(rejects_path),
            "summary": s, "seconds": round(time.perf_counter() - t0, 2)}
