"""The serverless figure: a Lambda cold start with the demo model (goal: under 1.5 s).

A cold start is a fresh process that imports the handler, loads the model (Lambda's
initialisation) and answers one event (a Function URL POST of one record to
/models/churn/predict). Each run is a new interpreter, timed from its spawn to the answer
it prints; inside, it reports its import, load and first-answer times.

Three cases: the handler's defaults (tree ensembles scored by ONNX Runtime alone, as the
handler does in Lambda unless SCOREHOUSE_TREE_KERNEL is set); the tree kernel on with its
caches warm (numba's compiled kernel and scorehouse's tree cache already on disk, as in an
image whose build ran the model once and a /tmp that kept them); and the tree kernel on with
its caches empty (a fresh SCOREHOUSE_HOME and NUMBA_CACHE_DIR: Lambda's empty /tmp).

Baselines, same run: `python -c pass` (the interpreter alone), and a minimal handler without
scorehouse: import joblib + pandas, `joblib.load` of the same scikit-learn pipeline and one
`predict_proba` on a one-row DataFrame.

Run: python bench/bench_serverless.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, write_section  # noqa: E402

GOAL = 1.5

HANDLER = """
import json, time
t0 = time.perf_counter()
from scorehouse.serverless import function
t1 = time.perf_counter()
fn = function.default()
t2 = time.perf_counter()
record = {record!r}
event = {{"version": "2.0", "routeKey": "$default", "rawPath": "/models/churn/predict",
          "rawQueryString": "", "headers": {{"content-type": "application/json"}},
          "requestContext": {{"http": {{"method": "POST", "path": "/models/churn/predict",
                                        "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                                        "userAgent": "bench"}}}},
          "body": json.dumps(record), "isBase64Encoded": False}}
answer = fn(event, None)
t3 = time.perf_counter()
assert answer["statusCode"] == 200, answer
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "answer": t3 - t2}}), flush=True)
"""

BY_HAND = """
import json, time
t0 = time.perf_counter()
import joblib, pandas as pd
model = joblib.load({path!r})
t1 = time.perf_counter()
p = model.predict_proba(pd.DataFrame([{record!r}]))
print(json.dumps({{"load": t1 - t0, "p": float(p[0, 1])}}), flush=True)
"""


def timed(code: str, env: dict[str, str]) -> tuple[float, dict]:
    """(seconds from spawn to the printed line, what the process printed)."""
    start = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline() if p.stdout else ""
    seconds = time.perf_counter() - start
    if p.wait() != 0 or not line:
        raise SystemExit(f"the timed process failed (exit {p.returncode})")
    return seconds, json.loads(line) if line.strip().startswith("{") else {}


def demo_model(workdir: Path) -> tuple[Path, Path, dict]:
    """The demo's model (20,000 rows, forest of 100 trees) as an artifact and as a joblib
    pickle, and one record."""
    import joblib

    import scorehouse
    from scorehouse.demo import churn_frame, train_pipeline
    from scorehouse.demo.data import TARGET

    data = churn_frame(20_000)
    model = train_pipeline(data)
    joblib.dump(model, workdir / "model.joblib")
    artifact = scorehouse.package(model, data, name="churn", target=TARGET,
                                  path=workdir / "churn.shz")
    X = data.drop(columns=[TARGET])
    row = X.iloc[0]
    record = {c: (None if v != v else (v.item() if hasattr(v, "item") else v))
              for c, v in row.items()}
    return Path(artifact), workdir / "model.joblib", record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        artifact, pickle, record = demo_model(work)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SCOREHOUSE_", "AWS_LAMBDA", "NUMBA_CACHE"))}
        default = dict(base, SCOREHOUSE_MODELS=str(artifact), SCOREHOUSE_TRUST="1",
                       SCOREHOUSE_HOME=str(work / "home"), NUMBA_CACHE_DIR=str(work / "numba"))
        kernel = dict(default, SCOREHOUSE_TREE_KERNEL="1")
        handler = HANDLER.format(record=record)
        timed(handler, kernel)  # fills the caches of the warm case
        runs: dict[str, list[tuple[float, dict]]] = {"default": [], "warm": [], "empty": [],
                                                     "pass": [], "hand": []}
        for i in range(args.repeat):
            runs["default"].append(timed(handler, default))
            runs["warm"].append(timed(handler, kernel))
            empty = dict(kernel, SCOREHOUSE_HOME=str(work / f"home{i}"),
                         NUMBA_CACHE_DIR=str(work / f"numba{i}"))
            runs["empty"].append(timed(handler, empty))
            runs["pass"].append(timed("print('{}', flush=True)", base))
            runs["hand"].append(timed(BY_HAND.format(path=str(pickle), record=record), base))
    report(runs, args.repeat)


def report(runs: dict[str, list[tuple[float, dict]]], repeat: int) -> None:
    """Write the section (medians over the runs)."""
    def med(kind: str, key: str | None = None) -> float:
        return statistics.median(s if key is None else out[key] for s, out in runs[kind])

    cold = med("default")
    body = f"""## Serverless: a Lambda cold start with the demo model (issue 25; goal: under {GOAL} s)

`python bench/bench_serverless.py --repeat {repeat}` on {machine()}; medians of {repeat} runs,
each a fresh interpreter timed from its spawn to its answer to one Function URL event (POST of
one record to /models/churn/predict); the demo's model (forest of 100 trees, depth 10,
trained on 20,000 rows) from its artifact file.

| what | seconds |
|---|---|
| cold start, the handler's defaults (ONNX Runtime scores the trees alone): total | {cold:.2f} |
| of which: import the handler (scorehouse, serve's app, Mangum) | {med("default", "import"):.2f} |
| of which: load and prepare the model (Lambda's initialisation) | {med("default", "load"):.2f} |
| of which: the first event | {med("default", "answer"):.3f} |
| cold start, tree kernel on (`SCOREHOUSE_TREE_KERNEL=1`), its caches warm | {med("warm"):.2f} |
| of which: load and prepare the model (numba imported, the compiled kernel loaded) | {med("warm", "load"):.2f} |
| cold start, tree kernel on, its caches empty (Lambda's empty /tmp: the kernel compiled again) | {med("empty"):.2f} |
| baseline: `python -c pass` | {med("pass"):.2f} |
| baseline: a handler without scorehouse (joblib + pandas, `joblib.load` of the pipeline, one `predict_proba`) | {med("hand"):.2f} |
| goal met (< {GOAL} s, the handler's defaults) | {"yes" if cold < GOAL else "NO"} |
"""
    write_section("serverless", body)
    print(body)


if __name__ == "__main__":
    main()
