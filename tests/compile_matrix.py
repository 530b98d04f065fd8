"""The compile coverage matrix: which estimator x preprocessing combinations compile to ONNX.

One definition, used three ways:
- `tests/test_compile_matrix.py` packages every cell and asserts that it either compiles
  within the parity gate (0 label flips) or is declined with a reason naming a step of the
  user's model, and that the README's table is the one this matrix produces;
- `python tests/compile_matrix.py` prints the table and the figure (cells compiled / cells);
- `python tests/compile_matrix.py --write` also rewrites the README's table and the
  `compile` section of BENCHMARKS.md.

A cell is one estimator, one task (binary, multiclass, regression) and one preprocessing,
trained on `ROWS` rows of a small synthetic frame (numbers, a text column, a text column with
gaps). Combinations the native library itself refuses (HistGradientBoosting on a sparse
matrix) are not cells: `applies` says which and why.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROWS = 300
NUMBERS = ["size", "weight", "age"]
TARGET = "y"
TASKS = ("binary", "multiclass", "regression")
ROOT = Path(__file__).resolve().parent.parent
README_MARKERS = ("<!-- compile-matrix:start -->", "<!-- compile-matrix:end -->")


def frame(task: str, seed: int = 0) -> pd.DataFrame:
    """`ROWS` rows: three numbers, `color` (text), `plan` (text with gaps), target `y`.

    Classes are text ("no"/"yes", "low"/"mid"/"high"); `integer_labels` gives XGBoost's 0..k-1.
    """
    rng = np.random.default_rng(seed)
    n = ROWS
    df = pd.DataFrame({
        "color": rng.choice(["red", "green", "blue", "grey"], n),
        "plan": rng.choice(np.array(["basic", "gold", "pro", None], dtype=object), n,
                           p=[0.35, 0.3, 0.25, 0.1]),
        # Numbers of unit scale, so unscaled logistic regressions converge in few iterations.
        "size": rng.normal(1, 0.3, n).round(4),
        "weight": rng.normal(5, 1, n).round(3),
        "age": rng.integers(18, 80, n) / 10,
    })
    score = (3 * (df["size"] - 1) + 0.5 * (df["weight"] - 5) + (df["color"] == "red")
             - 0.8 * (df["plan"] == "gold") + rng.normal(0, 0.5, n))
    if task == "binary":
        df[TARGET] = np.where(score > score.median(), "yes", "no")
    elif task == "multiclass":
        df[TARGET] = pd.qcut(score, 3, labels=["low", "mid", "high"]).astype(str)
    else:
        df[TARGET] = (100 + 10 * score).round(2)
    return df


def integer_labels(y: pd.Series) -> pd.Series:
    """Text classes as 0..k-1 in sorted order (XGBoost's scikit-learn wrapper needs them)."""
    return y.map({c: i for i, c in enumerate(sorted(y.unique()))})


# --------------------------------------------------------------------------- estimators


@dataclass(frozen=True)
class Estimator:
    """One estimator family and the tasks it has."""

    name: str
    label: str
    tasks: tuple[str, ...]
    make: Callable[[str], Any]  # task -> an unfitted estimator


def _lgbm(task: str) -> Any:
    import lightgbm

    cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    return cls(n_estimators=20, num_leaves=8, min_child_samples=5, verbose=-1)


def _xgb(task: str) -> Any:
    import xgboost

    cls = xgboost.XGBRegressor if task == "regression" else xgboost.XGBClassifier
    return cls(n_estimators=20, max_depth=3, n_jobs=1)


def _sk(classifier: str, regressor: str, **params: Any) -> Callable[[str], Any]:
    def make(task: str) -> Any:
        import sklearn.ensemble
        import sklearn.linear_model
        import sklearn.tree

        name = regressor if task == "regression" else classifier
        for module in (sklearn.ensemble, sklearn.linear_model, sklearn.tree):
            if hasattr(module, name):
                return getattr(module, name)(**params)
        raise LookupError(name)

    return make


def _random(**params: Any) -> dict[str, Any]:
    return {"random_state": 0, **params}


ESTIMATORS = (
    Estimator("logistic_regression", "logistic regression", ("binary", "multiclass"),
              _sk("LogisticRegression", "", max_iter=2000)),
    Estimator("linear_regression", "linear regression", ("regression",),
              _sk("", "LinearRegression")),
    Estimator("ridge", "ridge regression", ("regression",), _sk("", "Ridge")),
    Estimator("decision_tree", "decision tree", TASKS,
              _sk("DecisionTreeClassifier", "DecisionTreeRegressor", **_random(max_depth=6))),
    Estimator("random_forest", "random forest", TASKS,
              _sk("RandomForestClassifier", "RandomForestRegressor",
                  **_random(n_estimators=10, max_depth=6))),
    Estimator("extra_trees", "extra trees", TASKS,
              _sk("ExtraTreesClassifier", "ExtraTreesRegressor",
                  **_random(n_estimators=10, max_depth=6))),
    Estimator("gradient_boosting", "gradient boosting", TASKS,
              _sk("GradientBoostingClassifier", "GradientBoostingRegressor",
                  **_random(n_estimators=20, max_depth=3))),
    Estimator("hist_gradient_boosting", "histogram gradient boosting", TASKS,
              _sk("HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
                  **_random(max_iter=20))),
    Estimator("lightgbm", "LightGBM", TASKS, _lgbm),
    Estimator("xgboost", "XGBoost", TASKS, _xgb),
)

# ------------------------------------------------------------------------ preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """One way of preparing the frame for the estimator."""

    name: str
    label: str
    columns: tuple[str, ...]
    wrap: Callable[[Any], Any]  # fitted-to-be estimator -> the model the user packages
    categories: bool = False  # text columns as pandas categories (LightGBM's native handling)


def _columns(*transformers: Any, sparse_threshold: float = 0.3) -> Any:
    from sklearn.compose import ColumnTransformer

    return ColumnTransformer(list(transformers), sparse_threshold=sparse_threshold)


def _pipeline(first: Any, est: Any, name: str = "features") -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([(name, first), ("model", est)])


def _onehot(sparse: bool) -> Callable[[Any], Any]:
    def wrap(est: Any) -> Any:
        from sklearn.preprocessing import OneHotEncoder

        # Text first: the one-hot block leads the concatenation (the order that used to
        # break), and with sparse one-hot the matrix the estimator gets stays sparse.
        return _pipeline(_columns(
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse), ["color"]),
            ("numbers", "passthrough", NUMBERS), sparse_threshold=1.0 if sparse else 0.0), est)

    return wrap


