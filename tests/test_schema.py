"""Schema inference and the one set of coercion rules, for every input shape and bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorehouse.errors import SchemaError
from scorehouse.schema import Column, Schema, infer_schema, validate_batch, validate_row
from scorehouse.schema.validate import MISSING_COLUMN

SCHEMA = Schema((
    Column("tenure", "integer", min=0, max=72),
    Column("charges", "number", nullable=True, min=10.0, max=120.0),
    Column("plan", "string", categories=("bronze", "gold", "silver")),
    Column("active", "boolean", nullable=True),
))
GOOD = {"tenure": 3, "charges": 50.5, "plan": "gold", "active": True}


def test_infer_schema_types_nullability_categories_ranges():
    df = pd.DataFrame({
        "n": [1, 2, 3], "x": [0.5, np.nan, 2.0], "c": ["a", None, "b"],
        "b": [True, False, True], "k": pd.Categorical(["u", "v", "u"]),
        "t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    })
    s = infer_schema(df)
    assert [(c.name, c.type, c.nullable) for c in s.columns] == [
        ("n", "integer", False), ("x", "number", True), ("c", "string", True),
        ("b", "boolean", False), ("k", "string", False), ("t", "datetime", False)]
    assert s["n"].min == 1 and s["n"].max == 3
    assert s["c"].categories == ("a", "b") and s["k"].categories == ("u", "v")
    assert s["k"].dtype == "category"
    assert Schema.from_dict(s.to_dict()) == s


def test_infer_schema_limits_categories_and_rejects_mixed_columns():
    high = pd.DataFrame({"id": [f"u{i}" for i in range(50)]})
    assert infer_schema(high, category_limit=10)["id"].categories is None
    with pytest.raises(SchemaError, match="mixes strings"):
        infer_schema(pd.DataFrame({"m": ["a", 1, "b"]}))
    with pytest.raises(SchemaError, match="lacks"):
        infer_schema(pd.DataFrame({"a": [1]}), ["a", "zzz"])


def test_schema_override_and_errors():
    s = SCHEMA.override({"tenure": {"nullable": True, "max": 100}})
    assert s["tenure"].nullable and s["tenure"].max == 100
    with pytest.raises(SchemaError, match="unknown column"):
        SCHEMA.override({"nope": {"nullable": True}})
    with pytest.raises(SchemaError, match="cannot set"):
        SCHEMA.override({"tenure": {"colour": "red"}})
    with pytest.raises(SchemaError, match="unknown type"):
        Column("a", "decimal")


def test_good_row_scores_and_extra_columns_are_ignored():
    values, rejects, flags = validate_row(SCHEMA, {**GOOD, "extra": "ignored"})
    assert not rejects and not flags
    assert values == {"tenure": 3, "charges": 50.5, "plan": "gold", "active": True}
    v = validate_batch(SCHEMA, [{**GOOD, "extra": object()}])
    assert not v.rejects and list(v.rows) == [0] and "extra" not in v.columns


@pytest.mark.parametrize("change, column, reason", [
    ({"tenure": "abc"}, "tenure", "cannot read 'abc' as an integer"),
    ({"tenure": 3.5}, "tenure", "expected an integer, got 3.5"),
    ({"tenure": True}, "tenure", "expected a number, got a boolean"),
    ({"tenure": None}, "tenure", "missing value"),
    ({"tenure": ""}, "tenure", "missing value"),
    ({"charges": "1e400"}, "charges", "infinite value"),
    ({"charges": float("inf")}, "charges", "infinite value"),
    ({"charges": [1, 2]}, "charges", "expected a number, got list"),
    ({"plan": True}, "plan", "expected a string, got a boolean"),
    ({"plan": None}, "plan", "missing value"),
    ({"active": "maybe"}, "active", "cannot read 'maybe' as a boolean"),
])
def test_each_bad_value_is_rejected_with_row_column_and_reason(change, column, reason):
    row = {**GOOD, **change}
    _, rejects, _ = validate_row(SCHEMA, row)
    assert [(r.row, r.column) for r in rejects] == [(0, column)]
    assert reason in rejects[0].reason
    batch = validate_batch(SCHEMA, [GOOD, row, GOOD])
    assert [(r.row, r.column) for r in batch.rejects] == [(1, column)]
    assert reason in batch.rejects[0].reason
    assert list(batch.rows) == [0, 2] and batch.n_read == 3
    assert f"row 1, column '{column}'" in str(batch.rejects[0])


def test_missing_required_column_rejects_every_row_but_nullable_is_fine():
    rows = [{k: v for k, v in GOOD.items() if k != "tenure"}] * 3
    v = validate_batch(SCHEMA, rows)
    assert len(v.rows) == 0 and {r.reason for r in v.rejects} == {MISSING_COLUMN}
    assert [r.row for r in v.rejects] == [0, 1, 2]
    table = pa.table({"tenure": [1, 2], "plan": ["gold", "bronze"]})  # no charges/active
    v = validate_batch(SCHEMA, table)
    assert not v.rejects and np.isnan(v.columns["charges"]).all()


def test_unseen_category_and_out_of_range_are_flagged_but_scored():
    row = {**GOOD, "plan": "diamond", "tenure": 99, "charges": 5}
    values, rejects, flags = validate_row(SCHEMA, row)
    assert not rejects and values["plan"] == "diamond"
    assert sorted(flags) == [("out_of_range", "charges"), ("out_of_range", "tenure"),
                             ("unseen_category", "plan")]
    v = validate_batch(SCHEMA, [GOOD, row])
    assert list(v.rows) == [0, 1]
    assert {k: list(x) for k, x in v.flags.items()} == {
        ("unseen_category", "plan"): [1], ("out_of_range", "tenure"): [1],
        ("out_of_range", "charges"): [1]}


def test_csv_strings_and_json_values_behave_the_same(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("tenure,charges,plan,active\n42,50.5,gold,true\n7,,silver,no\n")
    from_csv = validate_batch(SCHEMA, pv.read_csv(p))
    as_strings = validate_batch(SCHEMA, [
        {"tenure": "42", "charges": "50.5", "plan": "gold", "active": "true"},
        {"tenure": "7", "charges": "", "plan": "silver", "active": "no"}])
    as_json = validate_batch(SCHEMA, [
        {"tenure": 42, "charges": 50.5, "plan": "gold", "active": True},
        {"tenure": 7, "charges": None, "plan": "silver", "active": False}])
    for v in (from_csv, as_strings):
        assert not v.rejects
        for name in SCHEMA.names:
            a, b = v.columns[name], as_json.columns[name]
            assert pd.Series(a).astype(object).where(pd.notna(a), None).tolist() == \
                pd.Series(b).astype(object).where(pd.notna(b), None).tolist(), name
    assert from_csv.columns["tenure"].dtype == np.int64


def test_null_tokens_stay_values_when_they_are_training_categories():
    s = Schema((Column("discount", "string", nullable=True, categories=("10%", "None")),))
    values, rejects, flags = validate_row(s, {"discount": "None"})
    assert values["discount"] == "None" and not flags
    v = validate_batch(s, pa.table({"discount": ["None", "NA", "10%"]}))
    assert list(v.columns["discount"]) == ["None", None, "10%"] and not v.rejects
    strict = validate_batch(s.override({"discount": {"nullable": False}}),
                            pa.table({"discount": ["None", "NA"]}))
    assert [(r.row, r.reason[:13]) for r in strict.rejects] == [(1, "missing value")]


@pytest.mark.parametrize("shape", ["arrow", "pandas", "records"])
def test_every_input_shape_gives_the_same_columns(shape):
    rows = [GOOD, {**GOOD, "tenure": 10, "charges": None, "active": None}]
    df = pd.DataFrame(rows)
    data = {"arrow": pa.Table.from_pandas(df), "pandas": df, "records": rows}[shape]
    v = validate_batch(SCHEMA, data)
    assert not v.rejects
    assert list(v.columns["tenure"]) == [3, 10]
    assert v.columns["charges"][0] == 50.5 and math.isnan(v.columns["charges"][1])
    assert list(v.columns["plan"]) == ["gold", "gold"]


def test_unsupported_inputs_are_clear_errors():
    with pytest.raises(SchemaError, match="cannot score a int"):
        validate_batch(SCHEMA, 42)
    with pytest.raises(SchemaError, match="row 1: expected a record"):
        validate_batch(SCHEMA, [GOOD, "oops"])


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "NA", "null", "42", "3.5", "-1", "1e3", "true", "no", "gold",
                     "diamond", "abc", " 7 ", "inf", "nan"]),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({name: VALUES for name in SCHEMA.names}))
def test_single_row_path_and_batch_path_agree(row):
    values, rejects, flags = validate_row(SCHEMA, row)
    batch = validate_batch(SCHEMA, [row])
    assert [(r.column, r.reason) for r in rejects] == [(r.column, r.reason) for r in batch.rejects]
    if rejects:
        return
    assert sorted(flags) == sorted(batch.flags)
    for name, v in values.items():
        b = batch.columns[name][0]
        if v is None:
            assert b is None or (isinstance(b, float) and math.isnan(b))
        else:
            assert b == v, name


TEXTS = st.one_of(st.none(), st.sampled_from(
    ["", " ", "NA", "null", "42", "3.5", "-1", "1e3", "true", "no", "gold", "abc", " 7 ", "inf",
     "-inf", "nan", "NaN", "-nan", "5.", "1_000", "+5", ".5", "0x10", "9223372036854775808", "1E400"]),
    st.text(max_size=5))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({name: TEXTS for name in SCHEMA.names}), min_size=1,
                max_size=4))
def test_text_columns_as_read_from_a_csv_agree_with_the_single_row_rule(rows):
    import pyarrow as pa

    table = pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in SCHEMA.names})
    batch = validate_batch(SCHEMA, table)
    expected = []
    for i, row in enumerate(rows):
        expected += [(i, r.column, r.reason) for r in validate_row(SCHEMA, row)[1]]
    assert [(r.row, r.column, r.reason) for r in batch.rejects] == expected
    kept = [i for i in range(len(rows)) if i not in {e[0] for e in expected}]
    assert batch.rows.tolist() == kept
    for j, i in enumerate(kept):
        values = validate_row(SCHEMA, rows[i])[0]
        for name, v in values.items():
            b = batch.columns[name][j]
            if v is None:
                assert b is None or (isinstance(b, float) and math.isnan(b)), name
            else:
                assert b == v, name


STRING_SCHEMA = Schema((
    Column("plan", "string", nullable=True, categories=("gold", "None", " ")),
    Column("free", "string", nullable=True),
))
STRINGS = st.one_of(st.none(), st.sampled_from(
    ["", " ", "NA", " na", "N/A ", "None", "none", "NULL", "nan", "NaN", "NaT", "<NA>", "gold",
     "Gold", " gold", "\tnull\n", "\u00a0"]), st.text(max_size=3))


def _padded_dictionary(values: list) -> pa.DictionaryArray:
    """A dictionary array as a reader may hand it over: with a null entry that missing values
    point at, and entries no row uses or that repeat another's value."""
    entries = sorted({v for v in values if v is not None})
    dictionary = pa.array([None, *entries, *entries[:1], "unused"], pa.string())
    index = {v: i + 1 for i, v in enumerate(entries)}
    return pa.DictionaryArray.from_arrays(
        pa.array([0 if v is None else index[v] for v in values], pa.int32()), dictionary)


