"""MLflow's scoring protocol: `dataframe_split`, `dataframe_records`, `instances`, `inputs`
or a CSV body in; `{"predictions": [...]}` out, one object per row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa

from ...errors import InvalidInputError
from ...scorer import Result
from . import jsonbody

KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode(body: bytes, content_type: str) -> Any:
    """Rows for the scorer (records or an Arrow table) from an MLflow request body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        return _csv(body)
    if kind not in ("application/json", ""):
        raise InvalidInputError(f"unsupported content type {content_type!r}: send "
                                "application/json or text/csv")
    doc = jsonbody.loads(body)
    if not isinstance(doc, dict) or sum(k in doc for k in KEYS) != 1:
        raise InvalidInputError("the body must be a JSON object with exactly one of "
                                f"{', '.join(KEYS)}")
    key = next(k for k in KEYS if k in doc)
    return _rows(key, doc[key])


def _rows(key: str, value: Any) -> list[Mapping[str, Any]]:
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) \
                or not isinstance(value.get("data"), list):
            raise InvalidInputError('dataframe_split needs {"columns": [...], "data": [[...], ...]}')
        cols = value["columns"]
        if not all(isinstance(c, str) for c in cols):
            raise InvalidInputError("dataframe_split columns must be strings (column names)")
        rows: list[Mapping[str, Any]] = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(cols):
                raise InvalidInputError(f"dataframe_split row {i}: expected a list of "
                                        f"{len(cols)} values (one per column)")
            rows.append(dict(zip(cols, row, strict=True)))
        return rows
    if key == "inputs" and isinstance(value, dict):  # columnar: {"col": [v, ...], ...}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InvalidInputError("inputs as an object needs one list per column, all of "
                                    "the same length")
        n = lengths.pop()
        return [{c: v[i] for c, v in value.items()} for i in range(n)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidInputError(f"{key} must be a list of records (objects of column: value)")
    return value


def _csv(body: bytes) -> pa.Table:
    import pyarrow.csv as pv

    if not body.strip():
        raise InvalidInputError("the CSV body is empty")
    header = body.split(b"\n", 1)[0].decode("utf-8-sig", "replace").strip().split(",")
    try:
        return pv.read_csv(pa.BufferReader(body), convert_options=pv.ConvertOptions(
            column_types={n.strip('"'): pa.string() for n in header},
            strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        raise InvalidInputError(f"cannot read the CSV body: {e}") from None


def encode(result: Result, extra: dict[str, Any] | None = None) -> bytes:
    """`{"predictions": [{"label": ..., "probability_<class>": ...}, ...], **extra}`."""
    cols = result.columns()
    names = list(cols)
    values = [c.tolist() for c in cols.values()]
    body = {"predictions": [dict(zip(names, row, strict=True))
                            for row in zip(*values, strict=True)]}
    if extra:
        body.update(extra)
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