def _imputed_onehot(est: Any) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    text = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                     ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    return _pipeline(_columns(("text", text, ["color", "plan"]),
                              ("numbers", SimpleImputer(strategy="median"), NUMBERS)), est)


def _scaled(est: Any) -> Any:
    from sklearn.preprocessing import StandardScaler

    return _pipeline(StandardScaler(), est, name="scale")


def _ordinal(est: Any) -> Any:
    from sklearn.preprocessing import OrdinalEncoder

    return _pipeline(_columns(
        ("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
         ["color"]), ("numbers", "passthrough", NUMBERS)), est)


PREPROCESSINGS = (
    Preprocessing("numbers", "numbers only", tuple(NUMBERS), lambda est: est),
    Preprocessing("onehot_dense", "one-hot (dense)", ("color", *NUMBERS), _onehot(False)),
    Preprocessing("onehot_sparse", "one-hot (sparse)", ("color", *NUMBERS), _onehot(True)),
    Preprocessing("imputer_onehot", "imputer + one-hot, text with gaps",
                  ("color", "plan", *NUMBERS), _imputed_onehot),
    Preprocessing("scaler", "scaler", tuple(NUMBERS), _scaled),
    Preprocessing("ordinal", "ordinal encoder", ("color", *NUMBERS), _ordinal),
    Preprocessing("lightgbm_categories", "LightGBM pandas categories",
                  ("color", "plan", *NUMBERS), lambda est: est, categories=True),
)

# ------------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One estimator, task and preprocessing."""

    estimator: Estimator
    task: str
    preprocessing: Preprocessing

    @property
    def id(self) -> str:
        return f"{self.estimator.name}-{self.task}-{self.preprocessing.name}"

    def model_and_frame(self) -> tuple[Any, pd.DataFrame]:
        """The fitted model and the frame it is packaged with (features + target)."""
        df = frame(self.task)[[*self.preprocessing.columns, TARGET]]
        if self.preprocessing.categories:
            df = df.astype({c: "category" for c in ("color", "plan")})
        y = df[TARGET]
        if self.estimator.name == "xgboost" and self.task != "regression":
            y = df[TARGET] = integer_labels(y)
        model = self.preprocessing.wrap(self.estimator.make(self.task))
        model.fit(df.drop(columns=[TARGET]), y)
        return model, df


def applies(estimator: Estimator, preprocessing: Preprocessing) -> str | None:
    """None when the combination is a cell; otherwise why the native library refuses it."""
    if preprocessing.categories and estimator.name != "lightgbm":
        return "pandas categories are LightGBM's own input form"
    if preprocessing.name == "onehot_sparse" and estimator.name == "hist_gradient_boosting":
        return "HistGradientBoosting refuses sparse input"
    return None


def cells() -> list[Cell]:
    """Every cell of the matrix, in table order."""
    return [Cell(e, t, p) for e in ESTIMATORS for t in e.tasks for p in PREPROCESSINGS
            if applies(e, p) is None]


@dataclass(frozen=True)
class Outcome:
    """What packaging made of one cell."""

    cell: Cell
    compiled: bool
    step: str | None  # the user's step named when declined
    reason: str | None
    max_diff: float | None  # the parity gate's largest difference (relative for regression)
    label_flips: int
    seconds: float


def run_cell(cell: Cell, folder: Path) -> Outcome:
    """Fit, package (which compiles and runs the parity gate) and read the verdict."""
    start = time.perf_counter()
    model, df = cell.model_and_frame()
    return verdict(cell, package(cell, model, df, folder), start)