def _string_shapes(values: list) -> dict:
    """One string column in every typed shape that takes the distinct-values path."""
    half = len(values) // 2
    return {
        "arrow": pa.array(values, pa.string()),
        "chunked": pa.chunked_array([pa.array(values[:half], pa.string()),
                                     pa.array(values[half:], pa.string())]),
        "large": pa.array(values, pa.large_string()),
        "view": pa.array(values, pa.string_view()),
        "dictionary": pa.array(values, pa.string()).dictionary_encode(),
        "parquet dictionary": _padded_dictionary(values),
        "chunked dictionaries": pa.chunked_array([
            pa.array(values[:half], pa.large_string()).dictionary_encode(),
            _padded_dictionary(values[half:]).cast(pa.dictionary(pa.int32(), pa.large_string()))]),
        "pandas": pd.Series(values, dtype="string"),
        "category": pd.Series(values, dtype="category"),
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(STRINGS, STRINGS), min_size=1, max_size=8))
def test_typed_string_columns_agree_with_the_single_row_rule(pairs):
    rows = [{"plan": a, "free": b} for a, b in pairs]
    expected = [validate_row(STRING_SCHEMA, r) for r in rows]
    plans, frees = _string_shapes([a for a, _ in pairs]), _string_shapes([b for _, b in pairs])
    for shape in plans:
        columns = {"plan": plans[shape], "free": frees[shape]}
        data = pd.DataFrame(columns) if shape in ("pandas", "category") else pa.table(columns)
        batch = validate_batch(STRING_SCHEMA, data)
        assert not batch.rejects and batch.rows.tolist() == list(range(len(rows))), shape
        for i, (values, _, flags) in enumerate(expected):
            for name, v in values.items():
                b = batch.columns[name][i]
                assert b == v or (v is None and b is None), (shape, name, i)
            got = sorted(k for k, idx in batch.flags.items() if i in idx)
            assert got == sorted(flags), shape


