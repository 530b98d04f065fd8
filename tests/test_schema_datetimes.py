"""Date-time inputs: every form a client sends follows one rule, or rejects its own row.

The model turns its date-time input into seconds since the start of the year (in the
column's zone) plus `amount`, so a value read an hour off is 3600 off: the native model on
the values the rule says (README, "Date-times") is the reference, to 1e-9 relative.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import scorehouse
from scorehouse.cli.app import main
from scorehouse.serve import ModelSet, create_app
from scorehouse.sql.postgres import install, python_paths

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the database imports no tests

#: (value as sent, the zone-less time it is under the rule for a zone-less column)
GOOD: list[tuple[Any, str]] = [
    ("2026-02-03 03:15:00", "2026-02-03 03:15:00"),       # no zone: as it is
    ("2026-02-03T04:15:00Z", "2026-02-03 04:15:00"),      # Z: UTC
    ("2026-02-03T07:15:00+02:00", "2026-02-03 05:15:00"),  # an offset: converted to UTC
    ("2026-02-02T22:15:00-05:00", "2026-02-03 03:15:00"),
    ("2026-02-03 09:15:00+0530", "2026-02-03 03:45:00"),
    ("3 Feb 2026 06:15", "2026-02-03 06:15:00"),           # other unambiguous formats
    ("2026/02/03 07:15:30", "2026-02-03 07:15:30"),
    ("20260203T081500", "2026-02-03 08:15:00"),
    ("13/02/2026", "2026-02-13 00:00:00"),
    (1770088500, "2026-02-03 03:15:00"),                   # epoch seconds (UTC)
    (1770088500.5, "2026-02-03 03:15:00.5"),
    ("1770092100", "2026-02-03 04:15:00"),                 # epoch seconds as text (CSV)
]
#: (value, words of the reason its row is rejected with)
BAD: list[tuple[Any, str]] = [
    ("garbage", "cannot read 'garbage' as a date-time"),
    ("03/02/2026", "day and month could be either way round"),
    ("now", "relative to when it is read"),
    (1770088500000, "not milliseconds"),
    ("9999-01-01", "outside the date-times"),
]


def features(X: pd.DataFrame) -> np.ndarray:
    t = pd.to_datetime(X["ts"])
    start = t.dt.floor("D") - pd.to_timedelta(t.dt.day_of_year - 1, unit="D")
    secs = (t - start).dt.total_seconds().to_numpy()
    return np.c_[secs, X["amount"].to_numpy(dtype=float)]


def _train(zone: str | None) -> tuple[Any, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 3600 * 24 * 90, n),
                                                      unit="s")
    frame = pd.DataFrame({"ts": ts if zone is None else ts.tz_localize(zone),
                          "amount": rng.uniform(1, 100, n)})
    y = features(frame) @ np.array([1.0, 1.0])
    model = make_pipeline(FunctionTransformer(features), LinearRegression()).fit(frame, y)
    return model, frame


@pytest.fixture(scope="module")
def naive_model(tmp_path_factory):
    model, frame = _train(None)
    path = scorehouse.package(model, frame, name="clock", task="regression",
                              path=tmp_path_factory.mktemp("dt") / "clock.shz")
    return model, path


@pytest.fixture(scope="module")
def paris_model(tmp_path_factory):
    model, frame = _train("Europe/Paris")
    path = scorehouse.package(model, frame, name="clockparis", task="regression",
                              path=tmp_path_factory.mktemp("dt") / "clockparis.shz")
    return model, path


def native(model, times: list[str], zone: str | None = None) -> np.ndarray:
    """The model on zone-less times (in UTC when `zone`, then shown in `zone`)."""
    ts = pd.to_datetime(pd.Series(times), format="ISO8601").dt.as_unit("us")
    if zone is not None:
        ts = ts.dt.tz_localize("UTC").dt.tz_convert(zone)
    return model.predict(pd.DataFrame({"ts": ts, "amount": 10.0}))


def close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-9, atol=1e-6)


def _mixed() -> tuple[list[Any], list[int], list[str]]:
    """Good and bad values interleaved: (values, rows of the good ones, their meanings)."""
    values, good_rows, meant = [], [], []
    bad = iter(BAD)
    for sent, means in GOOD:
        good_rows.append(len(values))
        values.append(sent)
        meant.append(means)
        b = next(bad, None)
        if b is not None:
            values.append(b[0])
    return values, good_rows, meant


def _assert_bad_rows_rejected(rejects: list[dict[str, Any]], values: list[Any]) -> None:
    reasons = {int(r["row"]): r["reason"] for r in rejects}
    want = {i: dict(BAD)[v] for i, v in enumerate(values) if any(v is b for b, _ in BAD)}
    assert set(reasons) == set(want), reasons
    for row, words in want.items():
        assert words in reasons[row]
    assert {r["column"] for r in rejects} == {"ts"}


def test_every_form_in_one_batch_through_the_python_api(naive_model):
    model, path = naive_model
    scorer = scorehouse.load(str(path), trust=True)
    values, good_rows, meant = _mixed()
    r = scorer.predict([{"ts": v, "amount": 10} for v in values])
    assert r.n_read == len(values) == r.n_scored + r.n_rejected
    assert r.rows.tolist() == good_rows
    close(r.output.values, native(model, meant))
    _assert_bad_rows_rejected([x.to_dict() for x in r.rejects], values)
    for (sent, means) in GOOD:  # one dict: the single-row path
        one = scorer.predict({"ts": sent, "amount": 10})
        close(one.output.values, native(model, [means]))


@pytest.mark.parametrize("zone", [None, "UTC", "+02:00", "Asia/Kolkata"])
def test_typed_columns_pandas_and_arrow(naive_model, zone):
    model, path = naive_model
    scorer = scorehouse.load(str(path), trust=True)
    utc = pd.to_datetime(pd.Series(["2026-02-03 03:15:00", "2026-03-04 23:59:59.25", None]),
                         format="ISO8601")
    ts = utc if zone is None else utc.dt.tz_localize("UTC").dt.tz_convert(zone)
    frame = pd.DataFrame({"ts": ts, "amount": 10.0})
    want = native(model, ["2026-02-03 03:15:00", "2026-03-04 23:59:59.25"])
    for data in (frame, pa.Table.from_pandas(frame)):
        r = scorer.predict(data)
        # The NaT row: the column had no missing value in training, so it is rejected.
        assert r.rows.tolist() == [0, 1] and [x.row for x in r.rejects] == [2]
        close(r.output.values, want)


def _score(*args: str) -> int:
    try:
        main(["score", *args, "--trust", "-q", "--max-reject-rate", "1"])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_scorehouse_score_csv_mixed_forms(naive_model, tmp_path):
    model, path = naive_model
    values, good_rows, meant = _mixed()
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"ts": [str(v) for v in values], "amount": 10}).to_csv(src, index=False)
    assert _score(str(path), str(src), str(out)) == 0
    got = pd.read_csv(out)
    assert got["row"].tolist() == good_rows
    close(got["value"], native(model, meant))
    _assert_bad_rows_rejected(pd.read_csv(f"{out}.rejects.csv").to_dict("records"), values)


@pytest.mark.parametrize("unit_zone", [("us", None), ("ns", "UTC"), ("ms", "+02:00"),
                                       ("s", "America/New_York")])
def test_scorehouse_score_parquet_timestamps(naive_model, tmp_path, unit_zone):
    unit, zone = unit_zone
    model, path = naive_model
    utc = ["2026-02-03 03:15:00", "2026-03-04 23:59:59", "2026-01-01 00:00:00"]
    ts = pd.to_datetime(pd.Series(utc)).dt.as_unit(unit)
    if zone is not None:
        ts = ts.dt.tz_localize("UTC").dt.tz_convert(zone)
    src, out = tmp_path / "in.parquet", tmp_path / "out.csv"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"ts": ts, "amount": 10.0})), src)
    t = pq.read_schema(src).field("ts").type  # Parquet has no seconds: those come as ms
    assert pa.types.is_timestamp(t) and t.tz == zone
    assert _score(str(path), str(src), str(out)) == 0
    close(pd.read_csv(out)["value"], native(model, utc))


def test_rest_server_answers_mixed_zones_and_names_bad_rows_never_5xx(naive_model):
    from conftest import Server

    model, path = naive_model
    values, good_rows, meant = _mixed()
    good = [sent for sent, _ in GOOD]
    want = native(model, meant)
    with Server(create_app(ModelSet([str(path)], trust=True))) as s, \
            httpx.Client(base_url=s.url, timeout=30) as http:
        r = http.post("/invocations", json={"dataframe_records": [{"ts": v, "amount": 10}
                                                                  for v in good]})
        assert r.status_code == 200, r.text
        close([p["value"] for p in r.json()["predictions"]], want)
        text = [str(v) for v in good]
        r = http.post("/v2/models/clock/infer", json={"inputs": [
            {"name": "ts", "datatype": "BYTES", "shape": [len(text)], "data": text},
            {"name": "amount", "datatype": "FP64", "shape": [len(text)], "data": [10] * len(text)}]})
        assert r.status_code == 200, r.text
        close(r.json()["outputs"][0]["data"], want)
        # Bad values: the scoring protocol answers 400 naming row and column; the native
        # route scores the good rows and lists the rejects.
        r = http.post("/invocations", json={"dataframe_records": [{"ts": v, "amount": 10}
                                                                  for v in values]})
        assert r.status_code == 400 and "'ts'" in r.text, r.text
        r = http.post("/models/clock/predict", json={"records": [{"ts": v, "amount": 10}
                                                                for v in values]})
        assert r.status_code == 200, r.text
        body = r.json()
        close([p["value"] for p in body["predictions"]], want)
        _assert_bad_rows_rejected(body["rejects"], values)


def test_a_zoned_training_column_takes_zone_less_values_as_its_wall_clock(paris_model):
    model, path = paris_model
    scorer = scorehouse.load(str(path), trust=True)
    assert scorer.schema["ts"].timezone == "Europe/Paris"
    sent = ["2026-02-03 04:15:00", "2026-02-03T03:15:00Z", "2026-07-01 12:00:00",
            "2026-03-29 02:30:00", "2026-10-25 02:30:00", 1770088500]
    r = scorer.predict([{"ts": v, "amount": 10} for v in sent])
    assert r.rows.tolist() == [0, 1, 2, 5]
    # Paris is UTC+1 in February and UTC+2 in July; 02:30 is skipped on 29 March and
    # happens twice on 25 October.
    close(r.output.values, native(model, ["2026-02-03 03:15", "2026-02-03 03:15",
                                          "2026-07-01 10:00", "2026-02-03 03:15"], "Europe/Paris"))
    assert [(x.row, x.column) for x in r.rejects] == [(3, "ts"), (4, "ts")]
    assert all("clock change" in x.reason for x in r.rejects)
    # The same from a typed zone-less column (the vectorised path).
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-02-03 04:15:00", "2026-02-03 04:15:00",
                                                "2026-07-01 12:00:00", "2026-03-29 02:30:00",
                                                "2026-10-25 02:30:00"]), "amount": 10.0})
    r = scorer.predict(frame)
    assert r.rows.tolist() == [0, 1, 2] and [x.row for x in r.rejects] == [3, 4]
    assert all("clock change" in x.reason for x in r.rejects)


def _pg(pg_url: str, path: Path, name: str) -> None:
    reg = scorehouse.Registry()
    reg.register(path)
    reg.promote(f"{name}/1", "production")
    here = str(Path(scorehouse.__file__).resolve().parents[1])
    install(pg_url, [f"{name}@production"], registry=reg, python_path=[here, *python_paths()])


def test_postgresql_timestamp_and_timestamptz(naive_model, paris_model, pg_url):
    (model, path), (pmodel, ppath) = naive_model, paris_model
    _pg(pg_url, path, "clock")
    _pg(pg_url, ppath, "clockparis")
    utc = ["2026-02-03 03:15:00", "2026-07-01 10:00:00", "2026-03-04 23:59:59.5"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")  # not the data's zone
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, local timestamp, "
                     "bad text, amount float8)")
        for i, u in enumerate(utc):
            conn.execute("INSERT INTO t VALUES (%s, %s::timestamp AT TIME ZONE 'UTC', "
                         "%s::timestamp, 'x', 10)", [i, u, u])
        for model_name, reference in (("clock", native(model, utc)),
                                      ("clockparis", native(pmodel, utc, "Europe/Paris"))):
            # score_query and score(jsonb): a timestamptz is an instant, converted to UTC.
            rows = conn.execute("SELECT key::int, prediction, error FROM scorehouse.score_query("
                                "%s, 'SELECT id, ts, amount FROM t', 'id') ORDER BY 1",
                                [model_name]).fetchall()
            assert all(e is None for *_, e in rows), rows
            close([p["value"] for _, p, _ in rows], reference)
            by_json = conn.execute("SELECT scorehouse.score(%s, jsonb_build_object('ts', ts, "
                                   "'amount', amount)) FROM t ORDER BY id", [model_name]).fetchall()
            close([r[0]["value"] for r in by_json], reference)
        # The typed functions: timestamp for the zone-less column, timestamptz for the zoned.
        got = conn.execute("SELECT (scorehouse.score_clock(local, amount)).value FROM t "
                           "ORDER BY id").fetchall()
        close([r[0] for r in got], native(model, utc))
        got = conn.execute("SELECT (scorehouse.score_clockparis(ts, amount)).value FROM t "
                           "ORDER BY id").fetchall()
        close([r[0] for r in got], native(pmodel, utc, "Europe/Paris"))
        # A value that is no date-time: that row comes back with its error, the rest scored.
        rows = conn.execute("SELECT key::int, prediction, error FROM scorehouse.score_query("
                            "'clock', 'SELECT id, CASE WHEN id = 1 THEN bad ELSE ts::text END "
                            "AS ts, amount FROM t', 'id') ORDER BY 1").fetchall()
        assert [k for k, p, _ in rows if p is None] == [1] and "column 'ts'" in rows[1][2]


def test_one_rule_value_by_value_and_column_at_once():
    from scorehouse.schema import CoercionError, Column, coerce_value
    from scorehouse.schema.coerce import coerce_column

    col = Column("ts", "datetime", dtype="datetime64[us]")
    values = [sent for sent, _ in GOOD] + [b for b, _ in BAD]
    one = []
    for v in values:
        try:
            one.append(coerce_value(col, v))
        except CoercionError as e:
            one.append(str(e))
    texts = pa.array([str(v) for v in values])
    for raw in (np.array(values, dtype=object), texts, pd.Series([str(v) for v in values])):
        c = coerce_column(col, raw)
        reasons = {i: r for i, r, _ in c.errors}
        for i, want in enumerate(one):
            if isinstance(want, str):
                assert reasons.get(i) == want, values[i]
            else:
                assert c.values[i] == np.datetime64(want.value, "ns"), values[i]


def test_a_manifest_written_before_timezone_keeps_the_zone_of_its_dtype():
    from scorehouse.schema import Column, coerce_value

    old = Column.from_dict({"name": "ts", "type": "datetime", "nullable": False,
                            "dtype": "datetime64[ns, Europe/Paris]"})
    assert coerce_value(old, "2026-02-03 04:15:00") == pd.Timestamp("2026-02-03 03:15:00")
    assert coerce_value(old, "2026-02-03T04:15:00+01:00") == pd.Timestamp("2026-02-03 03:15")
