"""`<model>_score` in streams and triggers: P(the predicted label) for three or more classes,
P(the positive, second class) for two, the value for a regressor (whose entries then carry
no probabilities)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import psycopg
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

import scorehouse
from scorehouse.cli.app import main
from scorehouse.sql.postgres import install
from scorehouse.stream import RedisEvents, RedisProfiles, StreamWorker, from_spec

FEATURES = ["bill_length", "flipper", "mass"]
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


def _penguins(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, n)
    centre = {"Adelie": (39, 190, 3700), "Chinstrap": (49, 196, 3730), "Gentoo": (47, 217, 5070)}
    X = np.array([centre[s] for s in species]) + rng.normal(size=(n, 3)) * [3, 6, 400]
    return pd.DataFrame(X, columns=FEATURES).assign(species=species)


@pytest.fixture(scope="module")
def penguins_artifact(tmp_path_factory):
    df = _penguins()
    model = LogisticRegression(max_iter=2000).fit(df[FEATURES], df.species)
    path = tmp_path_factory.mktemp("penguins") / "penguins.shz"
    return scorehouse.package(model, df, name="penguins", target="species", path=path), model


@pytest.fixture(scope="module")
def size_artifact(tmp_path_factory):
    """A regressor over the same features (the mass from the others)."""
    df = _penguins()
    model = RandomForestRegressor(20, random_state=0).fit(df[FEATURES[:2]], df.mass)
    path = tmp_path_factory.mktemp("size") / "size.shz"
    return scorehouse.package(model, df[FEATURES[:2] + ["mass"]], name="size", target="mass",
                              path=path)


def _p_of_label(record: dict) -> float:
    return record["probabilities"][str(record["label"])]


def test_headline_per_task(penguins_artifact, size_artifact, churn_artifact, churn_data):
    penguins = scorehouse.load(penguins_artifact[0], trust=True)
    rows = _penguins(50, seed=1)[FEATURES]
    records = penguins.predict(rows).to_records()
    assert {r["label"] for r in records} == set(SPECIES)  # every class predicted somewhere
    for rec in records:
        assert penguins.headline(rec) == _p_of_label(rec)
        assert penguins.headline(rec) == max(rec["probabilities"].values())
    churn = scorehouse.load(churn_artifact, trust=True)
    rec = churn.predict(churn_data.drop(columns=["churned"]).head(5)).to_records()
    assert [churn.headline(r) for r in rec] == [r["probabilities"]["yes"] for r in rec]
    size = scorehouse.load(size_artifact, trust=True)
    rec = size.predict(rows[FEATURES[:2]]).to_records()[0]
    assert size.headline(rec) == rec["value"] and "probabilities" not in rec


def _stream_worker(redis_url, scorer):
    return StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events", "g", "w1"),
                        RedisProfiles(redis_url), from_spec({"last": {"flipper": "flipper"}}),
                        key="id", output_stream="scores")


def _entries(r) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in r.xrange("scores")]


def test_stream_score_is_p_of_the_predicted_label(r, redis_url, penguins_artifact):
    path, model = penguins_artifact
    rows = _penguins(30, seed=2)
    for i, rec in enumerate(rows[FEATURES].to_dict("records")):
        r.hset(f"profile:{i}", mapping={k: str(v) for k, v in rec.items()})
    for i in range(30):
        r.xadd("events", {"data": json.dumps({"id": i, "flipper": float(rows.flipper[i]) + 1})})
    stats = _stream_worker(redis_url, scorehouse.load(path, trust=True)).run(until_idle=True)
    assert stats.scored == 30
    for entry in _entries(r):
        probabilities = json.loads(entry["probabilities"])
        assert float(entry["score"]) == probabilities[entry["label"]]
        assert entry["label"] == max(probabilities, key=probabilities.get)
    labels = set()
    for i in range(30):
        h = {k.decode(): v.decode() for k, v in r.hgetall(f"profile:{i}").items()}
        frame = pd.DataFrame([{c: float(h[c]) for c in FEATURES}])
        native = dict(zip(model.classes_, model.predict_proba(frame)[0], strict=True))
        assert float(h["penguins_score"]) == pytest.approx(native[h["penguins_label"]], abs=1e-12)
        labels.add(h["penguins_label"])
    assert len(labels) > 1  # the score is not one class's probability


def test_stream_regression_entries_carry_no_probabilities(r, redis_url, size_artifact):
    rows = _penguins(5, seed=3)
    for i, rec in enumerate(rows[FEATURES[:2]].to_dict("records")):
        r.hset(f"profile:{i}", mapping={k: str(v) for k, v in rec.items()})
        r.xadd("events", {"data": json.dumps({"id": i, "flipper": 200.0})})
    scorer = scorehouse.load(size_artifact, trust=True)
    assert _stream_worker(redis_url, scorer).run(until_idle=True).scored == 5
    entries = _entries(r)
    assert len(entries) == 5
    for entry in entries:
        assert "probabilities" not in entry and float(entry["score"]) > 0


@pytest.fixture
def penguin_db(pg_url, penguins_artifact):
    reg = scorehouse.Registry()
    reg.register(penguins_artifact[0])
    reg.promote("penguins/1", "production")
    install(pg_url, ["penguins@production"], registry=reg)
    rows = _penguins(40, seed=4)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE penguin_profile (penguin_id integer PRIMARY KEY, bill_length float8, "
                     "flipper float8, mass float8, sightings integer)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO penguin_profile VALUES (%s, %s, %s, %s, 0)",
                            [(i, *map(float, rec)) for i, rec in
                             enumerate(rows[FEATURES].itertuples(index=False))])
        conn.execute("CREATE TABLE sightings (id serial PRIMARY KEY, penguin_id integer)")
    return pg_url


@pytest.mark.parametrize("mode", ["transaction", "outbox"])
def test_trigger_score_is_p_of_the_predicted_label(penguin_db, mode):
    from scorehouse.sql.worker import Worker

    try:
        main(["db", "trigger", penguin_db, "--model", "penguins", "--events", "sightings",
              "--profiles", "penguin_profile", "--key", "penguin_id", "--increment", "sightings",
              "--mode", mode])
    except SystemExit as e:
        assert not e.code
    with psycopg.connect(penguin_db, autocommit=True) as conn:
        for i in range(40):
            conn.execute("INSERT INTO sightings (penguin_id) VALUES (%s)", [i])
    if mode == "outbox":
        worker = Worker(penguin_db, "penguins", batch=16)
        worker.run(once=True)
        worker.close()
    with psycopg.connect(penguin_db) as conn:
        got = conn.execute("SELECT penguins_label, penguins_score, penguins_prediction, "
                           "penguins_error FROM penguin_profile ORDER BY penguin_id").fetchall()
    assert len(got) == 40 and all(e is None for *_, e in got)
    for label, score, prediction, _ in got:
        assert prediction["label"] == label
        assert score == prediction["probabilities"][label]
        assert score == max(prediction["probabilities"].values())
    assert len({label for label, *_ in got}) > 1
