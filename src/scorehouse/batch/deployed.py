"""A batch job through a deployment (`scorehouse score --deployment NAME`): each row is
answered as the deployment answers a request, with one model call per model and chunk.

Per chunk, `routing.table.score_table` decides every row (the spec's sticky field, else
the row's id: the `--key` value or `<run id>:<row>`, the ids the prediction log uses;
routing by field), scores each model's share of rows in one call, the fallbacks on the rows
their model failed on, the default on the rest; the shadows and canaries score every
answered row. There is no deadline in batch (see `routing.table`): every model is waited
for, so the answers do not depend on how busy the machine was; the off-path roles add
their time to the job's.

Accounting stays that of one model: a row is scored when a model or the default answered
it, rejected when its answering model refused its input (its reasons in the rejects file),
or when nobody answered (every step failed, no default; or the default's rule failed):
read = scored + rejected. Flags are the answering models'. Off-path and `--all-roles`
scores never count; the manifest's `deployment` section counts who answered and what
each off-path model did.

With a log (`--log-to`), every model call the deployment makes is logged under the rows'
ids with the deployment and the role, and the decoy's inputs and the default's answers too
(`monitor.routed`): the log holds what a server answering those rows would log, so `deploy
compare` reads a batch job's rows as a server's. `--all-roles`' extra scores are in the
output only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from ..monitor.live import LiveMonitor
from ..monitor.routed import RoutedLog
from ..routing import Rendezvous, Role
from ..routing.table import DEFAULT, TableAnswers, score_table
from ..schema import ColumnCheck, ColumnPolicy
from ..scorer import prediction_schema
from ..scorer.runs import RunManifest, check_columns, kept_columns
from . import deployed_columns as dc
from .chunks import ChunkIds, RejectRow, Scored, text, with_kept_types

#: What the manifest says of deadlines in batch.
NO_DEADLINE = ("none: a batch job waits for every model (deadline_ms applies where a "
               "caller waits)")


class DeploymentPlan:
    """Scores a batch job's chunks through `rz` (a `chunks.Plan`).

    Args:
        rz: the deployment, its models loaded; its spec stays the job's.
        ids: the rows' ids (the log's, and the sticky key of rows without one).
        with_model: add `model` and `model_version` (of the answering model).
        all_roles: add every role's prediction columns (`<role>.<column>`).
        live: the job's log (None: no log).
        revision: the spec's revision in the registry (for the manifest).

    Raises:
        UsageError: two answering models give one column different types.
    """

    def __init__(self, rz: Rendezvous, ids: ChunkIds, *, with_model: bool = False,
                 all_roles: bool = False, live: LiveMonitor | None = None,
                 revision: int | None = None) -> None:
        self.rz, self.ids, self.with_model, self.all_roles = rz, ids, with_model, all_roles
        self.spec, self.revision = rz.spec, revision
        self.scorers = {ref: rz.scorers.get(ref) for ref in self.spec.refs()}
        self.scorer = self.scorers[self.spec.champion]
        self.log = RoutedLog(live, self.spec.name) if live is not None else None
        self.predictions = dc.union_predictions(self.spec, self.scorers)
        self.default_type = dc.default_type(self.spec)
        self.roles = [(name, role, ref, list(prediction_schema(self.scorers[ref].task,
                                                               self.scorers[ref].classes)))
                      for name, role, ref in dc.role_names(self.spec)] if all_roles else []
        default = [pa.field(dc.DEFAULT_VALUE, self.default_type)] if self.default_type else []
        self._stacked = [*self.predictions, *default, *dc.MODEL, *dc.WHO]
        self._answers: Counter[tuple[str, str, str]] = Counter()
        self._off: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    # --- the run's questions (chunks.Plan) -----------------------------------------------

    def check_columns(self, available: Sequence[str], policy: ColumnPolicy) -> ColumnCheck:
        """Every model's required columns are in the input (`runs.check_columns` of each);
        the champion's check is the run's."""
        for ref, scorer in self.scorers.items():
            if ref != self.spec.champion:
                check_columns(scorer, available, policy)
        return check_columns(self.scorer, available, policy)

    def kept(self, keep: Sequence[str] | None, available: Sequence[str]) -> list[str]:
        """`runs.kept_columns`, also refusing a kept column named as an output column."""
        names = kept_columns(keep, available, self.scorer)
        clash = sorted(set(names) & set(self.schema(pa.schema([])).names))
        if clash:
            raise UsageError(f"input column(s) {', '.join(clash)} would clash with the "
                             "deployment's output columns; leave them out of --keep")
        return names

    def schema(self, kept: pa.Schema) -> pa.Schema:
        """The output columns (see `deployed_columns`)."""
        fields = [pa.field("row", pa.int64()), *kept, *self.predictions]
        if self.default_type is not None:
            fields.append(pa.field(dc.DEFAULT_VALUE, self.default_type))
        if self.with_model:
            fields += dc.MODEL
        fields += dc.WHO
        for name, _, _, own in self.roles:
            fields += [pa.field(f"{name}.{f.name}", f.type) for f in own]
        return pa.schema(fields)

    def cached_fields(self) -> list[str]:
        """What a Redis cache keeps per key: the answer's columns and who answered."""
        names = [f.name for f in self.predictions]
        return names + ([dc.DEFAULT_VALUE] if self.default_type is not None else []) + \
            ["answered_by", "role", "fallback"]

    # --- one chunk -------------------------------------------------------------------------

    def score(self, batch: pa.RecordBatch, where: np.ndarray, keep: list[str],
              schema: pa.Schema) -> Scored:
        """Answer the chunk's rows (input positions `where`); its output table, rejects
        and counts."""
        ids = self.ids(batch, where)  # read by index where needed (NumberedIds: lazily)
        around = self.log.around(ids) if self.log is not None else None
        answers = score_table(self.rz, batch, ids, all_roles=self.all_roles, around=around)
        unfit = self._unfit_defaults(answers)
        parts = self._parts(answers, unfit)
        positions, arrays = dc.stack(parts, self._stacked)
        columns = dict(zip([f.name for f in self._stacked], arrays, strict=True))
        columns["row"] = pa.array(where[positions], pa.int64())
        taken = pa.array(positions, pa.int64())
        for n in keep:
            columns[n] = batch.column(n).take(taken)
        columns.update(self._role_columns(answers, positions))
        table = pa.Table.from_arrays([columns[f.name] for f in schema],
                                     schema=with_kept_types(schema, batch, keep))
        rejects = self._rejects(answers, where, unfit)
        flagged, flags = _flags(answers)
        self._count(answers, unfit)
        if self.log is not None:
            self._log_unscored(answers, batch, ids, unfit)
        n = batch.num_rows
        return Scored(table, rejects, n, len(positions), n - len(positions), flagged, flags)

    def _unfit_defaults(self, answers: TableAnswers) -> dict[int, str]:
        """Rows the default answered with a value `default_value` cannot hold: why."""
        t = self.default_type
        if t is None:
            return {}
        return {r: (f"the default gave {v!r}, which the output's {dc.DEFAULT_VALUE} column "
                    f"({t}) cannot hold") for r, v in answers.values.items()
                if answers.who[r] == DEFAULT and not dc.fits(v, t)}

    def _parts(self, answers: TableAnswers, unfit: dict[int, str]
               ) -> list[tuple[np.ndarray, dc.Part]]:
        """(table positions, columns) of the rows each answering call scored, and of the
        rows the default answered."""
        parts = []
        for ci in np.unique(answers.who[answers.who >= 0]).tolist():
            call = answers.calls[ci]
            result = call.result
            assert result is not None
            rows = call.rows[result.rows]
            k = len(rows)
            label = result.model if result.version is None else \
                f"{result.model}/{result.version}"
            cols = dc.predictions(result, self.predictions)
            cols.update(self._who(answers, rows, label, call.role.value))
            cols["model"] = dc.repeat(result.model, k, pa.string())
            cols["model_version"] = dc.repeat(result.version, k, pa.int64())
            parts.append((rows, cols))
        rows = np.asarray(sorted(r for r in answers.values if r not in unfit
                                 and answers.who[r] == DEFAULT), np.int64)
        if len(rows):
            cols = self._who(answers, rows, "default", Role.DEFAULT.value)
            assert self.default_type is not None
            cols[dc.DEFAULT_VALUE] = pa.array([answers.values[r] for r in rows.tolist()],
                                              self.default_type)
            parts.append((rows, cols))
        return parts

    @staticmethod
    def _who(answers: TableAnswers, rows: np.ndarray, label: str, role: str) -> dc.Part:
        k = len(rows)
        reasons = [answers.reason(r) or None for r in rows.tolist()] if answers.reasons \
            else None
        return {"answered_by": dc.repeat(label, k, pa.string()),
                "role": dc.repeat(role, k, pa.string()),
                "fallback": pa.array(answers.fallback[rows], pa.bool_()),
                "fallback_reason": pa.array(reasons, pa.string()) if reasons is not None
                else pa.nulls(k, pa.string())}

    def _role_columns(self, answers: TableAnswers, at: np.ndarray) -> dict[str, pa.Array]:
        """`<role>.<column>` of each role (`--all-roles`) at the output's rows."""
        out: dict[str, pa.Array] = {}
        for name, role, ref, own in self.roles:
            parts = []
            for call in answers.calls:
                if (call.role, call.ref) == (role, ref) and call.result is not None:
                    rows = call.rows[call.result.rows]
                    parts.append((rows, dc.predictions(call.result, own)))
            positions, arrays = dc.stack(parts, own)
            for f, a in zip(own, dc.align(positions, arrays, at), strict=True):
                out[f"{name}.{f.name}"] = a
        return out

    def _rejects(self, answers: TableAnswers, where: np.ndarray, unfit: dict[int, str]
                 ) -> list[RejectRow]:
        """The rejected rows: refused by their answering model (every problem), answered
        by nobody, or given a default the output cannot hold."""
        out = []
        for ci in np.unique(answers.who[answers.who >= 0]).tolist():
            call = answers.calls[ci]
            assert call.result is not None
            for j in call.result.rejects:
                if not j.reason.startswith("model error"):
                    out.append(RejectRow(int(where[call.rows[j.row]]), j.column, j.reason,
                                         text(j.value)))
        for r, why in [*answers.problems.items(), *unfit.items()]:
            out.append(RejectRow(int(where[r]), None, why))
        return sorted(out, key=lambda j: j.row)

    # --- counts and the log ------------------------------------------------------------------

    def _count(self, answers: TableAnswers, unfit: dict[int, str]) -> None:
        answered: Counter[tuple[str, str, str]] = Counter()
        off: Counter[tuple[str, str, str]] = Counter()
        for i, call in enumerate(answers.calls):
            r = call.result
            key = (call.role.value, call.ref)
            if call.answering and r is not None:
                answered[(*key, "answered")] += r.n_scored
                answered[(*key, "refused")] += int((answers.who[call.rows] == i).sum()) \
                    - r.n_scored
            elif not call.answering:
                off[(*key, "scored")] += r.n_scored if r is not None else 0
                off[(*key, "rejected")] += r.n_rejected if r is not None else 0
                off[(*key, "failed")] += 0 if r is not None else len(call.rows)
        answered[("default", "", "answered")] += int((answers.who == DEFAULT).sum()) - len(unfit)
        answered[("", "", "fallback")] += int(answers.fallback.sum())
        answered[("", "", "unanswered")] += len(answers.problems) + len(unfit)
        if len(answers.decoy):
            off[(Role.DECOY.value, "", "archived")] += len(answers.decoy)
        with self._lock:
            self._answers.update(answered)
            self._off.update(off)

    def _log_unscored(self, answers: TableAnswers, batch: pa.RecordBatch, ids: Sequence[str],
                      unfit: dict[int, str]) -> None:
        assert self.log is not None
        if len(answers.decoy):
            self.log.unscored(Role.DECOY.value, _raw(batch, answers.decoy),
                              [ids[r] for r in answers.decoy.tolist()])
        rows = np.asarray(sorted(r for r in answers.values if answers.who[r] == DEFAULT
                                 and r not in unfit), np.int64)
        if len(rows):
            values = np.asarray([answers.values[r] for r in rows.tolist()],
                                dtype=float if self.default_type == pa.float64() else object)
            self.log.unscored(Role.DEFAULT.value, _raw(batch, rows),
                              [ids[r] for r in rows.tolist()], values)

    def finish(self, manifest: RunManifest) -> None:
        """The manifest's `deployment` section: the spec and revision, the deadline rule,
        `answered` (rows each model answered, and `refused`: rows it answered with a
        reject), `fallbacks`, `unanswered`, and `off_path` (what each model scored off the
        answer: shadows, canaries, the decoy's rows; with --all-roles the answering models'
        other rows)."""
        with self._lock:
            answers, off = dict(self._answers), dict(self._off)
        manifest.deployment = {
            "name": self.spec.name, "revision": self.revision, "spec": self.spec.to_dict(),
            "deadline": NO_DEADLINE, "all_roles": self.all_roles,
            "answered": [{"role": role, "ref": ref or None, "rows": n,
                          "refused": answers.get((role, ref, "refused"), 0)}
                         for (role, ref, what), n in answers.items()
                         if what == "answered" and n],
            "fallbacks": answers.get(("", "", "fallback"), 0),
            "unanswered": answers.get(("", "", "unanswered"), 0),
            "off_path": _off_path(off)}


def _off_path(off: dict[tuple[str, str, str], int]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (role, ref, what), n in off.items():
        rows.setdefault((role, ref), {"role": role, "ref": ref or None})[what] = n
    return list(rows.values())


def _flags(answers: TableAnswers) -> tuple[int, dict[str, dict[str, int]]]:
    """(rows flagged, flag kind -> column -> rows) of the answering calls."""
    flagged, flags = 0, {}  # type: int, dict[str, dict[str, int]]
    for ci in np.unique(answers.who[answers.who >= 0]).tolist():
        result = answers.calls[ci].result
        assert result is not None
        flagged += result.n_flagged
        for kind, cols in result.flag_counts().items():
            for col, k in cols.items():
                flags.setdefault(kind, {})[col] = flags.get(kind, {}).get(col, 0) + k
    return flagged, flags


def _raw(batch: pa.RecordBatch, rows: np.ndarray) -> list[dict[str, Any]]:
    """The records of `rows` as received."""
    return batch.take(pa.array(rows, pa.int64())).to_pylist()


__all__ = ["NO_DEADLINE", "DeploymentPlan"]
