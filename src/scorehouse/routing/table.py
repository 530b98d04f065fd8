"""Score a whole table through a deployment: per row what `Rendezvous.decide_and_score`
answers, with one model call per model instead of one per row.

The rows are decided at once (`Router.first_steps`: the same sticky hash, routes and
request ids as `Router.decide`). Each model then scores its share of the rows in one
`Scorer.predict` call. A row whose model failed on it (the call raised, or the model
rejected the row as a "model error") moves to the next step of the chain: the fallbacks in
order, each again one call over the rows that reached it, then the default (a constant or a
rule, evaluated per row). A row the model rejects for its input (a missing column, a value
of the wrong type) is answered by that model with the reject, as one request is.

Off the answer: the shadows and canaries score every answered row, one call each (their
failures and rejects never touch the answer), and the decoy's rows are named for the
channel to archive. With `all_roles`, every answering model (champion, challengers, routed
models, fallbacks) also scores the answered rows it did not score on the answer path, for
side-by-side columns.

What differs from one request at a time, by design:

- **No deadline.** Nobody waits on one row of a table, and a batch answer that depended on
  how busy the machine was could not be reproduced: `deadline_ms` is not applied, a slow
  model is waited for, and only errors and model-error rejects fall back. The off-path
  roles run after the answer in the same call (there is no response to send first), so a
  table scored with a shadow and a canary takes their time too.
- **Model errors are found per call.** `Scorer.predict` isolates the rows a model raises on
  within ISOLATION_BUDGET calls; when a call gives up (more failing rows than the budget
  isolates), its rows are scored again in slices small enough to isolate every failing row
  (ISOLATION_SLICE rows); when every row of a slice that passed the schema failed (the
  call raises, and would take the schema's rejects with it), one row per call. So the same
  rows fall back, and the same rows are refused, as one at a time. A model that fails on
  every row costs about four calls per row then (a request each costs one).

`tests/test_routing_table.py` checks row by row, across batch sizes, that who answered,
with what value, and why a fallback did, equal `decide_and_score`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ModelError
from ..scorer import Result, Scorer
from ..scorer.scorer import ISOLATION_BUDGET
from .rendezvous import Answer, Rendezvous
from .router import Step
from .spec import DeploymentSpec, Role

#: Rows per call when a call gave up isolating the rows a model fails on: few enough that
#: `Scorer.predict` isolates every one (a binary split of n rows takes 2n - 2 calls).
ISOLATION_SLICE = ISOLATION_BUDGET // 2
#: `TableAnswers.who` of a row the default answered, and of a row nobody answered.
DEFAULT, NOBODY = -1, -2

#: Around each model call: (role, reference, scorer, the table rows it scores, whether the
#: deployment makes the call: False for `all_roles` extras) -> a context manager (e.g. the
#: prediction log's ids and route for those rows).
Around = Callable[[Role, str, Scorer, np.ndarray, bool], AbstractContextManager[Any]]


@dataclass
class Call:
    """One model call on some rows of the table: input row k of the call is table row
    `rows[k]`. `result` is None when the call raised (or the model could not be loaded);
    `error` then says why. `answering`: on the answer path (False: off-path, all-roles)."""

    role: Role
    ref: str
    rows: np.ndarray
    result: Result | None
    error: str = ""
    scorer: Scorer | None = None
    answering: bool = True


@dataclass
class TableAnswers:
    """Who answered each of the `n` rows of a table, and the calls behind the answers.

    `who[i]`: the index in `calls` of the call that answered row i (the row is in its
    `result.rows` when scored, in its rejects when the model refused its input), DEFAULT,
    or NOBODY (`problems[i]` says why: every step failed and there is no default, or the
    default's rule failed). `at[i]`: row i's input position in that call. `fallback[i]`:
    the chosen model did not answer; `reasons[i]` says why (one clause per failed step).
    `values[i]`: the default's answer. `decoy`: the rows the decoy archives.
    """

    spec: DeploymentSpec
    ids: Sequence[str]
    calls: list[Call] = field(default_factory=list)
    who: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    at: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    fallback: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    reasons: dict[int, list[str]] = field(default_factory=dict)
    values: dict[int, Any] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)
    decoy: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def n(self) -> int:
        """Rows in the table."""
        return len(self.who)

    def reason(self, i: int) -> str:
        """Why row i was not answered by its chosen model ("" when it was)."""
        return "; ".join(self.reasons.get(i, ()))

    def answer(self, i: int) -> Answer | None:
        """Row i's `Answer`, as `decide_and_score` gives it (`result`: the row's own, as
        row 0); None when nobody answered (`problems[i]`)."""
        who = int(self.who[i])
        if who == NOBODY:
            return None
        rid = str(self.ids[i])
        if who == DEFAULT:
            return Answer(rid, Role.DEFAULT, None, None, None, True, self.reason(i),
                          value=self.values.get(i))
        call = self.calls[who]
        assert call.result is not None  # only a call that returned answers rows
        return Answer(rid, call.role, call.ref, call.result.model, call.result.version,
                      bool(self.fallback[i]), self.reason(i),
                      result=call.result.pick(int(self.at[i])),
                      latency_ms=call.result.seconds * 1000)

    def scored(self) -> np.ndarray:
        """The rows with an answer that is not a reject: scored by a model, or the default's."""
        out = self.who == DEFAULT
        for ci in np.unique(self.who[self.who >= 0]).tolist():
            call = self.calls[ci]
            assert call.result is not None
            out[call.rows[call.result.rows]] = True
        return np.flatnonzero(out)


