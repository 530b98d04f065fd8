"""What a scoring call returns: predictions for the rows that passed, rejects for the rest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InvalidInputError
from ..runtime import Output
from ..schema import ColumnCheck, Reject, RejectTally


def output_columns(task: str, classes: list[Any] | None, has_proba: bool = True) -> list[str]:
    """Names of prediction columns: 'label' + 'probability_<class>' each, or 'value'."""
    if task == "regression":
        return ["value"]
    return ["label"] + ([f"probability_{c}" for c in classes] if has_proba and classes else [])


def prediction_schema(task: str, classes: list[Any] | None) -> pa.Schema:
    """Arrow fields of the prediction columns: a typed label and float64 probabilities, or value."""
    return pa.schema([pa.field(n, label_type(classes) if n == "label" else pa.float64())
                      for n in output_columns(task, classes)])


def label_type(classes: list[Any] | None) -> pa.DataType:
    """The Arrow type that holds every class label: bool, int64, float64 or string."""
    classes = classes or []
    if classes and all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return pa.int64()
    if classes and all(isinstance(c, (int, float)) for c in classes):
        return pa.float64()
    return pa.string()


@dataclass
class Result:
    """Predictions (for input rows `rows`), rejects with reasons, and flags, for one call.

    `tally` is set when the call kept only the first rejects (`predict(max_rejects=...)`):
    it counts them all, and `n_rejected` and `reject_counts` come from it.
    """

    model: str
    version: int | None
    task: str
    classes: list[Any] | None
    n_read: int
    rows: np.ndarray
    output: Output
    rejects: list[Reject] = field(default_factory=list)
    flags: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    runtime: str = "native"
    seconds: float = 0.0
    #: The input's absent and unknown columns (see `schema.policy`).
    column_check: ColumnCheck = field(default_factory=ColumnCheck)
    #: The parity failure of the compiled graph the user accepted to score with, else None.
    parity_accepted: str | None = None
    tally: RejectTally | None = None

    @property
    def n_scored(self) -> int:
        """Rows that got a prediction."""
        return len(self.rows)

    @property
    def n_rejected(self) -> int:
        """Rows that were refused (a row with several problems counts once)."""
        if self.tally is not None:
            return self.tally.rows
        return len({r.row for r in self.rejects})

    @property
    def n_problems(self) -> int:
        """Problems found (a row can have several), listed in `rejects` or not."""
        return self.tally.problems if self.tally is not None else len(self.rejects)

    def problem_counts(self) -> dict[str, dict[str, int]]:
        """{column (or '<row>'): {Reject.kind: problems}}, every problem counted."""
        counts: Counter[tuple[str | None, str]] = Counter(
            self.tally.counts if self.tally is not None else
            ((r.column, r.kind) for r in self.rejects))
        out: dict[str, dict[str, int]] = {}
        for (column, kind), n in sorted(counts.items(), key=lambda x: (x[0][0] or "", x[0][1])):
            out.setdefault(column or "<row>", {})[kind] = n
        return out

    @property
    def n_flagged(self) -> int:
        """Scored rows with at least one flag (unseen category, out of range, absent column)."""
        if not self.flags:
            return 0
        return len(np.unique(np.concatenate(list(self.flags.values()))))

    def flag_counts(self) -> dict[str, dict[str, int]]:
        """{'unseen_category': {'plan': 3}, 'out_of_range': {...}, 'absent_column': {...}}
        for scored rows."""
        out: dict[str, dict[str, int]] = {}
        for (kind, column), rows in sorted(self.flags.items()):
            out.setdefault(kind, {})[column] = int(len(rows))
        return out

    def reject_counts(self) -> dict[str, int]:
        """How many problems each column had."""
        if self.tally is not None:
            out: Counter[str] = Counter()
            for (column, _), n in self.tally.counts.items():
                out[column or "<model>"] += n
            return dict(out)
        return dict(Counter(r.column or "<model>" for r in self.rejects))

    def raise_for_rejects(self) -> Result:
        """This result, when no row was rejected (for chaining: `predict(x).raise_for_rejects()`).

        Raises
        ------
        InvalidInputError
            Some row was rejected; the message names the first five problems.
        """
        if self.rejects:
            shown = "; ".join(str(r) for r in self.rejects[:5])
            more = f" (and {len(self.rejects) - 5} more)" if len(self.rejects) > 5 else ""
            raise InvalidInputError(f"{self.n_rejected} of {self.n_read} row(s) rejected: "
                                    f"{shown}{more}")
        return self

    def columns(self) -> dict[str, np.ndarray]:
        """Prediction columns by name, aligned with `rows`."""
        o = self.output
        if self.task == "regression":
            assert o.values is not None  # a regression runtime always gives values
            return {"value": o.values}
        assert o.labels is not None  # a classifier's runtime always gives labels
        cols: dict[str, np.ndarray] = {"label": o.labels}
        if o.probabilities is not None:
            for j, c in enumerate(self.classes or []):
                cols[f"probability_{c}"] = o.probabilities[:, j]
        return cols

    def to_pandas(self) -> pd.DataFrame:
        """Scored rows as a DataFrame: 'row' (input position) then the prediction columns."""
        cols = self.columns()
        if "label" in cols:
            cols["label"] = _labels(cols["label"])
        return pd.DataFrame({"row": self.rows, **cols})

    def to_arrow(self) -> pa.Table:
        """Scored rows as an Arrow table (same columns as `to_pandas`)."""
        return pa.Table.from_pandas(self.to_pandas(), preserve_index=False)

    def pick(self, i: int) -> Result:
        """The result of input row `i` alone, renumbered as row 0 (to answer one request of
        a micro-batch)."""
        at = np.flatnonzero(self.rows == i)
        one = np.zeros(len(at), np.int64)
        return Result(self.model, self.version, self.task, self.classes, 1, one,
                      self.output.take(at), [replace(r, row=0) for r in self.rejects if r.row == i],
                      {k: np.zeros(1, np.int64) for k, rows in self.flags.items() if i in rows},
                      self.runtime, self.seconds, column_check=self.column_check,
                      parity_accepted=self.parity_accepted)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able dict per scored row, with its flags."""
        per_row: dict[int, list[dict[str, str]]] = {}
        for (kind, column), rows in self.flags.items():
            for r in rows.tolist():
                per_row.setdefault(r, []).append({"kind": kind, "column": column})
        rows = self.rows.tolist()
        if not rows:
            return []  # every row rejected: the output holds no columns at all
        # Whole columns to Python at once: indexing numpy arrays cell by cell costs more
        # than everything else here.
        if self.task == "regression":
            assert self.output.values is not None  # a regression runtime always gives values
            values = [float(v) for v in self.output.values.tolist()]
            return [{"row": r, "value": v, "flags": per_row.get(r, [])}
                    for r, v in zip(rows, values, strict=True)]
        assert self.output.labels is not None  # a classifier's runtime always gives labels
        labels = [_py(v) for v in self.output.labels]
        if self.output.probabilities is None:
            return [{"row": r, "label": lab, "flags": per_row.get(r, [])}
                    for r, lab in zip(rows, labels, strict=True)]
        names = [str(c) for c in self.classes or []]
        probabilities = [[float(x) for x in p] for p in self.output.probabilities.tolist()]
        return [{"row": r, "label": lab, "probabilities": dict(zip(names, p, strict=True)),
                 "flags": per_row.get(r, [])}
                for r, lab, p in zip(rows, labels, probabilities, strict=True)]

    def summary(self) -> dict[str, Any]:
        """Counts for logs and run manifests: read = scored + rejected."""
        return {
            "model": self.model, "version": self.version, "runtime": self.runtime,
            **({"parity_accepted": self.parity_accepted} if self.parity_accepted else {}),
            "read": self.n_read, "scored": self.n_scored, "rejected": self.n_rejected,
            "flagged": self.n_flagged, "flags": self.flag_counts(),
            "rejects_by_column": self.reject_counts(), "seconds": round(self.seconds, 6),
            "columns": self.column_check.to_dict(),
        }


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _labels(labels: np.ndarray) -> np.ndarray:
    # Object arrays of numpy ints would become an object column; give pandas plain values.
    try:
        return np.asarray([_py(v) for v in labels]) if labels.dtype == object else labels
    except (TypeError, ValueError):
        return labels
