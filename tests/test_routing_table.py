"""A table scored through a deployment (`routing.table.score_table`, what batch and the
stream worker run) answers every row as `Rendezvous.decide_and_score` answers it alone:
who answered (role, reference, model, version), with what value or reject, and why a
fallback did, row by row, across specs (every role) and batch sizes.

The models are tiny Python callables packaged as artifacts (`_deployments.tiny_models`).
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

import scorehouse
from _deployments import tiny_models
from scorehouse.errors import ModelError
from scorehouse.routing import DeploymentSpec, Rendezvous, Role, Router
from scorehouse.routing.router import bucket_of, buckets_of
from scorehouse.routing.table import ISOLATION_SLICE, NOBODY, score_table
from scorehouse.scorer import ScorerCache


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    return tiny_models(tmp_path_factory.mktemp("table-models"))


N = 300  # more rows than ISOLATION_SLICE, so a failing model's call gives up and slices


@pytest.fixture(scope="module")
def table() -> pa.Table:
    """x as text (some not numbers, some missing), a sticky id (some missing), a tenant."""
    rng = np.random.default_rng(7)
    x = [f"{v:.2f}" for v in rng.normal(2, 6, N)]
    for i in range(0, N, 37):
        x[i] = "abc"  # refused by every model's schema: answered with the reject
    for i in range(5, N, 41):
        x[i] = None
    cid = [None if i % 11 == 0 else f"c{i % 60}" for i in range(N)]
    tenant = [["a", "b", "c", None][i % 4] for i in range(N)]
    return pa.table({"x": pa.array(x, pa.string()), "cid": cid, "tenant": tenant})


SPECS = {
    "champion": {},
    "challengers": {"challengers": [{"model": "hole", "weight": 0.3},
                                    {"model": "boom", "weight": 0.2}], "sticky_by": "cid"},
    "routed": {"route_by": {"field": "tenant", "models": {"a": "hole", "b": "boom"}},
               "fallbacks": ["double"]},
    "fallbacks-default": {"champion": "boom", "fallbacks": ["hole", "double"],
                          "default": {"rule": "0.9 if x == '-1' else 0.1"}},
    "no-default": {"champion": "boom", "fallbacks": ["hole"]},
    "default-rule-fails": {"champion": "boom", "default": {"rule": "1 // (x == '0.00')"}},
    "constant-default": {"champion": "hole", "default": "unknown"},
    "off-path": {"champion": "hole", "fallbacks": ["boom"], "shadows": ["boom"],
                 "canaries": ["double"], "decoy": True, "default": 0.0},
}


def _spec(models, name: str) -> DeploymentSpec:
    data = {"name": "api", "champion": "double", **SPECS[name]}

    def ref(r):
        return models[r]
    data["champion"] = ref(data["champion"])
    data["challengers"] = [{**c, "model": ref(c["model"])} for c in data.get("challengers", [])]
    for role in ("fallbacks", "shadows", "canaries"):
        data[role] = [ref(r) for r in data.get(role, [])]
    if "route_by" in data:
        data["route_by"] = {**data["route_by"],
                            "models": {k: ref(v) for k, v in data["route_by"]["models"].items()}}
    return DeploymentSpec.from_dict(data)


def _rendezvous(spec: DeploymentSpec) -> Rendezvous:
    return Rendezvous(spec, ScorerCache(lambda ref: scorehouse.load(ref, trust=True)))


def _who(answer) -> tuple:
    """What must agree per row: who answered, with what, and why a fallback did."""
    r = answer.result
    return (answer.role, answer.ref, answer.model, answer.version, answer.fallback,
            answer.reason, answer.value, None if r is None else r.to_records(),
            None if r is None else [j.reason for j in r.rejects])


@pytest.mark.parametrize("name", list(SPECS))
def test_a_table_is_answered_row_by_row_as_requests_are(models, table, name):
    spec = _spec(models, name)
    ids = [f"req-{i}" for i in range(N)]
    rz = _rendezvous(spec)
    try:
        expected = []
        for i, record in enumerate(table.to_pylist()):
            try:
                expected.append(_who(rz.decide_and_score(record, ids[i]).answer))
            except ModelError as e:
                expected.append(("nobody", str(e)))
        for size in (1, 16, N):  # rows per table: one, small, past the isolation slice
            rows = range(20) if size == 1 else range(N)  # one-row tables: the first 20
            got = []
            for start in range(rows.start, rows.stop, size):
                part = table.slice(start, size)
                answers = score_table(rz, part, ids[start:start + size])
                for i in range(part.num_rows):
                    a = answers.answer(i)
                    got.append(("nobody", answers.problems[i]) if a is None else _who(a))
            assert got == expected[:len(got)], f"{name}, {size} rows per table"
    finally:
        rz.close()


def test_the_specs_reach_every_outcome(models, table):
    """The parity cases above cover fallbacks, the default, nobody, rejects and slices."""
    seen = set()
    for name in SPECS:
        rz = _rendezvous(_spec(models, name))
        try:
            answers = score_table(rz, table, [f"req-{i}" for i in range(N)])
        finally:
            rz.close()
        seen |= {("role", answers.answer(i).role) for i in range(N) if answers.who[i] != NOBODY}
        seen |= {"nobody"} if answers.problems else set()
        seen |= {"fallback"} if answers.fallback.any() else set()
        seen |= {"sliced"} if any(len(c.rows) == ISOLATION_SLICE for c in answers.calls) else set()
        seen |= {"rejected"} if any(c.result is not None and c.result.rejects
                                    for c in answers.calls) else set()
    assert seen >= {("role", r) for r in (Role.CHAMPION, Role.CHALLENGER, Role.ROUTED,
                                          Role.FALLBACK, Role.DEFAULT)} | \
        {"nobody", "fallback", "sliced", "rejected"}


def test_off_path_roles_score_every_answered_row_and_all_roles_the_rest(models, table):
    spec = _spec(models, "off-path")
    rz = _rendezvous(spec)
    ids = [f"req-{i}" for i in range(N)]
    seen = []
    try:
        answers = score_table(rz, table, ids, all_roles=True,
                              around=lambda role, ref, scorer, rows, deployed: _record(
                                  seen, role, rows, deployed))
    finally:
        rz.close()
    served = np.flatnonzero(answers.who != NOBODY)
    off = {c.role: c for c in answers.calls if not c.answering and c.role in (Role.SHADOW,
                                                                              Role.CANARY)}
    assert set(off) == {Role.SHADOW, Role.CANARY}
    assert all(np.array_equal(np.sort(np.concatenate(
        [c.rows for c in answers.calls if c.role is role and not c.answering])), served)
        for role in off)
    assert np.array_equal(answers.decoy, served)
    # --all-roles: the champion and the fallback each scored every answered row once.
    for role in (Role.CHAMPION, Role.FALLBACK):
        rows = np.concatenate([c.rows for c in answers.calls if c.role is role])
        assert np.array_equal(np.sort(rows), np.union1d(rows, served)) and \
            len(rows) == len(np.unique(rows))
    assert {r for r, _ in seen} >= {"champion", "fallback", "shadow", "canary"}
    # The --all-roles extras (the fallback's other rows; the champion had every row) are
    # told apart: the deployment did not ask for them.
    assert {d for r, d in seen if r == "fallback"} == {True, False}
    assert all(d for r, d in seen if r != "fallback")


class _record:
    def __init__(self, seen, role, rows, deployed):
        self.seen, self.role, self.rows, self.deployed = seen, role, rows, deployed

    def __enter__(self):
        self.seen.append((str(self.role), self.deployed))

    def __exit__(self, *exc):
        return False


def test_batch_waits_for_a_slow_model_there_is_no_deadline(models):
    spec = DeploymentSpec.from_dict({"name": "api", "champion": models["slow"],
                                     "fallbacks": [models["double"]], "deadline_ms": 20})
    rz = _rendezvous(spec)
    try:
        answers = score_table(rz, pa.table({"x": [-1.0, 2.0]}), ["a", "b"])
    finally:
        rz.close()
    a = answers.answer(0)
    assert (a.role, a.fallback, a.result.output.values[0]) == (Role.CHAMPION, False, -4.0)


def test_first_steps_equal_decide_and_buckets_equal_bucket_of():
    spec = DeploymentSpec.from_dict({
        "name": "api", "champion": "m/1", "sticky_by": "cid",
        "challengers": [{"model": "m/2", "weight": 0.1}, {"model": "m/3", "weight": 0.0},
                        {"model": "m/4", "weight": 0.25}],
        "route_by": {"field": "tenant", "models": {"a": "t/1", "None": "t/2", "7": "t/1"}}})
    router = Router(spec)
    rng = np.random.default_rng(1)
    n = 5000
    cid = [None if i % 13 == 0 else int(rng.integers(10**6)) if i % 2 else f"k{i}"
           for i in range(n)]
    tenant = [["a", 7, None, "b", "None"][i % 5] for i in range(n)]
    ids = [f"r{i}" for i in range(n)]
    start = time.perf_counter()
    steps, index = router.first_steps(cid, tenant, ids)
    took = time.perf_counter() - start
    for i in range(n):
        record = {"cid": cid[i], "tenant": tenant[i]}
        assert steps[index[i]] == router.decide(record, ids[i]).chain[0], i
    assert took < 0.5, f"{n} rows decided in {took:.3f} s"
    keys = [f"key-{i}" for i in range(1000)] + ["", "é", "\udcff"]
    assert buckets_of(keys, b"api\x00").tolist() == [bucket_of(k, b"api\x00") for k in keys]
    # Without the columns: every key is the request id, every route value None ("None").
    steps, index = router.first_steps(None, None, ids[:50])
    assert [steps[j] for j in index] == [router.decide({}, r).chain[0] for r in ids[:50]]
