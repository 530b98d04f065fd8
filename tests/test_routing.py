"""Deployments (issue 22): the spec and its validation, the default's rule language, the
sticky split, the rendezvous (deadline, fallback, default, off-path roles), the registry's
deployment history on SQLite and PostgreSQL, and the `deploy` CLI.

The models are tiny Python callables packaged as artifacts: `double` answers, `boom` raises
and `slow` sleeps past any deadline, each only for a negative `x` (packaging scores the
training rows, so a model must work on those).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import scorehouse
from _deployments import _boom, _double  # the tiny models the deployment tests share
from scorehouse.cli.app import main
from scorehouse.errors import ConflictError, ModelError, NotFoundError, UsageError
from scorehouse.registry import Registry
from scorehouse.routing import BUCKETS, DeploymentSpec, Rendezvous, Role, Router, Rule, bucket_of, registered
from scorehouse.routing.flags import SpecChanges, apply
from scorehouse.scorer import ScorerCache

MARGIN_MS = 40  # what a fallback may take past the deadline here: 2 cores shared by many jobs


# --- models --------------------------------------------------------------------------------


def _slow(frame):
    import time as t

    if (frame["x"] < 0).any():
        t.sleep(0.4)  # far past every deadline used here
    return frame["x"].to_numpy() * 4.0


def _sleepy(frame):
    import time as t

    if (frame["x"] < -10).any():
        raise RuntimeError("sleepy fails below -10")
    if (frame["x"] < 0).any():
        t.sleep(0.7)  # answers, late in a 1 s deadline
    return frame["x"].to_numpy() * 6.0


def _patient(frame):
    import time as t

    if (frame["x"] < 0).any():
        t.sleep(0.4)
    return frame["x"].to_numpy() * 7.0


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """name -> path of a packaged tiny model (double, boom, slow, shadow, canary, sleepy,
    patient)."""
    d = tmp_path_factory.mktemp("routing-models")
    train = pd.DataFrame({"x": np.arange(50, dtype=float), "customer_id": "c"})
    fns = {"double": _double, "boom": _boom, "slow": _slow, "shadow": _slow, "canary": _double,
           "sleepy": _sleepy, "patient": _patient}
    return {n: str(scorehouse.package(fn, train[["x"]], name=n, path=d / f"{n}.shz",
                                      compile=False)) for n, fn in fns.items()}


@pytest.fixture
def rendezvous(models):
    """Rendezvous factory over a trusting cache of the test artifacts; all closed at the end."""
    opened: list[Rendezvous] = []

    def make(**spec) -> Rendezvous:
        cache = ScorerCache(lambda ref: scorehouse.load(ref, trust=True))
        options = spec.pop("options", {})
        rz = Rendezvous(DeploymentSpec.from_dict({"name": "api", **spec}), cache, **options)
        opened.append(rz)
        return rz

    yield make
    for rz in opened:
        rz.close()


# --- the spec ------------------------------------------------------------------------------

FULL = {"name": "churn-api", "champion": "churn@production",
        "challengers": [{"model": "churn/3", "weight": 0.1}], "shadows": ["churn/4"],
        "canaries": ["churn/1"], "decoy": True, "fallbacks": ["churn/2"], "deadline_ms": 50.0,
        "default": 0.0, "sticky_by": "customer_id",
        "route_by": {"field": "tenant", "models": {"a": "churn-a@production"}}}


def test_spec_round_trips_through_json():
    spec = DeploymentSpec.from_json(json.dumps(FULL))
    assert spec.to_dict() == FULL
    assert spec.champion_weight == pytest.approx(0.9)
    assert spec.refs() == ["churn@production", "churn/3", "churn-a@production", "churn/4",
                           "churn/1", "churn/2"]
    assert [r for r, _ in spec.roles()][:3] == [Role.CHAMPION, Role.CHALLENGER, Role.ROUTED]
    assert DeploymentSpec.from_dict({"name": "x", "champion": "m/1", "default": 0}).to_dict() \
        == {"name": "x", "champion": "m/1", "default": 0}  # a zero default is kept


@pytest.mark.parametrize(("change", "message"), [
    ({"champion": None}, "champion: required"),
    ({"name": "bad name"}, "invalid deployment name"),
    ({"colour": "red"}, "unknown field.*colour"),
    ({"challengers": [{"model": "churn/3", "weight": 1.5}]}, r"challengers\[0\].weight"),
    ({"challengers": [{"model": "churn/3", "weight": 0.6}, {"model": "churn/5", "weight": 0.6}]},
     "add up to 1.2"),
    ({"challengers": [{"model": "churn@production", "weight": 0.1}]}, "listed twice"),
    ({"challengers": "churn/3"}, "challengers: expected a list"),
    ({"shadows": ["churn/4", "churn/4"]}, "shadows: churn/4 listed twice"),
    ({"fallbacks": [""]}, r"fallbacks\[0\]: expected a model reference"),
    ({"deadline_ms": -5}, "deadline_ms: a positive number"),
    ({"decoy": "yes"}, "decoy: expected true or false"),
    ({"default": [1, 2]}, "default: give a number"),
    ({"default": {"rule": "x.y"}}, "attribute access"),
    ({"sticky_by": ""}, "sticky_by: the name of an input field"),
    ({"route_by": {"field": "tenant", "models": {}}}, "route_by: expected"),
])
def test_invalid_specs_name_the_field(change, message):
    with pytest.raises(UsageError, match=message):
        DeploymentSpec.from_dict({**FULL, **change})


@pytest.mark.parametrize(("changes", "expected"), [
    (SpecChanges(shadows=["m/9"], canaries=["m/8"], decoy=True),
     {"shadows": ["m/4", "m/9"], "canaries": ["m/8"], "decoy": True}),
    (SpecChanges(remove=["m/4", "m/2"], deadline_ms=0, sticky_by="", no_default=True),
     {"shadows": [], "challengers": [], "fallbacks": [], "deadline_ms": None,
      "sticky_by": None, "default": None}),
    (SpecChanges(route_by="tenant", routes=["a=t/1", "b=t/2"]),
     {"route_by": {"field": "tenant", "models": {"a": "t/1", "b": "t/2"}}}),
    (SpecChanges(challengers=["m/3=0.2", "m/2=0"], default="\"no\""),
     {"challengers": [{"model": "m/3", "weight": 0.2}], "default": "no"}),
])
def test_flags_change_the_spec(changes, expected):
    base = apply(None, SpecChanges(champion="m/1", challengers=["m/2=0.1"], shadows=["m/4"],
                                   fallbacks=["m/2"], deadline_ms=50, sticky_by="cid",
                                   default="0.5"), name="api")
    got = {"shadows": [], "challengers": [], "fallbacks": [], "canaries": [], "decoy": False,
           "deadline_ms": None, "sticky_by": None, "default": None, "route_by": None,
           **apply(base, changes).to_dict()}
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(("changes", "message"), [
    (SpecChanges(challengers=["m/3"]), "REF=WEIGHT"),
    (SpecChanges(challengers=["m/3=lots"]), "is not a number"),
    (SpecChanges(default="1", default_rule="x"), "not both"),
    (SpecChanges(routes=["a=t/1"]), "needs --route-by"),
    (SpecChanges(promote="m/7"), "not a challenger"),
])
def test_bad_flags_say_what_to_give(changes, message):
    base = DeploymentSpec.from_dict({"name": "api", "champion": "m/1"})
    with pytest.raises(UsageError, match=message):
        apply(base, changes)


# --- the default's rules --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "record", "expected"), [
    ("0.9 if support_calls > 3 else 0.1", {"support_calls": 4}, 0.9),
    ("0.9 if support_calls > 3 else 0.1", {"support_calls": 1}, 0.1),
    ("plan == 'basic' and (tenure < 6 or complaints >= 2)", {"plan": "basic", "tenure": 12,
                                                              "complaints": 2}, True),
    ("region in ('north', 'east')", {"region": "south"}, False),
    ("region not in ['north']", {"region": "south"}, True),
    ("0 < age <= 30", {"age": 31}, False),
    ("monthly_charges * 12 - total_charges // 2 + tenure % 5", {"monthly_charges": 2,
                                                                 "total_charges": 9, "tenure": 7},
     22),
    ("-x if not flag else +x / 4", {"x": 8, "flag": True}, 2.0),
    ("'absent' if missing is None else missing", {}, "absent"),
])
def test_rules_evaluate(text, record, expected):
    assert Rule.parse(text).evaluate(record) == expected


@pytest.mark.parametrize(("text", "refused"), [
    ("__import__('os').system('id')", "a call"),
    ("x.__class__", "attribute access"),
    ("open('/etc/passwd')", "a call"),
    ("_secret + 1", "names starting with '_'"),
    ("x[0]", "a subscript"),
    ("2 ** 10000", "operator Pow"),
    ("(lambda: 1)()", "a call"),
    ("[y for y in x]", "ListComp"),
    ("f'{x}'", "an f-string"),
    ("(y := 3)", "':='"),
    ("x @ y", "operator MatMult"),
    ("b'bytes'", "a bytes constant"),
    ("x; y", "not an expression"),
    ("", "give an expression"),
    ("x" * 3000, "at most"),
    ("-" * 1500 + "1", "at most 256 terms"),
    ("(" * 300 + "1" + ")" * 300, "not an expression|nested"),
])
def test_unsafe_rules_are_refused(text, refused):
    with pytest.raises(UsageError, match=refused):
        Rule.parse(text)


def test_rule_failing_on_a_record_is_a_model_error():
    rule = Rule.parse("'x' * n")
    with pytest.raises(ModelError, match="numbers only"):
        rule.evaluate({"n": 10**9})  # no memory bomb: refused before multiplying
    with pytest.raises(ModelError, match="TypeError"):
        Rule.parse("age > 3").evaluate({})  # absent field reads None: None > 3 fails
    assert Rule.parse("a + b").fields == ("a", "b")


# --- the sticky split ----------------------------------------------------------------------


def test_sticky_split_is_near_the_weights_and_stable():
    spec = DeploymentSpec.from_dict({"name": "api", "champion": "m/1", "sticky_by": "cid",
                                     "challengers": [{"model": "m/2", "weight": 0.1},
                                                     {"model": "m/3", "weight": 0.25}]})
    router = Router(spec)
    n = 100_000
    picks = [router.decide({"cid": f"customer-{i}"}).chain[0].ref for i in range(n)]
    shares = {ref: picks.count(ref) / n for ref in ("m/1", "m/2", "m/3")}
    # Tolerance: 4 binomial standard deviations at n = 100k is < 0.6 points for any share;
    # allow 1 point.
    assert shares == pytest.approx({"m/1": 0.65, "m/2": 0.10, "m/3": 0.25}, abs=0.01)
    again = Router(spec)  # the same key, the same model, in a new router ...
    assert all(again.decide({"cid": f"customer-{i}"}).chain[0].ref == picks[i]
               for i in range(0, n, 97))
    # ... and in another process (no per-process hash salt).
    code = ("from scorehouse.routing import bucket_of;"
            "print([bucket_of(f'customer-{i}', b'api\\x00') for i in range(50)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [bucket_of(f"customer-{i}", b"api\x00") for i in range(50)]


def test_raising_a_weight_keeps_the_keys_a_challenger_had():
    base = {"name": "api", "champion": "m/1", "sticky_by": "cid"}
    low = Router(DeploymentSpec.from_dict({**base, "challengers": [{"model": "m/2", "weight": 0.1}]}))
    high = Router(DeploymentSpec.from_dict({**base, "challengers": [{"model": "m/2", "weight": 0.2}]}))
    keys = [f"k{i}" for i in range(20_000)]
    had = {k for k in keys if low.model_for(k).ref == "m/2"}
    assert had and all(high.model_for(k).ref == "m/2" for k in had)


def test_without_sticky_field_the_request_id_is_the_key_and_routes_win():
    spec = DeploymentSpec.from_dict({"name": "api", "champion": "m/1", "sticky_by": "cid",
                                     "challengers": [{"model": "m/2", "weight": 0.5}],
                                     "route_by": {"field": "tenant", "models": {"a": "t/1"}}})
    router = Router(spec)
    d = router.decide({"x": 1}, request_id="req-42")
    assert d.key == "req-42" and d.bucket == bucket_of("req-42", b"api\x00")
    routed = router.decide({"tenant": "a", "cid": "c"})
    assert routed.chain[0].role is Role.ROUTED and routed.chain[0].ref == "t/1"
    assert 0 <= router.decide({"cid": "c"}).bucket < BUCKETS


# --- the rendezvous ------------------------------------------------------------------------


@pytest.mark.parametrize("champion", ["boom", "slow"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fallback_answers_within_the_deadline(rendezvous, models, champion, mode):
    rz = rendezvous(champion=models[champion], fallbacks=[models["double"]], deadline_ms=40)
    ok = rz.decide_and_score({"x": 5})  # the champion works for this record
    assert (ok.answer.role, ok.answer.fallback) == (Role.CHAMPION, False)
    start = time.perf_counter()
    if mode == "sync":
        routed = rz.decide_and_score({"x": -1}, request_id="r1")
    else:
        routed = asyncio.run(rz.decide_and_score_async({"x": -1}, request_id="r1"))
    took_ms = (time.perf_counter() - start) * 1000
    a = routed.answer
    assert (a.role, a.ref, a.model, a.fallback, a.request_id) == \
        (Role.FALLBACK, models["double"], "double", True, "r1")
    assert a.result is not None and a.result.output.values[0] == -2.0
    expected = "missed the 40 ms deadline" if champion == "slow" else "boom on a negative x"
    assert expected in a.reason and models[champion] in a.reason
    limit = (40 if champion == "slow" else 0) + MARGIN_MS
    assert took_ms < limit, f"fallback answered after {took_ms:.1f} ms (limit {limit})"
    assert rz.stats()["fallbacks"] == 1


@pytest.mark.parametrize(("default", "expected"), [
    (0.0, 0.0), ({"rule": "0.9 if x < -5 else 0.2"}, 0.2), ("unknown", "unknown")])
def test_the_default_answers_when_every_model_fails(rendezvous, models, default, expected):
    rz = rendezvous(champion=models["boom"], fallbacks=[models["slow"]], deadline_ms=30,
                    default=default)
    a = rz.decide_and_score({"x": -1}).answer
    assert (a.role, a.ref, a.value, a.fallback, a.result) == (Role.DEFAULT, None, expected,
                                                              True, None)
    assert "boom" in a.reason and "missed the 30 ms deadline" in a.reason
    assert a.to_dict()["role"] == "default"


def test_no_default_and_no_answer_is_a_model_error(rendezvous, models):
    rz = rendezvous(champion=models["boom"])
    with pytest.raises(ModelError, match="no model answered.*boom on a negative x"):
        rz.decide_and_score({"x": -1})


def test_off_path_roles_score_without_delaying_the_answer(rendezvous, models):
    seen = []
    rz = rendezvous(champion=models["double"], shadows=[models["shadow"]],
                    canaries=[models["canary"]], decoy=True,
                    options={"on_off_path": seen.append})
    rz.decide_and_score({"x": 1})  # load and warm every model
    start = time.perf_counter()
    routed = rz.decide_and_score({"x": -3}, request_id="r7")  # the shadow sleeps on this one
    assert (time.perf_counter() - start) * 1000 < MARGIN_MS  # not held by the shadow's sleep
    assert routed.answer.role is Role.CHAMPION and routed.answer.result.output.values[0] == -6
    done = {f.result(timeout=5).role: f.result() for f in routed.off_path}
    assert done[Role.SHADOW].result.output.values[0] == -12.0
    assert done[Role.CANARY].result.output.values[0] == -6.0
    assert done[Role.DECOY].record == {"x": -3} and done[Role.DECOY].result is None
    assert {o.request_id for o in done.values()} == {"r7"}
    assert {(o.request_id, o.role) for o in seen} >= {("r7", r) for r in done}


def test_a_full_off_path_pool_skips_and_counts(rendezvous, models):
    rz = rendezvous(champion=models["double"], shadows=[models["shadow"]],
                    options={"off_path_workers": 1, "max_pending": 1})
    first = rz.decide_and_score({"x": -1})  # the shadow sleeps: the pool is full
    second = rz.decide_and_score({"x": -1})
    assert len(first.off_path) == 1 and second.skipped == [Role.SHADOW]
    assert second.answer.result is not None  # answered all the same
    assert rz.stats()["skipped"] == {"shadow": 1}
    first.off_path[0].result(timeout=5)


def test_off_path_records_waiting_are_scored_in_one_call_each_with_its_result(
        rendezvous, models):
    import contextlib

    calls = []

    @contextlib.contextmanager
    def around(role, ids):
        calls.append((role, None if ids is None else list(ids)))
        yield

    rz = rendezvous(champion=models["double"], shadows=[models["shadow"]],
                    options={"off_path_workers": 1, "around": around})
    first = rz.decide_and_score({"x": -1}, request_id="r0")  # the shadow sleeps on it
    rest = [rz.decide_and_score({"x": i}, request_id=f"r{i}") for i in range(1, 6)]
    # (The drain lets records gather for LINGER s; those arriving while r0's call sleeps
    # wait for the next call in any case.)
    done = [f.result(timeout=5) for r in [first, *rest] for f in r.off_path]
    assert [(d.request_id, d.result.output.values.tolist()) for d in done] == \
        [("r0", [-4.0]), *((f"r{i}", [4.0 * i]) for i in range(1, 6))]
    batches = [ids for role, ids in calls if role is Role.SHADOW and ids is not None]
    assert batches and all(len(ids) > 1 for ids in batches)  # gathered: a call for several
    assert set(sum(batches, [])) >= {f"r{i}" for i in range(1, 6)}


def test_on_a_loop_a_fallback_is_hedged_and_dropped_when_not_needed(rendezvous, models):
    """Once the fallback's duration is known (0.4 s), it starts that long (x1.5, at most half
    the 1 s deadline) before the deadline while the champion runs: here the champion answers
    at 0.7 s, after the hedge started at 0.5 s, and its answer is the one given."""
    import contextlib

    calls = []

    @contextlib.contextmanager
    def around(role, ids):
        calls.append(role)
        yield

    rz = rendezvous(champion=models["sleepy"], fallbacks=[models["patient"]], deadline_ms=1000,
                    options={"around": around})

    async def run():
        failed = await rz.decide_and_score_async({"x": -20})  # sleepy raises: patient answers
        calls.clear()
        hedged = await rz.decide_and_score_async({"x": -1})
        return failed.answer, hedged.answer

    failed, hedged = asyncio.run(run())
    assert (failed.role, failed.result.output.values[0]) == (Role.FALLBACK, -140.0)
    assert (hedged.role, hedged.fallback, hedged.result.output.values[0]) == \
        (Role.CHAMPION, False, -6.0)
    assert sorted(calls) == sorted([Role.CHAMPION, Role.FALLBACK])  # the hedge ran, unused


def test_invalid_input_is_answered_not_fallen_back(rendezvous, models):
    rz = rendezvous(champion=models["double"], fallbacks=[models["boom"]])
    a = rz.decide_and_score({"x": "not a number"}).answer
    assert a.role is Role.CHAMPION and not a.fallback and a.result.n_rejected == 1


def test_use_swaps_the_spec_without_failing_requests(rendezvous, models):
    rz = rendezvous(champion=models["double"], shadows=[models["shadow"]])
    rz.decide_and_score({"x": 1})
    new = rz.spec.change(champion=models["canary"], shadows=())
    rz.use(new)
    assert rz.decide_and_score({"x": 1}).answer.model == "canary"
    assert models["shadow"] not in rz.scorers  # no longer used: dropped


# --- the registry --------------------------------------------------------------------------


@pytest.fixture
def reg(registry_url, tmp_path, models):
    """A registry (SQLite and PostgreSQL) holding `double` 1..3 and `double@production`."""
    r = Registry(registry_url, artifacts=str(tmp_path / "store"))
    for _ in range(3):
        r.register(models["double"], allow_duplicate=True)
    r.promote("double/1", "production")
    yield r
    r.close()


def test_registry_keeps_deployments_with_history_and_rollback(reg):
    spec = apply(None, SpecChanges(champion="double@production", challengers=["double/2=0.1"],
                                   fallbacks=["double/3"]), name="api")
    made = registered.create(reg, spec, reason="start", user="ann")
    assert (made.revision, made.updated_by, made.spec) == (1, "ann", spec.to_dict())
    with pytest.raises(ConflictError, match="exists"):
        registered.create(reg, spec)
    registered.change(reg, "api", SpecChanges(challengers=["double/2=0.3"]), reason="more")
    registered.change(reg, "api", SpecChanges(promote="double/2"), reason="wins", user="bob")
    assert registered.read(reg, "api")[1].champion == "double/2"
    back = reg.rollback_deployment("api", reason="oops")
    assert back.revision == 4 and back.spec["challengers"] == [{"model": "double/2",
                                                                "weight": 0.3}]
    assert reg.rollback_deployment("api").spec == made.spec  # rollbacks walk back
    with pytest.raises(ConflictError, match="no earlier spec"):
        reg.rollback_deployment("api")
    history = reg.deployment_history("api")
    assert [(c.revision, c.action.value, c.restores, c.reason) for c in history] == [
        (1, "create", None, "start"), (2, "set", None, "more"), (3, "set", None, "wins"),
        (4, "rollback", 2, "oops"), (5, "rollback", 1, "")]
    assert history[2].user == "bob" and history[2].to_dict()["spec"]["champion"] == "double/2"
    with pytest.raises(ConflictError, match="changed meanwhile"):
        reg.set_deployment("api", made.spec, expect_revision=2)
    assert [d.name for d in reg.deployments()] == ["api"]


@pytest.mark.parametrize(("changes", "error", "message"), [
    (SpecChanges(champion="nope@production"), NotFoundError, "champion nope@production"),
    (SpecChanges(shadows=["double/9"]), NotFoundError, "shadow double/9.*no version 9"),
    (SpecChanges(champion="double@staging"), NotFoundError, "no alias 'staging'"),
    (SpecChanges(promote="double/3"), UsageError, "not a challenger"),
    (SpecChanges(), UsageError, "nothing to change"),
])
def test_registry_refuses_changes_naming_missing_models(reg, changes, error, message):
    registered.create(reg, DeploymentSpec.from_dict({"name": "api", "champion": "double/1"}))
    with pytest.raises(error, match=message):
        registered.change(reg, "api", changes)
    assert reg.deployment("api").revision == 1
    with pytest.raises(NotFoundError, match="no deployment named 'other'"):
        reg.deployment("other")


def test_alias_moves_reach_the_scorers(reg):
    spec = DeploymentSpec.from_dict({"name": "api", "champion": "double@production"})
    registered.create(reg, spec)
    rz = registered.open_rendezvous("api", reg)
    try:
        assert rz.decide_and_score({"x": 1}).answer.version == 1
        reg.promote("double/3", "production")
        assert rz.refresh(registered.current_sha256(reg)) == []  # same artifact bytes
        rz.scorers.reload("double@production")  # what a watcher does on an alias event
        assert rz.decide_and_score({"x": 1}).answer.version == 3
    finally:
        rz.close()


# --- the CLI -------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, object]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, json.loads(capsys.readouterr().out)


def test_deploy_cli_round_trip(capsys, tmp_path, models):
    where = ("--registry", f"sqlite:///{tmp_path / 'cli.db'}", "--artifacts",
             str(tmp_path / "store"))
    r = Registry(where[1], artifacts=where[3])
    for _ in range(4):
        r.register(models["double"], allow_duplicate=True)
    r.promote("double/1", "production")
    r.close()
    code, made = _cli(capsys, *where, "deploy", "create", "churn-api", "--champion",
                      "double@production", "--challenger", "double/3=0.1", "--shadow", "double/4",
                      "--canary", "double/1", "--fallback", "double/2", "--deadline-ms", "50",
                      "--default", "0.0", "--sticky-by", "customer_id", "-m", "why", "--json")
    assert code == 0 and made["revision"] == 1 and made["spec"]["default"] == 0.0
    code, changed = _cli(capsys, *where, "deploy", "set", "churn-api", "--challenger",
                         "double/3=0.2", "--default-rule", "0.5 if x > 1 else 0.0", "--json")
    assert changed["spec"]["challengers"] == [{"model": "double/3", "weight": 0.2}]
    assert changed["spec"]["default"] == {"rule": "0.5 if x > 1 else 0.0"}
    code, promoted = _cli(capsys, *where, "deploy", "set", "churn-api", "--promote", "double/3",
                          "--json")
    assert promoted["spec"]["champion"] == "double/3" and "challengers" not in promoted["spec"]
    code, back = _cli(capsys, *where, "deploy", "rollback", "churn-api", "-m", "undo", "--json")
    assert back["spec"] == changed["spec"] and back["revision"] == 4
    code, shown = _cli(capsys, *where, "deploy", "show", "churn-api", "--json")
    assert shown == back
    code, history = _cli(capsys, *where, "deploy", "history", "churn-api", "--json")
    assert [h["action"] for h in history] == ["create", "set", "set", "rollback"]
    assert history[-1]["reason"] == "undo" and history[-1]["restores"] == 2
    for args, exit_code in [(("show", "nope"), 3), (("create", "churn-api", "--champion",
                                                     "double/1"), 6),
                            (("set", "churn-api", "--challenger", "double/2=x"), 2),
                            (("create", "x", "--champion", "double/1", "--default-rule",
                              "__import__('os')"), 2)]:
        code, err = _cli(capsys, *where, "deploy", *args, "--json")
        assert (code, err["exit_code"]) == (exit_code, exit_code), err


def test_deploy_set_runs_the_gates_of_the_role_a_model_enters(reg, tmp_path):
    """A new champion passes @production's gates, a new challenger @challenger's; shadows
    and re-weighing pass none; a refusal changes nothing; --force needs a reason and is
    recorded in the deployment's history."""
    from scorehouse.evaluation import GatePolicy, GatesRefused, evaluate_ref
    from scorehouse.evaluation.deployments import change_deployment

    registered.create(reg, apply(None, SpecChanges(champion="double/1"), name="api"))
    for alias in ("production", "challenger"):
        reg.set_gate_policy("double", alias, GatePolicy.build(["rmse <= 0.01"]))
    with pytest.raises(GatesRefused, match="double/2 may not take @production"):
        change_deployment(reg, "api", SpecChanges(champion="double/2"))
    assert registered.read(reg, "api")[0].revision == 1  # refused: nothing stored
    holdout = tmp_path / "holdout.parquet"
    pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) * 2}).to_parquet(holdout)
    evaluate_ref("double/2", holdout, "y", registry=reg)  # the double model: rmse 0
    done = change_deployment(reg, "api", SpecChanges(champion="double/2"), reason="v2 passes")
    assert [(r.alias, r.passed) for r in done.reports] == [("production", True)]
    assert not done.forced and done.deployment.spec["champion"] == "double/2"
    entering = SpecChanges(challengers=["double/3=0.1"])  # double/3 has no evaluation
    with pytest.raises(GatesRefused, match="double/3 may not take @challenger"):
        change_deployment(reg, "api", entering)
    with pytest.raises(UsageError, match="needs a reason"):
        change_deployment(reg, "api", entering, force=True)
    forced = change_deployment(reg, "api", entering, force=True, reason="a short trial")
    assert forced.forced
    assert reg.deployment_history("api")[-1].reason.startswith("forced past failing gates "
                                                                "(double/3 @challenger")
    again = change_deployment(reg, "api", SpecChanges(challengers=["double/3=0.2"],
                                                      shadows=["double/1"]))
    assert again.reports == () and not again.forced