def package(cell: Cell, model: Any, df: pd.DataFrame, folder: Path) -> Path:
    """The cell's artifact, packaged with the default parity tolerance."""
    import scorehouse

    return scorehouse.package(model, df, name=cell.id.replace("_", "-"), target=TARGET,
                              path=folder / f"{cell.id}.shz")


def verdict(cell: Cell, path: Path, start: float) -> Outcome:
    """What the artifact's manifest says of its compilation."""
    from scorehouse import artifact as artifact_io

    compiled = artifact_io.read(path, trust=True).manifest.to_dict()["compiled"]
    parity = compiled.get("parity") or {}
    worst = max([*parity.get("max_abs_diff", {}).values(),
                 *parity.get("max_rel_diff", {}).values()], default=None) \
        if cell.task != "regression" else parity.get("max_rel_diff", {}).get("value")
    return Outcome(cell, compiled["status"] == "passed", compiled.get("step"),
                   compiled.get("reason"), worst, int(parity.get("label_flips", 0)),
                   time.perf_counter() - start)


# ----------------------------------------------------------------------------- reports


def _mark(outcome: Outcome | None, notes: dict[str, int]) -> str:
    if outcome is None:
        return "–"
    if outcome.compiled:
        return "yes"
    key = f"`{outcome.step}`: {outcome.reason}"
    notes.setdefault(key, len(notes) + 1)
    return f"no ({notes[key]})"


def readme_table(outcomes: list[Outcome]) -> str:
    """The README's coverage table: rows estimator x task, columns preprocessing."""
    by_id = {o.cell.id: o for o in outcomes}
    notes: dict[str, int] = {}
    head = "| estimator | task | " + " | ".join(p.label for p in PREPROCESSINGS) + " |"
    lines = [head, "|---|---|" + "---|" * len(PREPROCESSINGS)]
    for e in ESTIMATORS:
        for t in e.tasks:
            marks = [_mark(by_id.get(Cell(e, t, p).id), notes) for p in PREPROCESSINGS]
            lines.append(f"| {e.label} | {t} | " + " | ".join(marks) + " |")
    compiled = sum(o.compiled for o in outcomes)
    lines += ["", f"{compiled} of {len(outcomes)} cells compile (\"yes\": within the parity "
              "gate, 0 label flips); – : not a combination the library accepts "
              "(HistGradientBoosting refuses sparse input; pandas categories are LightGBM's)."]
    for text, k in notes.items():
        lines.append(f"({k}) declined, {text}")
    return "\n".join(lines)


def figure(outcomes: list[Outcome]) -> str:
    compiled = sum(o.compiled for o in outcomes)
    return f"{compiled} / {len(outcomes)} cells compiled ({100 * compiled / len(outcomes):.1f}%)"


def _replace_block(text: str, start: str, end: str, block: str) -> str:
    a, b = text.index(start), text.index(end)
    return text[: a + len(start)] + "\n" + block + "\n" + text[b:]


def readme_block(readme: str) -> str:
    """The table currently between the README's markers."""
    start, end = README_MARKERS
    return readme[readme.index(start) + len(start): readme.index(end)].strip("\n")


def run_all(folder: Path) -> list[Outcome]:
    import warnings

    warnings.filterwarnings("ignore")
    return [run_cell(c, folder) for c in cells()]


def main() -> None:
    import argparse
    import os
    import tempfile

    sys.path.insert(0, str(ROOT / "bench"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="rewrite the README table and the compile section of BENCHMARKS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SCOREHOUSE_HOME"] = str(Path(tmp) / "home")
        start, cpu = time.perf_counter(), time.process_time()
        outcomes = run_all(Path(tmp))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    table = readme_table(outcomes)
    print(table)
    print(f"\n{figure(outcomes)} in {seconds:.1f} s ({cpu:.1f} s of CPU)")
    if not args.write:
        return
    from report import machine, write_section

    readme = ROOT / "README.md"
    readme.write_text(_replace_block(readme.read_text(), *README_MARKERS, table))
    slowest = max(outcomes, key=lambda o: o.seconds)
    write_section("compile", "\n".join([
        "## Compile coverage: estimators x preprocessing (issue 17; goal: >= 90% of cells "
        "compile, every classifier after one-hot)",
        "",
        f"`python tests/compile_matrix.py --write` on {machine()}. Each cell is fitted on "
        f"{ROWS} rows and packaged with `scorehouse.package` (ONNX conversion + parity gate "
        "at the default tolerance); the table is the README's (section \"The compiled "
        "runtime\").",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cells compiled / cells | {figure(outcomes)} |",
        f"| classifiers after one-hot compiled | {_onehot_classifiers(outcomes)} |",
        f"| whole matrix, s (fit + package, one process) | {seconds:.1f} elapsed, "
        f"{cpu:.1f} CPU |",
        f"| slowest cell, s | {slowest.seconds:.2f} ({slowest.cell.id}) |",
    ]))


def _onehot_classifiers(outcomes: list[Outcome]) -> str:
    chosen = [o for o in outcomes if o.cell.task != "regression"
              and "onehot" in o.cell.preprocessing.name]
    return f"{sum(o.compiled for o in chosen)} / {len(chosen)}"


if __name__ == "__main__":
    main()
