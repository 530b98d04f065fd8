"""Cost of routing a request through a deployment (issue 22), in process.

1. The decision alone: `Router.decide` on a full spec (two challengers, sticky by a field,
   a route-by field, shadow, canary, decoy, a fallback and a default): the sticky BLAKE2b
   hash, the bucket split and the chain; with the request id given and generated (uuid4).
2. The rendezvous's bookkeeping around a real model: `Rendezvous.decide_and_score` on the
   demo churn model (champion only) against `Scorer.predict` of the same rows, without a
   deadline (scored inline) and with one (the call waits in the answering pool).
3. A fallback behind a hanging champion (a packaged Python callable that sleeps): the
   answer's latency against `deadline_ms`, p50 and p99.

    python bench/bench_routing.py [--decisions 200000] [--calls 2000] [--hangs 200] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import scorehouse  # noqa: E402
from scorehouse.demo import churn_frame, train_pipeline  # noqa: E402
from scorehouse.demo.data import TARGET  # noqa: E402
from scorehouse.routing import DeploymentSpec, Rendezvous, Router  # noqa: E402
from scorehouse.scorer import ScorerCache  # noqa: E402

DEADLINE_MS = 20.0
#: Seconds the champion sleeps: returning late (its threads wake during the run and take
#: the GIL), and hanging past the end of the run.
HANGS_S = (0.25, 10.0)


def decisions(n: int, rounds: int = 5) -> dict[str, float]:
    """Median µs per `Router.decide`, request id given and generated."""
    spec = DeploymentSpec.from_dict({
        "name": "churn-api", "champion": "churn@production", "sticky_by": "customer_id",
        "challengers": [{"model": "churn/3", "weight": 0.1}, {"model": "churn/5", "weight": 0.05}],
        "route_by": {"field": "tenant", "models": {"b": "churn-b@production"}},
        "shadows": ["churn/4"], "canaries": ["churn/1"], "decoy": True,
        "fallbacks": ["churn/2"], "deadline_ms": 50, "default": {"rule": "0.5"}})
    router = Router(spec)
    records = [{"customer_id": f"c{i}", "tenant": "a", "tenure": i} for i in range(1000)]
    ids = [f"req-{i}" for i in range(1000)]
    out: dict[str, list[float]] = {"given": [], "generated": []}
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            router.decide(records[i % 1000], ids[i % 1000])
        out["given"].append((time.perf_counter() - start) / n * 1e6)
        start = time.perf_counter()
        for i in range(n // 4):
            router.decide(records[i % 1000])
        out["generated"].append((time.perf_counter() - start) / (n // 4) * 1e6)
    return {k: statistics.median(v) for k, v in out.items()}


def overhead(artifact: Path, calls: int, rounds: int = 5) -> dict[str, float]:
    """Median µs per call: predict alone, decide_and_score inline, with a deadline."""
    frame = churn_frame(500, seed=11).drop(columns=[TARGET])
    rows = frame.to_dict("records")
    cache: ScorerCache[str] = ScorerCache(lambda ref: scorehouse.load(ref, trust=True))
    scorer = cache.get(str(artifact))
    base = {"name": "churn-api", "champion": str(artifact)}
    inline = Rendezvous(DeploymentSpec.from_dict(base), cache)
    timed = Rendezvous(DeploymentSpec.from_dict({**base, "deadline_ms": 1000}), cache)
    kinds = {"predict": lambda r: scorer.predict(r), "inline": inline.decide_and_score,
             "deadline": timed.decide_and_score}
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for fn in kinds.values():  # warm up
        for r in rows[:100]:
            fn(r)
    for i in range(rounds):
        for name in (list(kinds) if i % 2 == 0 else list(reversed(kinds))):
            fn = kinds[name]
            start = time.perf_counter()
            for c in range(calls):
                fn(rows[c % len(rows)])
            out[name].append((time.perf_counter() - start) / calls * 1e6)
    inline.close()
    timed.close()
    return {k: statistics.median(v) for k, v in out.items()}


def _hang(frame: pd.DataFrame) -> np.ndarray:
    import time as t

    if (frame["x"] < 0).any():  # x = -s: sleep s seconds
        t.sleep(-float(frame["x"].min()))
    return frame["x"].to_numpy() * 1.0


def _answer(frame: pd.DataFrame) -> np.ndarray:
    return frame["x"].to_numpy() * 2.0


def fallback_latency(folder: Path, hangs: int, hang_s: float) -> dict[str, float]:
    """p50/p99 ms of answers given by the fallback while the champion sleeps `hang_s`."""
    train = pd.DataFrame({"x": np.arange(20, dtype=float)})
    paths = {n: str(scorehouse.package(fn, train, name=n, path=folder / f"{n}.shz",
                                       compile=False)) for n, fn in (("hang", _hang),
                                                                     ("answer", _answer))}
    cache: ScorerCache[str] = ScorerCache(lambda ref: scorehouse.load(ref, trust=True))
    spec = DeploymentSpec.from_dict({"name": "api", "champion": paths["hang"],
                                     "fallbacks": [paths["answer"]], "deadline_ms": DEADLINE_MS})
    # Enough answering threads for the calls left hanging meanwhile.
    rz = Rendezvous(spec, cache, workers=min(hangs, int(hang_s * 1000 / DEADLINE_MS)) + 4)
    for _ in range(20):
        rz.decide_and_score({"x": 1.0})
    times, fallbacks = [], 0
    for _ in range(hangs):
        start = time.perf_counter()
        answer = rz.decide_and_score({"x": -hang_s}).answer
        times.append((time.perf_counter() - start) * 1000)
        fallbacks += answer.fallback
    rz.close(wait=False)  # the hung calls end on their own
    q = np.quantile(times, [0.5, 0.99])
    return {"p50": float(q[0]), "p99": float(q[1]), "max": max(times),
            "fallbacks": fallbacks, "n": hangs}


def section(args: argparse.Namespace, d: dict[str, float], o: dict[str, float],
            f: list[dict[str, float]]) -> str:
    from report import machine

    rows = "\n".join(f"| {s:g} s | {int(x['fallbacks'])} | {x['p50']:.2f} | {x['p99']:.2f} | "
                     f"{x['max']:.2f} | {x['p99'] - DEADLINE_MS:+.2f} |"
                     for s, x in zip(HANGS_S, f, strict=True))
    title = ("## Routing: deployment decisions and the rendezvous (issue 22; goals: decision "
             "< 20 µs per request; a fallback within deadline_ms + 2 ms at p99)")
    inline = f"{o['inline']:.1f} ({o['inline'] - o['predict']:+.1f})"
    timed = f"{o['deadline']:.1f} ({o['deadline'] - o['predict']:+.1f})"
    return f"""{title}

