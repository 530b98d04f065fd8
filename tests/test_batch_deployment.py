"""`scorehouse score --deployment`: a file or table scored through a deployment's roles.

Every row's answer in the output (who answered, the value, the fallback and why) is what
`Rendezvous.decide_and_score` answers for that row alone, for CSV, Parquet and a PostgreSQL
table (source and sink), over several chunks; rejects and counts add up (read = scored +
rejected); `--all-roles` adds each role's columns; every role's score is in the prediction
log under the row's id. The models are the tiny callables of test_routing_table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import scorehouse
from _deployments import tiny_models
from scorehouse.batch import BatchJob, RunOptions, open_input, run_deployment
from scorehouse.cli.app import main
from scorehouse.errors import ModelError
from scorehouse.monitor.log import LogOptions, read_log
from scorehouse.registry import Registry
from scorehouse.routing import Default, DeploymentSpec, Rendezvous
from scorehouse.scorer import ScorerCache

N = 240


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    return tiny_models(tmp_path_factory.mktemp("batch-models"))

SPECS = {
    "split": {"champion": "double", "sticky_by": "cid",
              "challengers": [{"model": "hole", "weight": 0.4}]},
    "fallbacks": {"champion": "boom", "fallbacks": ["hole"],
                  "default": {"rule": "0.9 if cid == 'c1' else 0.1"}},
    "off-path": {"champion": "hole", "fallbacks": ["double"], "shadows": ["boom"],
                 "canaries": ["double"], "decoy": True},
    "routed": {"champion": "double", "route_by": {"field": "cid",
                                                  "models": {"c2": "boom", "c3": "hole"}}},
}


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x = [f"{v:.2f}" for v in rng.normal(2, 6, N)]
    for i in range(3, N, 29):
        x[i] = "abc"  # refused by the schema: a rejected row
    return pd.DataFrame({"id": np.arange(1000, 1000 + N), "x": x,
                         "cid": [None if i % 9 == 0 else f"c{i % 7}" for i in range(N)]})


def _spec(models, name: str) -> DeploymentSpec:
    data = {"name": "api", **SPECS[name]}
    data["champion"] = models[data["champion"]]
    data["challengers"] = [{**c, "model": models[c["model"]]} for c in data.get("challengers", [])]
    for role in ("fallbacks", "shadows", "canaries"):
        data[role] = [models[r] for r in data.get(role, [])]
    if "route_by" in data:
        data["route_by"] = {**data["route_by"], "models": {
            k: models[v] for k, v in data["route_by"]["models"].items()}}
    return DeploymentSpec.from_dict(data)


def _rendezvous(spec):
    return Rendezvous(spec, ScorerCache(lambda ref: scorehouse.load(ref, trust=True)))


def _source(fmt: str, tmp_path, frame: pd.DataFrame, request) -> tuple[str, str, object]:
    """(input, output, a reader of the output as a DataFrame) for `fmt`."""
    if fmt == "postgresql":
        import sqlalchemy as sa

        url = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        frame.to_sql("customers", engine, index=False)

        def read() -> pd.DataFrame:
            return pd.read_sql('SELECT * FROM scores ORDER BY "row"', engine)
        return f"{url}?table=customers", f"{url}?table=scores", read
    path = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    out = tmp_path / f"out.{fmt}"
    return str(path), str(out), lambda: (pd.read_csv(out) if fmt == "csv"
                                         else pd.read_parquet(out))


def _expected(spec, source: str) -> dict[int, tuple]:
    """id -> what the rendezvous answers for that row alone, as the job read it (a CSV's
    empty text is "", not null), with the key as its request id."""
    rz = _rendezvous(spec)
    out = {}
    try:
        records = [r for b in open_input(source).batches for r in b.to_pylist()]
        for r in records:
            try:
                a = rz.decide_and_score(r, str(r["id"])).answer
            except ModelError as e:
                out[int(r["id"])] = ("rejected", str(e))
                continue
            if a.result is not None and a.result.rejects:
                out[int(r["id"])] = ("rejected", a.result.rejects[0].reason)
                continue
            value = a.value if a.result is None else float(a.result.output.values[0])
            by = "default" if a.result is None else a.model
            out[int(r["id"])] = (by, a.role.value, value, a.fallback, a.reason or None)
    finally:
        rz.close()
    return out


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("fmt", ["csv", "parquet", "postgresql"])
def test_each_row_is_answered_as_a_request_is(models, tmp_path, request, fmt, name):
    spec = _spec(models, name)
    frame = _frame()
    source, output, read = _source(fmt, tmp_path, frame, request)
    rz = _rendezvous(spec)
    try:
        m = run_deployment(rz, BatchJob(source, output, RunOptions(
            keep=["cid"], chunk_rows=64, workers=2, max_reject_rate=1.0,
            with_model=name == "routed"), key="id",
            rejects=tmp_path / "rejects.csv", manifest=tmp_path / "run.json", progress=False),
            all_roles=name == "off-path")
    finally:
        rz.close()
    expected = _expected(spec, source)
    got = read()
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    t = m.totals
    assert (t.read, t.scored + t.rejected) == (N, N)
    assert t.scored == len(got) and t.rejected == rejects["row"].nunique()
    value = got["value"].where(got["value"].notna(), got.get("default_value"))
    answered = {int(r.id): (r.answered_by, r.role, v, bool(r.fallback),
                            None if pd.isna(r.fallback_reason) else r.fallback_reason)
                for r, v in zip(got.itertuples(), value, strict=True)}
    positions = dict(zip(frame.index, frame["id"], strict=True))
    refused = {int(positions[r]): reason for r, reason in zip(rejects["row"], rejects["reason"],
                                                              strict=True)}
    for key, want in expected.items():
        if want[0] == "rejected":
            assert refused.get(key) == want[1], key
        else:
            by, role, v, fallback, reason = answered[key]
            assert (by, role, fallback, reason) == (want[0], want[1], want[3], want[4]), key
            assert v == pytest.approx(want[2], abs=1e-12), key
    if name == "routed":  # --with-model: the answering model's name
        assert (got["model"] == got["answered_by"]).all()
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["deployment"]["name"] == "api" and "none" in doc["deployment"]["deadline"]
    assert sum(a["rows"] for a in doc["deployment"]["answered"]) == t.scored
    if name == "off-path":
        assert {"champion.value", "fallback.value", "shadow.value", "canary.value"} <= \
            set(got.columns)
        x = pd.to_numeric(frame.set_index("id").loc[got["id"], "x"], errors="coerce").to_numpy()
        np.testing.assert_allclose(got["canary.value"], x * 2.0)  # every answered row
        scored = got["shadow.value"].notna()
        np.testing.assert_allclose(got["shadow.value"][scored], x[scored] * 3.0)
        assert (x[~scored] < 0).all()  # boom raises on a negative x: its column is null


def test_every_role_is_logged_under_the_row_id(models, tmp_path):
    spec = _spec(models, "off-path").change(default=Default(0.5))
    frame = _frame().head(60)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    rz = _rendezvous(spec)
    try:
        run_deployment(rz, BatchJob(str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"),
                                    RunOptions(chunk_rows=25, max_reject_rate=1.0), key="id",
                                    progress=False, log=LogOptions.parse(str(tmp_path / "log"))),
                       all_roles=True)  # whose extra scores stay out of the log
    finally:
        rz.close()
    log = read_log(tmp_path / "log").to_pandas()
    assert set(log["deployment"]) == {"api"}
    roles = log.groupby("id")["role"].apply(set)
    assert len(roles) == 60 and all({"shadow", "canary", "decoy"} <= r for r in roles)
    out = pd.read_parquet(tmp_path / "out.parquet")
    for r in out.itertuples():  # the role that answered is logged under the row's id
        assert r.role in roles[str(r.id)]
    decoy = log[log["role"] == "decoy"].set_index("id")
    sent = json.loads(decoy.loc["1003", "input.@record"])
    assert sent == {"id": 1003, "x": "abc", "cid": "c3"}  # as received, not as coerced
    assert decoy["model"].unique().tolist() == ["api"]
    # `deploy compare` reads a batch job's log as a server's: one answer per row.
    from scorehouse.evaluation import compare_deployment

    counts = compare_deployment("api", source=tmp_path / "log").counts
    assert (counts.requests, counts.answered, counts.unanswered) == (60, 60, 0)


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_the_cli_scores_a_stored_deployment(models, tmp_path, capsys, redis_url):
    where = ("--registry", f"sqlite:///{tmp_path / 'reg.db'}", "--artifacts",
             str(tmp_path / "store"))
    reg = Registry(where[1], artifacts=where[3])
    for name in ("double", "hole"):
        reg.register(models[name])
    reg.close()
    frame = _frame().head(50)
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert _cli(*where, "deploy", "create", "api", "--champion", "double/1", "--challenger",
                "hole/1=0.5", "--shadow", "hole/1", "--sticky-by", "cid") == 0
    capsys.readouterr()
    code = _cli(*where, "score", "--deployment", "api", str(tmp_path / "in.csv"),
                str(tmp_path / "out.csv"), "--key", "id", "--all-roles", "--json", "-q",
                "--max-reject-rate", "1", "--to", redis_url)
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["deployment"]["revision"] == 1 and doc["counts"]["read"] == 50
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["answered_by"]) == {"double/1", "hole/1"}
    assert {"champion.value", "hole/1.value", "shadow.value"} <= set(out.columns)
    first = out.iloc[0]
    cached = scorehouse.batch.cache.lookup(redis_url, "api", str(first["id"]))
    assert cached["answered_by"] == first["answered_by"] and cached["role"] == first["role"]
    for args, exit_code in [(("score", "--deployment", "api", "a.csv", "b.csv", "c.csv"), 2),
                            (("score", "double/1", "in.csv", "out.csv", "--all-roles"), 2),
                            (("score", "--deployment", "nope", str(tmp_path / "in.csv"),
                              str(tmp_path / "o.csv")), 3)]:
        assert _cli(*where, *args) == exit_code, args
