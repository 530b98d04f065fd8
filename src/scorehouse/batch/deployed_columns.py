"""The output columns of a deployment's batch job, and how a chunk's answers become them.

Columns, in order: `row`, the kept input columns, the prediction columns of every model
that may answer (the champion's first; a model's columns are null on rows another model
answered), `default_value` (when the spec has a default), `model` and `model_version`
(`--with-model`), then `answered_by` (model/version, or "default"), `role`, `fallback`,
`fallback_reason`, and with `--all-roles` each role's prediction columns as
`<role>.<column>`.

A role's name in those columns (`role_names`): `champion`; a challenger or a routed model
by its reference (`churn/3.probability_yes`); a shadow, a canary or a fallback by its role
when it is the only one of its role, else by its reference.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from ..routing import DeploymentSpec, Role
from ..routing.table import answering_roles
from ..scorer import Scorer, prediction_schema

#: The columns saying who answered a row.
WHO = (pa.field("answered_by", pa.string()), pa.field("role", pa.string()),
       pa.field("fallback", pa.bool_()), pa.field("fallback_reason", pa.string()))
DEFAULT_VALUE = "default_value"
MODEL = (pa.field("model", pa.string()), pa.field("model_version", pa.int64()))

#: Columns of one part of a chunk's output: name -> Arrow array (a missing name is null).
Part = dict[str, pa.Array]


def union_predictions(spec: DeploymentSpec, scorers: dict[str, Scorer]) -> list[pa.Field]:
    """The prediction fields of every model that may answer, in spec order, once each.

    Raises:
        UsageError: two models give one column different types (e.g. integer and text
            labels): one output column cannot hold both.
    """
    fields: dict[str, pa.Field] = {}
    owner: dict[str, str] = {}
    for _, ref in answering_roles(spec):
        s = scorers[ref]
        for f in prediction_schema(s.task, s.classes):
            if f.name in fields and fields[f.name].type != f.type:
                raise UsageError(f"deployment {spec.name}: {owner[f.name]} gives {f.name} as "
                                 f"{fields[f.name].type} and {ref} as {f.type}; a batch output "
                                 "column holds one type (score each model on its own)")
            fields.setdefault(f.name, f)
            owner.setdefault(f.name, ref)
    return list(fields.values())


def role_names(spec: DeploymentSpec) -> list[tuple[str, Role, str]]:
    """(column prefix, role, reference) of every model of the spec (see the module doc)."""
    counts: dict[Role, int] = {}
    for role, _ in spec.roles():
        counts[role] = counts.get(role, 0) + 1
    out = []
    for role, ref in spec.roles():
        if role is Role.CHAMPION:
            name = "champion"
        elif role in (Role.CHALLENGER, Role.ROUTED) or counts[role] > 1:
            name = ref
        else:
            name = role.value
        out.append((name, role, ref))
    return list(dict.fromkeys(out))


def default_type(spec: DeploymentSpec) -> pa.DataType | None:
    """The type of `default_value`: a constant's own (bool, text, else float64); for a
    rule, text when every value it can end in is a text constant, bool when every one is
    a truth value, else float64. None without a default."""
    d = spec.default
    if d is None:
        return None
    if d.rule is None:
        v = d.value
        return pa.bool_() if isinstance(v, bool) else pa.string() if isinstance(v, str) \
            else pa.float64()
    kinds = _ends(ast.parse(d.rule.text, mode="eval").body)
    if kinds and kinds <= {"text", "none"} and "text" in kinds:
        return pa.string()
    if kinds and kinds <= {"bool", "none"} and "bool" in kinds:
        return pa.bool_()
    return pa.float64()


def _ends(node: ast.AST) -> set[str]:
    """The kinds of value an expression of the rule language can end in."""
    if isinstance(node, ast.IfExp):
        return _ends(node.body) | _ends(node.orelse)
    if isinstance(node, ast.BoolOp):  # `a or b` is a or b
        return set().union(*(_ends(v) for v in node.values))
    if isinstance(node, (ast.Compare,)) or (isinstance(node, ast.UnaryOp)
                                            and isinstance(node.op, ast.Not)):
        return {"bool"}
    if isinstance(node, ast.Constant):
        v = node.value
        return {"bool" if isinstance(v, bool) else "text" if isinstance(v, str) else
                "none" if v is None else "number"}
    return {"number"}  # arithmetic, a field's value: read as a number


def fits(value: Any, type_: pa.DataType) -> bool:
    """Whether `default_value` of `type_` can hold `value` (None always)."""
    if value is None:
        return True
    if pa.types.is_boolean(type_):
        return isinstance(value, bool)
    if pa.types.is_string(type_):
        return isinstance(value, str)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stack(parts: Sequence[tuple[np.ndarray, Part]], fields: Sequence[pa.Field]
          ) -> tuple[np.ndarray, list[pa.Array]]:
    """Parts of rows (table positions, columns) as one set of columns in position order:
    (positions sorted, one array per field; null where a part lacks the field)."""
    if not parts:
        return np.empty(0, np.int64), [pa.nulls(0, f.type) for f in fields]
    positions = np.concatenate([p for p, _ in parts])
    order = pa.array(np.argsort(positions, kind="stable"), pa.int64())
    arrays = []
    for f in fields:
        pieces = [cols.get(f.name) for _, cols in parts]
        pieces = [pa.nulls(len(p), f.type) if a is None else
                  a if a.type == f.type else a.cast(f.type) for (p, _), a in zip(parts, pieces,
                                                                                  strict=True)]
        arrays.append(pa.concat_arrays(pieces).take(order))
    return positions[np.argsort(positions, kind="stable")], arrays


def align(positions: np.ndarray, arrays: Sequence[pa.Array], at: np.ndarray
          ) -> list[pa.Array]:
    """`arrays` (rows at sorted `positions`) at the rows `at`; null where they have none."""
    if not len(positions):
        return [pa.nulls(len(at), a.type) for a in arrays]
    i = np.minimum(np.searchsorted(positions, at), len(positions) - 1)
    present = positions[i] == at
    index = pa.array(i, pa.int64(), mask=~present)
    return [a.take(index) for a in arrays]


def predictions(result: Any, fields: Sequence[pa.Field]) -> Part:
    """The prediction columns of `result`'s scored rows (those of `fields` it has)."""
    types = {f.name: f.type for f in fields}
    return {name: pa.array(values, types[name], from_pandas=True)
            for name, values in result.columns().items() if name in types}


def repeat(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    """`n` times `value` (null when None)."""
    return pa.nulls(n, type_) if value is None else pa.repeat(pa.scalar(value, type_), n)


__all__ = ["DEFAULT_VALUE", "MODEL", "WHO", "Part", "align", "default_type", "fits",
           "predictions", "repeat", "role_names", "stack", "union_predictions"]