def score_table(rz: Rendezvous, table: pa.Table | pa.RecordBatch, ids: Sequence[str], *,
                all_roles: bool = False, around: Around | None = None,
                columns: Any = None) -> TableAnswers:
    """Answer every row of `table` the way `rz.decide_and_score(row, ids[i])` would (see
    the module docstring for the two differences: no deadline, slices on isolation).

    Args:
        rz: the deployment (its router and scorers are read once: a concurrent `use`
            applies from the next table).
        table: the input rows; `ids`: one request id per row (the log's, and the sticky
            key of rows without a `sticky_by` value).
        all_roles: every answering model also scores the answered rows it did not.
        around: entered around each model call (the prediction log's ids and role; told
            which calls are `all_roles` extras, which the deployment does not make).
        columns: the column policy of every call (None: each scorer's own).

    Never raises for a model's failure: it is the row's fallback reason, or for an
    off-path call the call's `error`.
    """
    router = rz.router
    spec, n = router.spec, table.num_rows
    out = TableAnswers(spec, ids, who=np.full(n, NOBODY, np.int64), at=np.full(n, -1, np.int64),
                       fallback=np.zeros(n, bool))
    route = spec.route_by.field if spec.route_by is not None else None
    steps, first = router.first_steps(_values(table, spec.sticky_by), _values(table, route), ids)
    groups = _groups(steps, first)
    tail = list(router.tail)
    while groups:
        failed: list[np.ndarray] = []
        for step, rows in groups:
            failed.append(_answer_step(rz, out, step, table, rows, around, columns))
        left = np.sort(np.concatenate(failed)) if failed else np.empty(0, np.int64)
        groups = []
        if not len(left):
            break
        if not tail:
            _nobody(out, left)
            break
        step = tail.pop(0)
        out.fallback[left] = True
        if step.role is Role.DEFAULT:
            _default(out, table, left)
        else:
            groups = [(step, left)]
    _off_path(rz, out, table, router.off_path, all_roles, around, columns)
    return out


def _values(table: pa.Table | pa.RecordBatch, name: str | None) -> list[Any] | None:
    """The column's values as Python values (what a row's record holds), None if absent."""
    if name is None or name not in table.schema.names:
        return None
    values: list[Any] = table.column(name).to_pylist()
    return values


def _groups(steps: tuple[Step, ...], index: np.ndarray) -> list[tuple[Step, np.ndarray]]:
    """(step, its rows in table order) for every step that has rows (equal steps merged)."""
    rows: dict[Step, list[np.ndarray]] = {}
    for j in np.unique(index).tolist():
        rows.setdefault(steps[j], []).append(np.flatnonzero(index == j))
    return [(s, np.sort(np.concatenate(parts))) for s, parts in rows.items()]


def _answer_step(rz: Rendezvous, out: TableAnswers, step: Step, table: Any, rows: np.ndarray,
                 around: Around | None, columns: Any) -> np.ndarray:
    """Score `rows` with `step`'s model; record the rows it answered; return those it
    failed on (each with its reason appended)."""
    assert step.ref is not None
    failed: list[int] = []
    for call in _calls(rz, step.role, step.ref, table, rows, around, columns):
        out.calls.append(call)
        ci = len(out.calls) - 1
        if call.result is None:
            for r in call.rows.tolist():
                out.reasons.setdefault(r, []).append(call.error)
            failed += call.rows.tolist()
            continue
        broken: dict[int, str] = {}
        for reject in call.result.rejects:
            if reject.reason.startswith("model error"):
                broken.setdefault(reject.row, reject.reason)
        ok = np.ones(len(call.rows), bool)
        for k, reason in broken.items():
            ok[k] = False
            out.reasons.setdefault(int(call.rows[k]), []).append(f"{step.ref} failed: {reason}")
            failed.append(int(call.rows[k]))
        answered = call.rows[ok]
        out.who[answered] = ci
        out.at[answered] = np.flatnonzero(ok)
    return np.asarray(failed, np.int64)


