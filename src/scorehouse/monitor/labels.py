"""Late labels: a file of id + target that arrives after scoring, cleaned and joined to
the logged predictions by id, with every label accounted for.

What happens to each label row (`LabelAccounting`), never silently:

- a null id or a null target: counted (`null_id`, `null_target`) and left out;
- an id given more than once: the last row of the file wins (a later correction); the
  earlier rows are counted in `duplicate_rows`, and ids whose repeats disagree on the
  target in `conflicting_ids`;
- a unique id then either matches a logged row (`matched`) or not (`unmatched`, the first
  `MAX_LISTED` listed): unmatched ids are labels of rows never logged, sampled out
  (`--log-to ...?sample=`), logged under another model, or older than `--since`;
- a matched id whose logged row was rejected has no prediction to score: counted in
  `matched_rejected` and left out of the metrics;
- an id logged more than once (a caller's key scored again): the most recent logged row
  is used, the others counted in `logged_duplicates`.

So `read = null_id + null_target + duplicate_rows + matched + unmatched`, and
`matched = scored + matched_rejected`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import NotFoundError, SchemaError, UsageError

#: Unmatched ids listed by name in a report (all of them are counted).
MAX_LISTED = 20
#: The joined table's column of the true target.
TARGET = "target"


@dataclass(frozen=True)
class LabelAccounting:
    """Where every label row went (see the module docstring for the identities)."""

    read: int
    null_id: int
    null_target: int
    duplicate_rows: int
    conflicting_ids: int
    matched: int
    unmatched: int
    matched_rejected: int
    scored: int
    logged_duplicates: int
    unmatched_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        d = asdict(self)
        d["unmatched_ids"] = list(self.unmatched_ids)
        return d


def read_labels(path: str | os.PathLike[str], id_column: str, target: str) -> pd.DataFrame:
    """The `id_column` and `target` columns of a Parquet or CSV file (gzip CSV too) as a
    frame of `id` (text) and `target`, in file order.

    Raises:
        NotFoundError: no such file.
        UsageError: a file that is neither Parquet nor CSV.
        SchemaError: the file lacks the id or target column.
    """
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"no such labels file: {p}")
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")) or p.is_dir():
        import pyarrow.parquet as pq

        columns = pq.read_schema(p).names if p.is_file() else None
        _require(columns, (id_column, target), p)
        frame = pd.read_parquet(p, columns=[id_column, target])
    elif name.endswith((".csv", ".csv.gz")):
        _require(list(pd.read_csv(p, nrows=0).columns), (id_column, target), p)
        # Ids stay text exactly as written (no 00123 -> 123 or 1e5 -> 100000.0).
        frame = pd.read_csv(p, usecols=[id_column, target], dtype={id_column: str})
    else:
        raise UsageError(f"labels file {p} is neither Parquet (.parquet) nor CSV (.csv, .csv.gz)")
    _require(list(frame.columns), (id_column, target), p)
    ids = frame[id_column]
    return pd.DataFrame({"id": ids.where(ids.isna(), ids.astype(str)), TARGET: frame[target]})


def _require(columns: list[str] | None, wanted: tuple[str, str], path: Path) -> None:
    if columns is None:
        return
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise SchemaError(f"labels file {path} has no column {missing[0]!r} (columns: "
                          f"{', '.join(map(str, columns[:20]))})")


def join_labels(labels: pd.DataFrame, logged: pa.Table) -> tuple[pa.Table, LabelAccounting]:
    """The scored logged rows that have a label, in time order (the log's columns, typed as
    logged, plus `target`), and the accounting of every label row.

    Args:
        labels: `read_labels`' frame (id, target).
        logged: log rows (`read_log` layout, time order) of one model.
    """
    read = len(labels)
    null_id = int(labels["id"].isna().sum())
    labels = labels[labels["id"].notna()]
    null_target = int(labels[TARGET].isna().sum())
    labels = labels[labels[TARGET].notna()]
    distinct = labels.groupby("id", sort=False)[TARGET].nunique()
    unique = labels.drop_duplicates("id", keep="last")
    log = logged.select(["id", "reject"]).to_pandas()
    log["_row"] = np.arange(len(log))
    # The log is in time order: keep the most recent row of an id logged twice.
    latest = log.drop_duplicates("id", keep="last")
    joined = unique.merge(latest, on="id", how="left", indicator=True)
    found = joined["_merge"] == "both"
    rejected = found & joined["reject"].notna()
    unmatched = joined.loc[~found, "id"]
    scored = joined[found & ~rejected]
    # Back to the logged Arrow rows (types as logged), then into time order for windows.
    table = logged.take(pa.array(scored["_row"].to_numpy(np.int64)))
    table = table.append_column(TARGET, pa.array(scored[TARGET].tolist()))
    table = table.take(pa.array(np.argsort(
        table.column("time").cast(pa.int64()).to_numpy(), kind="stable")))
    accounting = LabelAccounting(
        read, null_id, null_target, len(labels) - len(unique), int((distinct > 1).sum()),
        int(found.sum()), len(unmatched), int(rejected.sum()), table.num_rows,
        len(log) - len(latest), tuple(unmatched.head(MAX_LISTED).tolist()))
    return table, accounting


__all__ = ["MAX_LISTED", "TARGET", "LabelAccounting", "join_labels", "read_labels"]
