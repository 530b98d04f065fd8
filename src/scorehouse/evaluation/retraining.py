"""`retrain`: a registered version's training recipe fitted again on new data, packaged
and registered as a new version whose lineage names its parent, evaluated beside the
versions its gates compare it with on the same holdout, and given the `challenger` alias
through that alias's gates.

What it does, in order (what `scorehouse retrain` calls):

1. reads the parent's recipe (`Manifest.recipe`; none: UsageError, exit 2) and the new
   data; data whose fingerprint the parent was trained or retrained on, or a retrain of
   the same parent was, changes nothing (a no-op, `Retraining.noop`);
2. holds rows out as the recipe says (a fraction drawn with a seed) or evaluates on a
   holdout file (`holdout=`, or the one named at packaging), and fits on the rest
   (`packaging.recipe.fit`);
3. packages the fit (the parent's description, card text, compilation and recipe kept;
   `lineage.parent` and `lineage.retrain_data` set) and registers it;
4. evaluates the new version, its parent and every version a relative rule of the alias's
   gates names (`roc_auc >= production - 0.01`) on that holdout, and keeps each result on
   its version, so every comparison is on the same rows;
5. runs the alias's gates (`promotion.promote`): passed, the alias points at the new
   version; refused, the alias stays where it was and the new version stays registered
   (`Retraining.refused`; the CLI exits 6). An alias other than `challenger` is moved only
   through a gate policy: nothing reaches production without the gates.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..artifact import CARD_FILE, Artifact, CardText, HoldoutSplit, TrainingData
from ..artifact.hashing import fingerprint_frame
from ..errors import NotFoundError, UsageError
from ..packaging import package, read_frame
from ..packaging.parity import TOLERANCE
from ..packaging.recipe import check_columns, fit, split
from ..registry import AliasMove, ModelVersion, Registry
from ..registry.refs import valid_name
from .evaluate import evaluate_table, file_sha256, read_holdout
from .gates import GatePolicy, GateReport, GatesRefused
from .promotion import promote
from .result import Evaluation, Holdout

#: The alias a retrained version is offered as, unless told otherwise.
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Retraining:
    """What `retrain` did. `noop`: the data was seen before (`same_as` names the version
    trained on it); else `version` is the new version, `evaluations` the holdout results by
    version, `report` the alias's gates, and `move` the alias move (None: `refused`)."""

    parent: str  # "churn/3"
    alias: str  # "challenger"
    data: TrainingData  # the new data as given: fingerprint, rows, columns, target, source
    version: str | None = None  # "churn/5"
    same_as: str | None = None  # the no-op's version already trained on this data
    current: str | None = None  # a no-op's: the version the alias points at (None: unset)
    split: str = ""  # how the holdout was made: "20% of rows, seed 0" or "the file h.parquet"
    train_rows: int = 0
    holdout: Holdout | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    report: GateReport | None = None
    move: AliasMove | None = None

    @property
    def noop(self) -> bool:
        """Nothing was done: the data's fingerprint was seen before."""
        return self.version is None

    @property
    def refused(self) -> bool:
        """The gates refused the new version the alias (it stays registered)."""
        return not self.noop and self.move is None

    @property
    def exit_code(self) -> int:
        """The CLI's: 6 when the gates refused (as `promote`), else 0."""
        return GatesRefused.exit_code if self.refused else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the `--json` output): metric values only, by version."""
        return {
            "parent": self.parent, "alias": self.alias, "noop": self.noop,
            "same_as": self.same_as, "current": self.current, "version": self.version,
            "refused": self.refused,
            "data": self.data.to_dict(), "split": self.split, "train_rows": self.train_rows,
            "holdout": None if self.holdout is None else vars(self.holdout),
            "metrics": {ref: dict(e.metrics.values) for ref, e in self.evaluations.items()},
            "gates": None if self.report is None else self.report.to_dict(),
            "move": None if self.move is None else self.move.to_dict(),
        }


def retrain(ref: str, data: Any, *, holdout: str | os.PathLike[str] | None = None,
            alias: str = CHALLENGER, segments: Sequence[str] = (),
            registry: Registry | None = None, reason: str = "", user: str | None = None
            ) -> Retraining:
    """Retrain the version `ref` names on `data` (a DataFrame, Arrow table or file path) and
    offer the new version as `alias` through its gates (see the module docstring).

    Raises:
        UsageError: (exit 2) the version has no training recipe; an alias other than
            `challenger` without a gate policy; too few rows to hold any out.
        NotFoundError: no such model, version, alias, data or holdout file.
        SchemaError: the data or holdout lacks a column the recipe needs.
        ModelError: fitting failed; TrustError: as `packaging.recipe.fit`.
    """
    reg = registry or Registry()
    valid_name(alias, "alias")
    parent = reg.resolve(ref)
    art = reg.load_artifact(parent.ref)[0]
    recipe = art.manifest.recipe
    if recipe is None:
        raise UsageError(f"{parent.ref} was packaged without a training recipe, so it cannot be "
                         "retrained: package a scikit-learn, LightGBM or XGBoost estimator with "
                         "its --target, or name a function with --recipe module:function")
    policy = _policy(reg, parent.name, alias)
    if isinstance(data, (str, os.PathLike)) and not Path(data).exists():
        raise NotFoundError(f"no data file {os.fspath(data)}")
    frame = read_frame(data)
    check_columns(list(frame.columns), recipe, "the new data")
    given = TrainingData(fingerprint=fingerprint_frame(frame), rows=int(len(frame)),
                         columns=[str(c) for c in frame.columns], target=recipe.target,
                         source=os.fspath(data) if isinstance(data, (str, os.PathLike)) else None)
    same = _same_data(reg, parent, given.fingerprint)
    if same is not None:
        now = _alias_version(reg, parent.name, alias)
        return Retraining(parent.ref, alias, given, same_as=same, current=now)
    train, table, described = _holdout(frame, recipe.split, holdout, recipe.target, given.source)
    check_columns(table.column_names, recipe, f"the holdout {described.path}")
    mv = _register(reg, art, parent, fit(art, train), train, given, user)
    compared = _compared(reg, parent, mv, policy)
    evaluations = {r: _evaluate(reg, r, table, recipe.target, segments, described, user)
                   for r in compared}
    base = Retraining(parent.ref, alias, given, mv.ref, split=_split_text(recipe.split, holdout),
                      train_rows=int(len(train)), holdout=described, evaluations=evaluations)
    why = f"retrained from {parent.ref}" + (f" on {given.source}" if given.source else "")
    try:
        done = promote(reg, mv.ref, alias, reason=f"{why}: {reason}" if reason else why,
                       user=user)
    except GatesRefused as e:
        return replace(base, report=e.report)
    return replace(base, report=done.report, move=done.move)


def _policy(reg: Registry, name: str, alias: str) -> GatePolicy | None:
    """The alias's gate policy; refuses an alias other than `challenger` that has none."""
    stored = reg.gate_policy(name, alias)
    policy = None if stored is None or stored.policy is None else GatePolicy.from_dict(stored.policy)
    if not policy and alias != CHALLENGER:
        raise UsageError(f"{name}@{alias} has no gate policy: retrain moves an alias other than "
                         f"{CHALLENGER} only through gates (scorehouse gates set {name} {alias} "
                         "--rule ...)")
    return policy