def test_deploy_create_runs_the_gates_of_its_answering_roles(reg, tmp_path):
    """A new deployment's champion passes @production's gates and each weighted challenger
    @challenger's; shadows, canaries and fallbacks pass none; refused: nothing stored."""
    from scorehouse.evaluation import GatePolicy, GatesRefused, evaluate_ref
    from scorehouse.evaluation.deployments import create_deployment

    for alias in ("production", "challenger"):
        reg.set_gate_policy("double", alias, GatePolicy.build(["rmse <= 0.01"]))
    spec = apply(None, SpecChanges(champion="double/1", challengers=["double/2=0.1"],
                                   shadows=["double/3"]), name="gated")
    with pytest.raises(GatesRefused, match="double/1 may not take @production"):
        create_deployment(reg, spec)
    with pytest.raises(NotFoundError):
        reg.deployment("gated")  # refused: nothing stored
    holdout = tmp_path / "holdout.parquet"
    pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) * 2}).to_parquet(holdout)
    evaluate_ref("double/1", holdout, "y", registry=reg)
    with pytest.raises(GatesRefused, match="double/2 may not take @challenger"):
        create_deployment(reg, spec)
    evaluate_ref("double/2", holdout, "y", registry=reg)
    done = create_deployment(reg, spec, reason="both pass")  # double/3 (shadow): no gate
    assert [(r.ref, r.alias, r.passed) for r in done.reports] == [
        ("double/1", "production", True), ("double/2", "challenger", True)]
    assert not done.forced and done.deployment.revision == 1
    forced = create_deployment(reg, apply(None, SpecChanges(champion="double/3"),
                                          name="forced"), force=True, reason="a trial")
    assert forced.forced and reg.deployment_history("forced")[-1].reason.startswith(
        "forced past failing gates (double/3 @production")


def test_deploy_set_cli_refuses_with_exit_6_and_the_gate_table(capsys, tmp_path, models):
    where = ("--registry", f"sqlite:///{tmp_path / 'cli.db'}", "--artifacts",
             str(tmp_path / "store"))
    r = Registry(where[1], artifacts=where[3])
    for _ in range(2):
        r.register(models["double"], allow_duplicate=True)
    r.close()
    assert _cli(capsys, *where, "deploy", "create", "api", "--champion", "double/1",
                "--json")[0] == 0
    assert _cli(capsys, *where, "gates", "set", "double", "production", "--rule",
                "rmse <= 0.01", "--json")[0] == 0
    code, refused = _cli(capsys, *where, "deploy", "set", "api", "--champion", "double/2",
                         "--json")
    assert code == 6 and refused["gates"]["alias"] == "production"
    with pytest.raises(SystemExit) as exited:
        main([*where, "deploy", "set", "api", "--champion", "double/2"])
    code, out = exited.value.code, capsys.readouterr()
    assert code == 6 and "rmse" in out.out and "may not take @production" in out.err
