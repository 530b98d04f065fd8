"""The one call path every channel uses: validate, predict, report, call the hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifact import Artifact, Manifest
from ..errors import ModelError
from ..runtime import Output, Runtime, proper_probabilities, runtime_for
from ..schema import (
    ColumnPolicy,
    Reject,
    RejectTally,
    Schema,
    Validated,
    check_input,
    validate_batch,
    validate_row,
)
from .result import Result

if TYPE_CHECKING:
    from .cache import LoadCost

log = logging.getLogger("scorehouse.scorer")

#: Predict calls allowed while isolating rows that make the model raise, before giving up.
ISOLATION_BUDGET = 256
#: The version a model loaded from an artifact file answers to (see `Scorer.public_version`).
FILE_VERSION = 1


@dataclass
class ScoreEvent:
    """What a hook sees after each call: the model, the accepted input columns, the result."""

    model: str
    version: int | None
    columns: Mapping[str, np.ndarray]
    result: Result


Hook = Callable[[ScoreEvent], None]


class Scorer:
    """Scores rows with one artifact: `predict` takes a table, DataFrame, records or one dict.

    Parameters
    ----------
    artifact : Artifact
        The model and its manifest (`scorehouse.artifact.read`, or a registry version).
    version : int or None
        The registry version it was loaded as; None for an artifact file.
    runtime : {"native", "onnx"} or None
        The runtime to score with; None: the artifact's best (see `runtime_for`).
    ref : str or None
        The reference it was loaded by ("churn@production"), for messages; default its name.
    columns : ColumnPolicy, "lenient", "strict" or None
        What `predict` does with an absent optional or an unknown column (default lenient).
    accept_parity_difference : bool
        Score with a compiled graph that failed the parity gate, reporting the failure.

    Raises
    ------
    ParityError
        `runtime="onnx"` on a graph the parity gate rejected, without
        `accept_parity_difference`.
    TrustError
        A pickled model that nothing trusts (the native runtime unpickles it here).
    ArtifactError
        A model file or ONNX graph that cannot be read.
    ModelError
        The runtime cannot run this model (no ONNX graph; a flavor with no native runtime).
    SchemaError
        A manifest input schema that does not parse, or `columns` not lenient or strict.
    ScorehouseError
        An unknown `runtime` name.
    """

    def __init__(self, artifact: Artifact, *, version: int | None = None,
                 runtime: str | None = None, ref: str | None = None,
                 columns: ColumnPolicy | str | None = None,
                 accept_parity_difference: bool = False):
        self.artifact = artifact
        self.name = artifact.name
        self.version = version
        self.ref = ref or artifact.name
        m = artifact.manifest
        self.task: str = m.task
        self.classes: list[Any] | None = list(m.classes) if m.classes is not None else None
        self.schema = Schema.from_dict(m.input_schema)
        # Raises ParityError for a compiled graph the parity gate rejected, unless accepted.
        self.runtime: Runtime = runtime_for(artifact, self.schema, runtime,
                                            accept_parity_difference=accept_parity_difference)
        self.hooks: list[Hook] = []
        #: What loading took (`cache.LoadCost`), set by the `ScorerCache` that loaded it.
        self.load_cost: LoadCost | None = None
        #: What `predict` does with an absent optional or an unknown column (policy.py).
        self.columns = ColumnPolicy.parse(columns)

    def __repr__(self) -> str:
        v = f"/{self.version}" if self.version is not None else ""
        return f"<Scorer {self.name}{v} task={self.task} runtime={self.runtime.name}>"

    @property
    def manifest(self) -> Manifest:
        """The artifact's manifest."""
        return self.artifact.manifest

    @property
    def public_version(self) -> int:
        """The version servers report and accept for this model: its registry number, or
        FILE_VERSION for a model loaded from an artifact file (which has no other)."""
        return FILE_VERSION if self.version is None else self.version

    def headline(self, record: Mapping[str, Any]) -> float | None:
        """The one number a record of `Result.to_records` comes down to (what profiles and
        tables keep as `<model>_score`): the regression value; for two classes P(the second,
        positive class); for more, P(the predicted label). None without probabilities."""
        probabilities: Mapping[str, float] | None = record.get("probabilities")
        if probabilities is None:
            return record.get("value")
        if not self.classes:
            return None
        if len(self.classes) == 2:
            return probabilities.get(str(self.classes[-1]))
        return probabilities.get(str(record.get("label")))

    def add_hook(self, hook: Hook) -> None:
        """Call `hook(event)` after every scoring call (prediction logs, metrics)."""
        self.hooks.append(hook)

    def predict(self, data: Any, *, columns: ColumnPolicy | None = None,
                max_rejects: int | None = None) -> Result:
        """Score an Arrow table, DataFrame, list of records or one dict; never raises on bad rows.

        Parameters
        ----------
        data : pyarrow.Table, pyarrow.RecordBatch, pandas.DataFrame, list of dict, or dict
            n rows, one column per schema column (by name); one dict is one row.
        columns : ColumnPolicy or None
            Default: this scorer's policy. Under strict, an input whose columns differ from
            the schema is refused; under lenient it is scored, its rows flagged
            `absent_column` for an absent optional column, and `Result.column_check` says
            which columns were absent or unknown.
        max_rejects : int or None
            Keep only the first that many rejects and count the rest (`Result.tally`), for
            callers that answer untrusted input (the HTTP server).

        Returns
        -------
        Result
            Predictions for the rows that passed (`Result.rows`: their input positions) and
            a reject with its reason for every other row: `n_read == n_scored + n_rejected`.
            Rows the model itself fails on are rejected too ("model error: ...").

        Raises
        ------
        ColumnsError
            Under the strict column policy, an input whose columns differ from the schema.
        SchemaError
            `data` is not one of the input shapes above (e.g. a list holding a non-record).
        ModelError
            The model failed on every row, or on so many that isolating them was given up
            (ISOLATION_BUDGET predict calls).
        """
        start = time.perf_counter()
        check = check_input(self.schema, data).enforce(columns or self.columns)
        if isinstance(data, Mapping):
            result, accepted = self._predict_one(data)
        else:
            checked = validate_batch(self.schema, data, max_rejects=max_rejects)
            try:
                result, accepted = self._predict_validated(checked), checked.columns
            except ModelError as e:
                # The call fails, yet its rows were read: the hooks (the prediction log,
                # whose error rate alert rules watch) see them refused by the model first.
                failed = self._failed(checked, e)
                failed.seconds = time.perf_counter() - start
                self._fire(checked.columns, failed)
                raise
        result.column_check = check
        result.seconds = time.perf_counter() - start
        self._fire(accepted, result)
        return result

    def _result(self, n_read: int, rows: np.ndarray, output: Output, rejects: list[Reject],
                flags: dict[tuple[str, str], np.ndarray], tally: RejectTally | None = None
                ) -> Result:
        # Every runtime's output passes here: hold it to what a prediction promises.
        # Probabilities off by rounding are repaired; a row the model gave NaN (or nothing
        # finite) is rejected with the reason rather than answered.
        if output.probabilities is not None:
            output = replace(output, probabilities=proper_probabilities(output.probabilities))
        broken = _not_finite(output)
        if broken is not None:
            rejects = sorted([*rejects, *(Reject(int(r), None, "model error: the model gave "
                                                 "no finite prediction (NaN or infinity)")
                                          for r in rows[broken])], key=lambda r: r.row)
            if tally is not None:
                tally = RejectTally(tally.rows + int(broken.sum()), dict(tally.counts))
                tally.add(None, "model error", int(broken.sum()))
            output, rows = output.take(np.flatnonzero(~broken)), rows[~broken]
            flags = {k: r[np.isin(r, rows)] for k, r in flags.items()}
            flags = {k: r for k, r in flags.items() if len(r)}
        return Result(self.name, self.version, self.task, self.classes, n_read, rows, output,
                      rejects, flags, self.runtime.name,
                      parity_accepted=self.runtime.parity_accepted, tally=tally)

    def _predict_one(self, row: Mapping[str, Any]) -> tuple[Result, Mapping[str, Any]]:
        values, rejects, flags = validate_row(self.schema, row)
        if rejects:
            return self._result(1, np.empty(0, np.int64), Output(), rejects, {}), {}
        try:
            out = self.runtime.predict_row(values)
        except Exception as e:  # the model, not scorehouse, failed on this row
            reject = Reject(0, None, f"model error: {type(e).__name__}: {e}")
            return self._result(1, np.empty(0, np.int64), Output(), [reject], {}), {}
        one = np.zeros(1, np.int64)
        return self._result(1, one, out, [], {f: one for f in flags}), values

    def _predict_validated(self, v: Validated) -> Result:
        n = len(v.rows)
        if n == 0:
            return self._result(v.n_read, v.rows, self._empty(), v.rejects, v.flags, v.tally)
        try:
            out = self.runtime.predict(v.columns, n)
            return self._result(v.n_read, v.rows, out, v.rejects, v.flags, v.tally)
        except Exception as e:
            first = e
        ok_idx, ok_out, failed = self._isolate(v.columns, np.arange(n), first)
        rejects = list(v.rejects) + [
            Reject(int(v.rows[i]), None, f"model error: {type(err).__name__}: {err}")
            for i, err in failed
        ]
        rejects.sort(key=lambda r: r.row)
        tally = v.tally
        if tally is not None:  # keep the cut list cut, and count the model's rejects too
            rejects = rejects[:len(v.rejects)]
            tally = RejectTally(tally.rows + len(failed), dict(tally.counts))
            tally.add(None, "model error", len(failed))
        kept_rows = v.rows[ok_idx]
        flags = {k: r[np.isin(r, kept_rows)] for k, r in v.flags.items()}
        return self._result(v.n_read, kept_rows, ok_out, rejects,
                            {k: r for k, r in flags.items() if len(r)}, tally)

    def _failed(self, v: Validated, error: ModelError) -> Result:
        """The result of a call the model failed as a whole: every accepted row refused
        with the error (after the schema's own rejects)."""
        cause = error.__cause__ or error
        reason = f"model error: {type(cause).__name__}: {cause}"
        rejects = sorted([*v.rejects, *(Reject(int(r), None, reason) for r in v.rows)],
                         key=lambda r: r.row)
        tally = v.tally
        if tally is not None:
            rejects = rejects[:len(v.rejects)]
            tally = RejectTally(tally.rows + len(v.rows), dict(tally.counts))
            tally.add(None, "model error", len(v.rows))
        return self._result(v.n_read, np.empty(0, np.int64), self._empty(), rejects, {}, tally)

    def _isolate(self, columns: Mapping[str, np.ndarray], idx: np.ndarray, first: Exception
                 ) -> tuple[np.ndarray, Output, list[tuple[int, Exception]]]:
        # Bisect the batch to find the rows the model itself cannot score; a model that fails
        # everywhere is a ModelError, not a pile of rejects.
        chunks: list[tuple[np.ndarray, Output]] = []
        failed: list[tuple[int, Exception]] = []
        budget = ISOLATION_BUDGET
        stack = [(idx, first)]
        while stack:
            chunk, err = stack.pop()
            if len(chunk) == 1:
                failed.append((int(chunk[0]), err))
                continue
            for half in (chunk[len(chunk) // 2:], chunk[: len(chunk) // 2]):
                budget -= 1
                if budget < 0:
                    raise ModelError(f"model {self.name!r} failed while predicting: "
                                     f"{type(first).__name__}: {first}") from first
                try:
                    chunks.append((half, self.runtime.predict({k: a[half] for k, a in
                                                               columns.items()}, len(half))))
                except Exception as e:
                    stack.append((half, e))
        if not chunks:
            raise ModelError(f"model {self.name!r} failed on every row: "
                             f"{type(first).__name__}: {first}") from first
        order = np.concatenate([c for c, _ in chunks])
        sort = np.argsort(order, kind="stable")
        return order[sort], Output.concat([o for _, o in chunks]).take(sort), failed

    def _empty(self) -> Output:
        if self.task == "regression":
            return Output(values=np.empty(0))
        k = len(self.classes or [])
        return Output(labels=np.empty(0, dtype=object), probabilities=np.empty((0, k)))

    def _fire(self, columns: Mapping[str, Any], result: Result) -> None:
        if not self.hooks:
            return
        event = ScoreEvent(self.name, self.version, columns, result)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # a broken log sink must not fail predictions; say so loudly
                log.exception("scoring hook %r failed", hook)


def _not_finite(output: Output) -> np.ndarray | None:
    """Rows whose probabilities or value are not all finite numbers, or None if none."""
    if output.probabilities is not None and output.probabilities.size:
        bad = ~np.isfinite(output.probabilities).all(axis=1)
    elif output.values is not None and output.values.dtype.kind == "f":
        bad = ~np.isfinite(output.values)
    else:
        return None
    return bad if bad.any() else None