def _same_data(reg: Registry, parent: ModelVersion, fingerprint: str) -> str | None:
    """The version already fitted on data of this fingerprint: the parent (trained or
    retrained on it) or an earlier retrain of the parent; None when there is none."""
    def seen(lineage: dict[str, Any]) -> bool:
        return any((lineage.get(k) or {}).get("fingerprint") == fingerprint
                   for k in ("training_data", "retrain_data"))

    if seen(parent.lineage):
        return parent.ref
    return next((v.ref for v in reg.versions(parent.name)
                 if v.lineage.get("parent") == parent.ref and seen(v.lineage)), None)


def _alias_version(reg: Registry, name: str, alias: str) -> str | None:
    try:
        return reg.resolve(f"{name}@{alias}").ref
    except NotFoundError:
        return None


def _holdout(frame: pd.DataFrame, recipe_split: HoldoutSplit, given: str | os.PathLike[str] | None,
             target: str, source: str | None) -> tuple[pd.DataFrame, pa.Table, Holdout]:
    """(rows to fit on, the holdout as a table, its description): the holdout file given
    (or named by the recipe), else the recipe's fraction of `frame` drawn with its seed."""
    path = os.fspath(given) if given is not None else recipe_split.path
    if path is not None:
        try:
            table = read_holdout(path)
        except NotFoundError:
            raise NotFoundError(f"no holdout file {path}" + ("" if given is not None else
                                " (the one named at packaging): pass --holdout FILE")) from None
        return frame, table, Holdout(path, file_sha256(path), target)
    train, held = split(frame, recipe_split)
    where = f"{source or 'the data'} ({recipe_split.describe()} held out)"
    described = Holdout(where, fingerprint_frame(held).removeprefix("sha256:"), target)
    return train, pa.Table.from_pandas(held, preserve_index=False), described


def _split_text(recipe_split: HoldoutSplit, given: str | os.PathLike[str] | None) -> str:
    if given is not None:
        return f"the file {os.fspath(given)}"
    return recipe_split.describe()


def _register(reg: Registry, art: Artifact, parent: ModelVersion, model: Any,
              train: pd.DataFrame, given: TrainingData, user: str | None) -> ModelVersion:
    """Package the fitted `model` as its parent was packaged, and register it."""
    m = art.manifest
    recipe = m.recipe
    assert recipe is not None  # retrain checked it
    parity = m.compiled.parity if m.compiled else None
    card = CardText.from_bytes(art.files[CARD_FILE], art.source) if CARD_FILE in art.files else None
    with tempfile.TemporaryDirectory(prefix="scorehouse-retrain-") as tmp:
        path = package(
            model, train, name=parent.name, path=Path(tmp) / f"{parent.name}.shz",
            target=recipe.target, description=m.description,
            features=None if recipe.function is not None else list(recipe.features),
            compile=m.compiled is not None,
            tolerance=parity.tolerance if parity is not None and parity.tolerance else TOLERANCE,
            card=card, recipe=recipe.function or True, holdout=recipe.split,
            parent=parent.ref, retrain_data=given)
        note = f"retrained from {parent.ref}" + (f" on {given.source}" if given.source else "")
        return reg.register(path, description=note, user=user)


def _compared(reg: Registry, parent: ModelVersion, new: ModelVersion,
              policy: GatePolicy | None) -> list[str]:
    """The versions evaluated on the holdout: the new one, its parent, and those the
    policy's relative rules name (the versions their aliases point at now)."""
    refs = [new.ref, parent.ref]
    for rule in policy.rules if policy else ():
        if rule.alias is None:
            continue
        held = _alias_version(reg, parent.name, rule.alias)
        if held is not None:  # no such alias yet: that gate skips
            refs.append(held)
    return list(dict.fromkeys(refs))


def _evaluate(reg: Registry, ref: str, table: pa.Table, target: str, segments: Sequence[str],
              described: Holdout, user: str | None) -> Evaluation:
    result = evaluate_table(reg.load(ref), table, target, segments, described)
    reg.record_evaluation(ref, result, user=user)
    return result