def test_an_empty_chunked_string_column_is_an_empty_column():
    v = validate_batch(STRING_SCHEMA, pa.table({
        "plan": pa.chunked_array([], pa.string()), "free": pa.chunked_array([], pa.string())}))
    assert v.n_read == 0 and len(v.columns["plan"]) == 0


RULE_COLUMNS = [
    Column("n", "number", min=0.0, max=10.0), Column("n2", "number", nullable=True),
    Column("i", "integer", min=-5, max=5), Column("i2", "integer", nullable=True),
    Column("s", "string", categories=("gold", "NA", " ")), Column("s2", "string"),
    Column("b", "boolean"), Column("t", "datetime"),
]
RAW = st.one_of(VALUES, st.integers(), st.sampled_from(
    [2**63, -(2**63), 2**63 - 1, 10**400, " NA ", "Gold", "gold", "2024-01-02", np.float64(2.5),
     np.int64(3), np.str_("gold"), np.bool_(True), pd.NA, pd.NaT, float("-inf")]))


def _outcome(fn, v):
    try:
        return "ok", fn(v)
    except Exception as e:  # the reference may raise other errors (OverflowError): same ones
        return type(e).__name__, str(e)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(RULE_COLUMNS), RAW)
def test_compiled_single_row_rule_is_coerce_value_then_flag_of(col, v):
    from scorehouse.schema.coerce import coerce_value, flag_of, row_rule

    def reference(x):
        value = coerce_value(col, x)
        return value, flag_of(col, value)

    got, want = _outcome(row_rule(col), v), _outcome(reference, v)
    assert got == want or (got[0] == want[0] == "ok" and pd.isna(got[1][0])
                           and pd.isna(want[1][0])), (col, v, got, want)
    if got[0] == "ok" and got[1][0] is not None:
        assert type(got[1][0]) is type(want[1][0])


def test_a_pickled_schema_drops_its_compiled_rules_and_rebuilds_them():
    import pickle

    validate_row(SCHEMA, GOOD)
    assert SCHEMA._derived
    copy = pickle.loads(pickle.dumps(SCHEMA))
    assert copy == SCHEMA and not copy._derived
    assert validate_row(copy, GOOD) == validate_row(SCHEMA, GOOD)


def test_loose_array_keeps_one_type_turns_decimals_to_doubles_and_mixed_to_text():
    import decimal
    import json

    import pyarrow as pa

    from scorehouse.schema.arrays import loose_array

    assert loose_array([1, None, 3]).type == pa.int64()
    d = loose_array([decimal.Decimal("1.10"), None])
    assert d.type == pa.float64() and d.to_pylist() == [1.1, None]
    assert loose_array([1, "x", None, True]).to_pylist() == ["1", "x", None, "True"]
    assert loose_array([{"a": 1}, "x", True], text=json.dumps).to_pylist() == \
        ['{"a": 1}', "x", "true"]
