"""`scorehouse stream --deployment`: events scored through a deployment on real Redis
Streams and NATS JetStream. Each event's answer (who answered, its score, the fallback and
why) is what `Rendezvous.decide_and_score` answers for the profile it left; the output
message says who answered; every role is logged under the event id; a change of the stored
deployment takes effect while the worker runs, with every event scored exactly once.

The models are the tiny callables of `_deployments` (`x` in, `x` times a factor out).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from _deployments import tiny_models
from conftest import NATS_URL
from scorehouse.cli.app import main
from scorehouse.monitor.log import LogOptions, read_log
from scorehouse.registry import Registry
from scorehouse.routing import registered
from scorehouse.routing.flags import SpecChanges, apply
from scorehouse.routing.following import follow
from scorehouse.stream import WorkerOptions, open_worker
from scorehouse.stream.profiles import text_value

REDUCER = {"last": {"x": "x", "customer_id": "customer_id"}}


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory) -> tuple[str, str]:
    """(registry URL, artifact store) holding double/1, hole/1, boom/1."""
    d = tmp_path_factory.mktemp("stream-deploy")
    models = tiny_models(d)
    url, store = f"sqlite:///{d / 'reg.db'}", str(d / "store")
    reg = Registry(url, artifacts=store)
    for name in ("double", "hole", "boom"):
        reg.register(models[name])
    reg.close()
    return url, store


class Deployed:
    """The registry and the name of a deployment made for one test."""

    def __init__(self, registry: Registry, name: str):
        self.registry, self.name = registry, name


@pytest.fixture
def reg(registry_file):
    """A fresh deployment in the registry: champion hole/1 (NaN above 8: falls back),
    challenger boom/1 on 30% of customers (raises on a negative x), fallback double/1, a
    shadow, a canary, the decoy and a default."""
    r = Registry(registry_file[0], artifacts=registry_file[1])
    spec = apply(None, SpecChanges(champion="hole/1", challengers=["boom/1=0.3"],
                                   fallbacks=["double/1"], shadows=["boom/1"],
                                   canaries=["double/1"], decoy=True, default="0.5",
                                   sticky_by="customer_id"), name=f"api-{time.time_ns()}")
    registered.create(r, spec)
    yield Deployed(r, spec.name)
    r.close()


def _events(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"customer_id": int(rng.integers(30)), "x": round(float(rng.normal(3, 6)), 2)}
            for _ in range(n)]


def _check_outputs(outputs: list[dict], sent: dict[str, dict], following) -> None:
    """Each output message answers its event (`sent`: by id, or by a NATS stream sequence)
    as the rendezvous would, once."""
    ids = [o["event_id"] for o in outputs]
    assert len(ids) == len(set(ids)) == len(sent)
    for o in outputs:
        event = sent.get(o["event_id"]) or sent[o["event_id"].rsplit("-", 1)[1]]
        record = {"x": text_value(event["x"]), "customer_id": text_value(event["customer_id"])}
        a = following.rz.decide_and_score(record, o["event_id"]).answer
        by = "default" if a.model is None else f"{a.model}/{a.version}"
        assert (o["answered_by"], o["role"], o["fallback"]) == (by, a.role.value,
                                                                str(a.fallback)), o
        assert o["fallback_reason"] == a.reason
        want = a.value if a.result is None else float(a.result.output.values[0])
        assert float(o["score"]) == pytest.approx(want), o


def _redis_outputs(r, stream: str = "scores") -> list[dict]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in r.xrange(stream)]


def test_events_are_answered_as_requests_and_every_role_is_logged(r, redis_url, reg, tmp_path):
    sent = {r.xadd("events", {"data": json.dumps(e)}).decode(): e for e in _events(120)}
    following = follow(reg.name, reg.registry)
    worker = open_worker(None, WorkerOptions(
        f"{redis_url}?stream=events", "customer_id", reducer=json.dumps(REDUCER), group="g",
        consumer="w1", sink="scores", batch=25, drift=False,
        log=LogOptions.parse(str(tmp_path / "log"))), deployment=following)
    try:
        stats = worker.run(until_idle=True)
    finally:
        worker.close()
    assert (stats.events, stats.scored, stats.dead) == (120, 120, 0)
    outputs = _redis_outputs(r)
    following = follow(reg.name, reg.registry)  # the same spec, for the expected answers
    try:
        _check_outputs(outputs, sent, following)
    finally:
        following.close()
    roles = {o["role"] for o in outputs}
    assert {"champion", "challenger", "fallback"} <= roles
    name = reg.name
    last = sent[outputs[-1]["event_id"]]["customer_id"]
    profile = {k.decode(): v.decode() for k, v in r.hgetall(f"profile:{last}").items()}
    assert profile[f"{name}_answered_by"] and profile[f"{name}_role"] in roles
    log = read_log(tmp_path / "log").to_pandas()
    assert set(log["deployment"]) == {name}
    by_event = log.groupby("id")["role"].apply(set)
    assert len(by_event) == 120 and all({"shadow", "canary", "decoy"} <= s for s in by_event)
    for o in outputs:  # the role that answered is logged under the event's id
        assert o["role"] in by_event[o["event_id"]]


@pytest.mark.parametrize("transport", ["redis", "nats"])
def test_a_deployment_change_applies_while_running_with_no_event_lost_or_repeated(
        r, redis_url, reg, transport, request):
    name = reg.name
    following = follow(name, reg.registry, every=0.2)
    source, publish, unsettled = _transport(transport, r, redis_url, request)
    worker = open_worker(None, WorkerOptions(
        source, "customer_id", profiles=redis_url, reducer=json.dumps(REDUCER), group="g",
        consumer="w1", sink=f"{redis_url}?stream=scores", batch=10, drift=False,
        claim_idle_ms=5000), deployment=following)
    thread = threading.Thread(target=worker.run)
    thread.start()
    sent = 0
    try:
        for i in range(30):  # events flow all along; the change lands in the middle
            publish([{"customer_id": j % 30, "x": float(j % 8)} for j in range(i * 10, i * 10 + 10)])
            sent += 10
            if i == 10:
                registered.change(reg.registry, name, SpecChanges(champion="double/1",
                                                                  remove=["boom/1"]))
            time.sleep(0.03)
        deadline = time.time() + 60
        while r.xlen("scores") < sent:
            assert time.time() < deadline and thread.is_alive(), worker.stats
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
    assert following.revision == 2 and following.changes == 1 and worker.stats.dead == 0
    outputs = _redis_outputs(r)
    ids = [o["event_id"] for o in outputs]
    assert len(ids) == len(set(ids)) == sent == worker.stats.scored
    assert unsettled() == 0
    answered = [o["answered_by"] for o in outputs]
    first_new = answered.index("double/1")
    assert set(answered[:first_new]) <= {"hole/1", "boom/1"}
    assert set(answered[first_new:]) == {"double/1"}  # from the change on, every event
    assert 0 < first_new < sent - 50


def _transport(kind: str, r, redis_url: str, request):
    """(source URL, publish(events), events not yet acknowledged) of a fresh stream."""
    if kind == "redis":
        def publish(events):
            for e in events:
                r.xadd("events", {"data": json.dumps(e)})
        return f"{redis_url}?stream=events", publish, \
            lambda: r.xpending("events", "g")["pending"]
    import uuid

    from _stream import nats_publish

    request.getfixturevalue("nats_url")
    subject = f"sh_test_{uuid.uuid4().hex[:8]}"
    request.addfinalizer(lambda: _drop_nats(subject))

    def unsettled() -> int:  # messages not yet delivered + delivered but not acknowledged
        import asyncio

        import nats

        async def go() -> int:
            nc = await nats.connect(NATS_URL)
            try:
                info = await nc.jetstream().consumer_info(subject.upper(), "g")
                return info.num_pending + info.num_ack_pending
            finally:
                await nc.close()
        return asyncio.run(go())
    return f"{NATS_URL}?subject={subject}", \
        lambda events: nats_publish(subject, [json.dumps(e).encode() for e in events]), unsettled


def test_nats_events_through_a_deployment(r, redis_url, reg, nats_url):
    import uuid

    from _stream import nats_publish

    subject = f"sh_test_{uuid.uuid4().hex[:8]}"
    events = _events(60, seed=4)
    seqs = nats_publish(subject, [json.dumps(e).encode() for e in events])
    sent = {str(seq): e for seq, e in zip(seqs, events, strict=True)}
    following = follow(reg.name, reg.registry)
    worker = open_worker(None, WorkerOptions(
        f"{NATS_URL}?subject={subject}", "customer_id", profiles=redis_url,
        reducer=json.dumps(REDUCER), group="g", consumer="w1", sink=f"{redis_url}?stream=scores",
        batch=20, drift=False), deployment=following)
    try:
        deadline = time.time() + 60
        while worker.stats.scored < 60:
            assert time.time() < deadline, worker.stats
            worker.step()
    finally:
        worker.events.close()
        worker.close()
    outputs = _redis_outputs(r)
    check = follow(reg.name, reg.registry)
    try:
        _check_outputs(outputs, sent, check)
    finally:
        check.close()
    _drop_nats(subject)


def _drop_nats(subject: str) -> None:
    import asyncio

    import nats

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(subject.upper())
        finally:
            await nc.close()
    asyncio.run(drop())


def test_the_cli_streams_through_a_stored_deployment(r, redis_url, reg, registry_file, capsys):
    sent = _events(40, seed=2)
    for e in sent:
        r.xadd("events", {"data": json.dumps(e)})
    where = ("--registry", registry_file[0], "--artifacts", registry_file[1])
    args = ["stream", "--deployment", reg.name, "--source",
            f"{redis_url}?stream=events", "--key", "customer_id", "--reducer",
            json.dumps(REDUCER), "--sink", "scores", "--until-idle", "--no-drift"]
    try:
        main([*where, *args])
    except SystemExit as e:
        assert not e.code
    assert len(_redis_outputs(r)) == 40
    assert "revision 1" in capsys.readouterr().err
    for bad in (["stream", "double/1", "--deployment", "x", "--source", "redis://h", "--key", "k"],
                ["stream", "--source", "redis://h", "--key", "k"]):
        with pytest.raises(SystemExit) as e:
            main([*where, *bad])
        assert e.value.code == 2