def _calls(rz: Rendezvous, role: Role, ref: str, table: Any, rows: np.ndarray,
           around: Around | None, columns: Any, answering: bool = True, *,
           deployed: bool = True) -> list[Call]:
    """`ref`'s model on `rows`: one call, or (when it gave up isolating failing rows) one
    per ISOLATION_SLICE rows."""
    try:
        scorer = rz.scorers.get(ref)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails its rows over
        return [Call(role, ref, rows, None, f"{ref} failed: {type(e).__name__}: {e}",
                     answering=answering)]
    try:
        result = _predict(scorer, role, ref, table, rows, around, columns, deployed)
        return [Call(role, ref, rows, result, scorer=scorer, answering=answering)]
    except ModelError as e:
        # It gave up isolating (more rows), or every row its schema accepted failed: the
        # rows it refused would be lost with them, so smaller calls tell them apart.
        size = ISOLATION_SLICE if len(rows) > ISOLATION_SLICE else 1
        if len(rows) > 1:
            return [c for s in range(0, len(rows), size)
                    for c in _calls(rz, role, ref, table, rows[s:s + size], around, columns,
                                    answering, deployed=deployed)]
        cause = e.__cause__  # the model's own error: the reason a one-row call gives
        why = f"model error: {type(cause).__name__}: {cause}" if cause is not None else \
            f"{type(e).__name__}: {e}"
        return [Call(role, ref, rows, None, f"{ref} failed: {why}", scorer, answering)]
    except Exception as e:  # noqa: BLE001 - any failure of this model moves on
        return [Call(role, ref, rows, None, f"{ref} failed: {type(e).__name__}: {e}", scorer,
                     answering)]


def _predict(scorer: Scorer, role: Role, ref: str, table: Any, rows: np.ndarray,
             around: Around | None, columns: Any, deployed: bool) -> Result:
    whole = len(rows) == table.num_rows and bool((rows == np.arange(len(rows))).all())
    part = table if whole else table.take(pa.array(rows, pa.int64()))
    with around(role, ref, scorer, rows, deployed) if around is not None else \
            contextlib.nullcontext():
        return scorer.predict(part, columns=columns)


def _nobody(out: TableAnswers, rows: np.ndarray) -> None:
    for r in rows.tolist():
        out.problems[r] = (f"deployment {out.spec.name}: no model answered and it has no "
                           f"default ({out.reason(r)})")


def _default(out: TableAnswers, table: Any, rows: np.ndarray) -> None:
    """The default's answer for each of `rows` (the rule over the row as a record)."""
    assert out.spec.default is not None  # the router adds the step only then
    records = table.take(pa.array(rows, pa.int64())).to_pylist()
    for r, record in zip(rows.tolist(), records, strict=True):
        try:
            out.values[r] = out.spec.default.evaluate(record)
            out.who[r] = DEFAULT
        except ModelError as e:  # the rule failed on this row: nobody answered it
            out.problems[r] = str(e)


def _off_path(rz: Rendezvous, out: TableAnswers, table: Any,
              roles: tuple[tuple[Role, str | None], ...], all_roles: bool,
              around: Around | None, columns: Any) -> None:
    """The shadows and canaries on every answered row; the decoy's rows; with `all_roles`
    the answering models on the answered rows they did not score."""
    served = np.flatnonzero(out.who != NOBODY)
    if not len(served):
        return
    for role, ref in roles:
        if ref is None:
            out.decoy = served
        else:
            out.calls += _calls(rz, role, ref, table, served, around, columns, False)
    if not all_roles:
        return
    # What a model scores beyond what the deployment asks of it is the caller's output, not
    # the deployment's record: `around` is told (the log holds what a server's would).
    for role, ref in dict.fromkeys(answering_roles(out.spec)):
        done = [c.rows for c in out.calls if c.answering and (c.role, c.ref) == (role, ref)]
        rest = np.setdiff1d(served, np.concatenate(done)) if done else served
        if len(rest):
            out.calls += _calls(rz, role, ref, table, rest, around, columns, False,
                                deployed=False)


def answering_roles(spec: DeploymentSpec) -> list[tuple[Role, str]]:
    """(role, reference) of every model that may answer, in spec order (champion,
    challengers, routed models, fallbacks)."""
    return [(role, ref) for role, ref in spec.roles()
            if role in (Role.CHAMPION, Role.CHALLENGER, Role.ROUTED, Role.FALLBACK)]


__all__ = ["Around", "Call", "DEFAULT", "ISOLATION_SLICE", "NOBODY", "TableAnswers",
           "answering_roles", "score_table"]
