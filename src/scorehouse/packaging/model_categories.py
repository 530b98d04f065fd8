"""Categorical inputs a model records itself, for training data that lost the `category` dtype.

A LightGBM model trained on pandas `category` columns keeps their categories
(`pandas_categorical`, in the order of its categorical features). Training data read back
from CSV, or from Parquet written without pandas' metadata, holds those columns as plain
integers or text; LightGBM then refuses the frame ("categorical_feature do not match").
Packaging takes the categories from the model instead, so the schema rebuilds the frame the
model was trained on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..schema import Schema
from ..schema.categories import canonical_text, category_type_of


def lightgbm_categories(model: Any) -> dict[str, list[Any]]:
    """Feature name -> training categories of a LightGBM model's pandas categoricals."""
    booster = getattr(model, "booster_", model)
    cats = getattr(booster, "pandas_categorical", None)
    if not cats:
        return {}
    try:
        infos = booster.dump_model(num_iteration=1)["feature_infos"]
    except Exception:  # noqa: BLE001 - an unreadable model: nothing to learn from it
        return {}
    # Categorical features list the codes they saw; numeric ones an empty `values`.
    names = [n for n, info in infos.items() if isinstance(info, dict) and info.get("values")]
    return dict(zip(names, cats, strict=True)) if len(names) == len(cats) else {}


def with_model_categories(schema: Schema, model: Any) -> Schema:
    """`schema` with the model's own categoricals where the training data had a plain column."""
    changes = {}
    for name, cats in lightgbm_categories(model).items():
        if name not in schema or schema[name].dtype == "category":
            continue
        kind = category_type_of(name, pd.Index(cats))
        changes[name] = {"type": "string", "dtype": "category", "category_type": kind,
                         "categories": [canonical_text(kind, c) for c in cats],
                         "min": None, "max": None}
    return schema.override(changes) if changes else schema