`python bench/bench_routing.py` on {machine()}.

| what, per request | µs |
|---|---|
| `Router.decide`, full spec, request id given (sticky hash + split + chain) | {d["given"]:.2f} |
| `Router.decide`, request id generated (uuid4) | {d["generated"]:.2f} |
| `Scorer.predict(dict)`, demo churn model, alone | {o["predict"]:.1f} |
| `Rendezvous.decide_and_score`, same model, no deadline (inline) | {inline} |
| `Rendezvous.decide_and_score`, same model, with a deadline (answering pool) | {timed} |

Medians of 5 rounds ({args.decisions:,} decisions, {args.calls:,} scoring calls a round).
The decision's goal (< 20 µs) is for `Router.decide`; a deadline costs one hand-over to a
pool thread and back (the price of being able to stop waiting).

Fallback behind a champion that sleeps (a packaged Python callable), `deadline_ms` =
{DEADLINE_MS:g}, {args.hangs} sequential requests each, every one answered by the fallback:

| champion sleeps | fallback answers | p50 ms | p99 ms | max ms | p99 - deadline, ms |
|---|---|---|---|---|---|
{rows}

The excess over the deadline is the fallback's own scoring (~1 ms for this model) plus
waiting for the GIL: late calls waking up (0.25 s) score while the request thread wants to
go on, and with a champion that stays hung (10 s) every request starts one more pool
thread (a hung call's thread is not reused) on a machine whose 2 cores other jobs share.

Pending (attaching deployments to `serve`): the champion's p99 and throughput at 8
connections with a shadow and a canary on, against the champion alone.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=200_000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--hangs", type=int, default=200)
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        training = churn_frame(20_000, seed=7)
        artifact = scorehouse.package(train_pipeline(training), training, name="churn",
                                      target=TARGET, path=Path(tmp) / "churn.shz")
        d = decisions(args.decisions)
        o = overhead(artifact, args.calls)
        f = [fallback_latency(Path(tmp), args.hangs, s) for s in HANGS_S]
    body = section(args, d, o, f)
    if not args.no_write:
        from report import write_section

        write_section("routing", body)
    print(body)


if __name__ == "__main__":
    main()
