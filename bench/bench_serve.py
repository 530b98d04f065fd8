"""REST service figures: `scorehouse serve` against a bare ASGI handler, with wrk.

Model: the forest pipeline of bench_runtime (impute + scale + one-hot + 100 trees, depth 10,
13 mixed columns), packaged with `scorehouse.package` (ONNX runtime). One record per request
to `POST /models/churn/predict`; then the same record in each protocol, measured in the same
run: MLflow records (`POST /invocations`, `{"dataframe_records": [row]}`), V2 JSON with one
tensor per column (`POST /v2/models/churn/infer`, as MLServer, KServe and Triton clients
send one row), V2 binary as tritonclient sends it (binary tensor data extension, the JSON
header's length in `Inference-Header-Content-Length`, outputs asked as binary) and native.

Baseline: a bare ASGI app that reads the body, parses the JSON and returns a constant JSON
answer, served by the same uvicorn settings (same workers, loop, HTTP parser, no access log).
Load: wrk (keep-alive; uvicorn sets TCP_NODELAY on its sockets, so no Nagle/delayed-ACK stalls)
for `--seconds` per measurement, 8 connections and 1 connection.

Goals: throughput at 8 connections >= 30% of the bare handler's; p99 < 5 ms at 8 connections;
p50 < 0.5 ms at 1 connection; no errors; every protocol >= 70% of the fastest protocol's
throughput at 8 connections.

Logging on vs off (issue 21; goal: >= 90% of the throughput with logging off, at 8
connections): two servers of the same model, one with `--log-to parquet:` (the default
Parquet sink, every request logged), one without, measured interleaved (off, on, off, on,
...; `--log-rounds` pairs of `--log-seconds` each), so the noise of a shared machine falls
on both; the ratio is of the summed requests.

Run: python bench/bench_serve.py [--seconds 60] [--workers 1] [--quick]  (--quick: 10 s unless
--seconds says otherwise; prints only); python bench/bench_serve.py --log-ab [--log-rounds 5]
[--log-seconds 5] measures logging on vs off only (section serve-log, inside serve's).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import TRAIN_ROWS, frame, records, revision, train  # noqa: E402
from report import machine, write_section  # noqa: E402

GOAL_SHARE, GOAL_P99_MS, GOAL_P50_MS, GOAL_PROTOCOL = 0.30, 5.0, 0.5, 0.70
GOAL_LOG = 0.90

BARE_APP = '''
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    json.loads(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": [0.5]}'})
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    """Until 20 readiness probes in a row, each on a new connection, say ready: with several
    workers, one answering ready says nothing of the others."""
    deadline = time.time() + seconds
    in_a_row = 0
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            in_a_row = in_a_row + 1 if httpx.get(url).status_code == 200 else 0
        except httpx.TransportError:
            in_a_row = 0
        if in_a_row >= 20:
            return
        time.sleep(0.05 if in_a_row else 0.1)
    raise SystemExit(f"{url} never became ready")


def wrk(url: str, body: str | bytes, connections: int, seconds: int, folder: Path,
        headers: dict[str, str] | None = None) -> dict[str, float]:
    """Requests/s, p50/p99 in ms and error count from one wrk run (`body` read from a file,
    so binary bodies go as they are)."""
    (folder / "body.bin").write_bytes(body.encode() if isinstance(body, str) else body)
    script = folder / "post.lua"
    lines = ['wrk.method = "POST"', f'local f = io.open({json.dumps(str(folder / "body.bin"))}, "rb")',
             'wrk.body = f:read("*a")', "f:close()"]
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    script.write_text("\n".join(lines) + "\n")
    threads = min(connections, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url], capture_output=True, text=True,
                         check=True).stdout

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx[1]) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "errors": errors}


#: (label, path) of each protocol's line; the bodies are made by `protocol_bodies`.
PROTOCOLS = [("MLflow records", "/invocations"),
             ("V2 JSON, one tensor per column", "/v2/models/churn/infer"),
             ("V2 binary (tritonclient)", "/v2/models/churn/infer"),
             ("native", "/models/churn/predict")]


def protocol_bodies(base: str, row: dict) -> list[tuple[bytes, dict[str, str]]]:
    """(body, extra headers) of one record in each protocol of PROTOCOLS, in order."""
    import numpy as np
    import tritonclient.http as tc

    types = {i["name"]: i["datatype"] for i in httpx.get(f"{base}/v2/models/churn").json()["inputs"]}
    v2 = {"inputs": [{"name": c, "shape": [1], "datatype": types[c], "data": [v]}
                     for c, v in row.items()]}
    tensors = []
    for c, v in row.items():
        if types[c] == "BYTES":
            t = tc.InferInput(c, [1, 1], "BYTES")
            t.set_data_from_numpy(np.array([[b"" if v is None else str(v).encode()]], dtype=object))
        else:  # the datatype the metadata advertises; a missing number goes as FP64 NaN
            kind = "FP64" if v is None else types[c]
            t = tc.InferInput(c, [1, 1], kind)
            t.set_data_from_numpy(np.array([[np.nan if v is None else v]],
                                           dtype=np.float64 if kind == "FP64" else np.int64))
        tensors.append(t)
    binary, header = tc.InferenceServerClient.generate_request_body(tensors)
    return [(json.dumps({"dataframe_records": [row]}).encode(), {}),
            (json.dumps(v2).encode(), {}),
            (binary, {"Content-Type": "application/octet-stream",
                      "Inference-Header-Content-Length": str(header)}),
            (json.dumps(row).encode(), {})]


def measure_protocols(base: str, row: dict, seconds: int, folder: Path) -> list[dict]:
    """Per protocol: its 8- and 1-connection wrk figures (after checking one answer)."""
    out = []
    for (label, path), (body, headers) in zip(PROTOCOLS, protocol_bodies(base, row), strict=True):
        check = httpx.post(base + path, content=body,
                           headers={"Content-Type": "application/json", **headers})
        assert check.status_code == 200, (label, check.text[:300])
        wrk(base + path, body, 8, 2, folder, headers)  # warm-up
        out.append({"label": label, "path": path,
                    "8": wrk(base + path, body, 8, seconds, folder, headers),
                    "1": wrk(base + path, body, 1, seconds, folder, headers)})
    return out


def serve(cmd: list[str], ready: str, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder)
    wait_ready(ready, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_logging(scorehouse: str, artifact: Path, body: str, common: list[str],
                    rounds: int, seconds: int, d: Path) -> dict[str, Any]:
    """Requests/s at 8 connections with logging off and on (every request, Parquet),
    interleaved; also the rows the log holds afterwards."""
    from scorehouse.monitor import read_log

    procs, urls = [], []
    for extra in ([], ["--log-to", str(d / "predictions")]):
        port = free_port()
        procs.append(serve([scorehouse, "serve", str(artifact), "--trust", "--port", str(port),
                            *common, *extra], f"http://127.0.0.1:{port}/v2/health/ready", d))
        urls.append(f"http://127.0.0.1:{port}/models/churn/predict")
    totals = [0.0, 0.0]
    try:
        for url in urls:
            wrk(url, body, 8, 2, d)  # warm-up
        for _ in range(rounds):
            for i, url in enumerate(urls):
                totals[i] += wrk(url, body, 8, seconds, d)["rps"]
    finally:
        for proc in procs:
            stop(proc)  # SIGTERM: the logging server flushes its log
    logged = read_log(d / "predictions").num_rows
    return {"off": totals[0] / rounds, "on": totals[1] / rounds, "logged": logged,
            "rounds": rounds, "seconds": seconds, "batching": common[-1]}


def log_section(r: dict[str, Any], workers: int) -> str:
    """The serve-log lines: logging on vs off."""
    ratio = r["on"] / r["off"]
    return f"""Logging on vs off (goal: >= {GOAL_LOG:.0%}): `python bench/bench_serve.py --log-ab --log-rounds {r['rounds']} --log-seconds {r['seconds']} --workers {workers} --batching {r['batching']}`, {revision()}; two servers of the same model, one record per `POST /models/churn/predict` (one with `--log-to FOLDER`: the default Parquet sink, every request logged; live drift on in both), 8 connections, {r['rounds']} interleaved pairs of {r['seconds']} s runs on a shared machine; {r['logged']:,.0f} rows in the log after SIGTERM.

| 8 connections | logging off | logging on | ratio | goal | met |
|---|---|---|---|---|---|
| requests/s (mean of the rounds) | {r['off']:,.0f} | {r['on']:,.0f} | {ratio:.0%} | >= {GOAL_LOG:.0%} | {"yes" if ratio >= GOAL_LOG else "NO"} |
"""


def main_log_ab(args: argparse.Namespace, scorehouse: str) -> None:
    """`--log-ab`: logging on vs off only, into the serve-log section."""
    import scorehouse as sh
    from scorehouse.demo.data import TARGET

    with tempfile.TemporaryDirectory(prefix="sh-bench-serve-log-") as tmp:
        d = Path(tmp)
        data = frame(TRAIN_ROWS, seed=1)
        artifact = sh.package(train("forest", data), data, name="churn", target=TARGET,
                              path=d / "churn.shz")
        body = json.dumps(records(frame(10, seed=7).drop(columns=[TARGET]))[0])
        r = measure_logging(scorehouse, artifact, body, ["--workers", str(args.workers),
                                                         "--batching", args.batching],
                            args.log_rounds, args.log_seconds, d)
    text = log_section(r, args.workers)
    print(text)
    if not args.quick:
        write_section("serve-log", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=None, help="per line (default 60; --quick: 10)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batching", default="auto", choices=["auto", "on", "off"],
                    help="(with --log-ab, give on or off: auto may choose differently for "
                         "the two servers)")
    ap.add_argument("--quick", action="store_true", help="short runs; print only")
    ap.add_argument("--log-ab", action="store_true", help="only logging on vs off")
    ap.add_argument("--log-rounds", type=int, default=5)
    ap.add_argument("--log-seconds", type=int, default=5)
    args = ap.parse_args()
    seconds = args.seconds or (10 if args.quick else 60)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    scorehouse = shutil.which("scorehouse", path=str(Path(sys.executable).parent))
    assert scorehouse, "the scorehouse console script is not installed"
    if args.log_ab:
        main_log_ab(args, scorehouse)
        return

    import scorehouse as sh
    from scorehouse.demo.data import TARGET

    with tempfile.TemporaryDirectory(prefix="sh-bench-serve-") as tmp:
        d = Path(tmp)
        data = frame(TRAIN_ROWS, seed=1)
        artifact = sh.package(train("forest", data), data, name="churn", target=TARGET,
                              path=d / "churn.shz")
        row = records(frame(10, seed=7).drop(columns=[TARGET]))[0]
        body = json.dumps(row)
        (d / "bare.py").write_text(BARE_APP)
        common = ["--workers", str(args.workers)]
        results = {}

        port = free_port()
        proc = serve([scorehouse, "serve", str(artifact), "--trust", "--port", str(port), *common,
                      "--batching", args.batching],
                     f"http://127.0.0.1:{port}/v2/health/ready", d)
        url = f"http://127.0.0.1:{port}/models/churn/predict"
        try:
            check = httpx.post(url, content=body).json()
            assert check["predictions"] and not check["rejects"], check
            wrk(url, body, 8, 3, d)  # warm-up
            results["scorehouse_8"] = wrk(url, body, 8, seconds, d)
            results["scorehouse_1"] = wrk(url, body, 1, seconds, d)
            protocols = measure_protocols(f"http://127.0.0.1:{port}", row, seconds, d)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            batching = 'scorehouse_batching_enabled{model="churn"} 1.0' in metrics
        finally:
            stop(proc)

        port = free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(port),
                   "--log-level", "warning", "--no-access-log", *common]
        proc = subprocess.Popen(uvicorn, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=d)
        bare_url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    httpx.post(bare_url, content=body)
                    break
                except httpx.TransportError:
                    assert time.time() < deadline
                    time.sleep(0.1)
            wrk(bare_url, body, 8, 3, d)
            results["bare_8"] = wrk(bare_url, body, 8, seconds, d)
        finally:
            stop(proc)

    report(results, protocols, seconds, args.workers, batching, args.batching, args.quick)


def protocol_table(protocols: list[dict]) -> str:
    """The per-protocol table: each protocol's throughput and latency, and its share of the
    fastest protocol's throughput at 8 connections."""
    best = max(p["8"]["rps"] for p in protocols)
    lines = ["| protocol | path | 8 connections, requests/s | 8 connections, p50 / p99 ms "
             "| 1 connection, requests/s, p50 / p99 ms | share of the fastest | met |",
             "|---|---|---|---|---|---|---|"]
    for p in protocols:
        s8, s1, share = p["8"], p["1"], p["8"]["rps"] / best
        lines.append(f"| {p['label']} | `{p['path']}` | {s8['rps']:,.0f} | {s8['p50']:.2f} / "
                     f"{s8['p99']:.2f} | {s1['rps']:,.0f}, {s1['p50']:.2f} / {s1['p99']:.2f} | "
                     f"{share:.0%} | {'yes' if share >= GOAL_PROTOCOL else 'NO'} |")
    return "\n".join(lines) + "\n"


def report(r: dict[str, dict[str, float]], protocols: list[dict], seconds: int, workers: int,
           batching: bool, mode: str, quick: bool) -> None:
    s8, s1, b8 = r["scorehouse_8"], r["scorehouse_1"], r["bare_8"]
    share = s8["rps"] / b8["rps"]
    yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
    errors = s8["errors"] + s1["errors"]
    body = f"""## REST service: `scorehouse serve` (goals: >= {GOAL_SHARE:.0%} of a bare ASGI handler's throughput at 8 connections; p99 < {GOAL_P99_MS:g} ms at 8; p50 < {GOAL_P50_MS:g} ms at 1; no errors; every protocol >= {GOAL_PROTOCOL:.0%} of the fastest)

`python bench/bench_serve.py --seconds {seconds} --workers {workers} --batching {mode}` on {machine()}, {revision()}. Forest pipeline (100 trees, depth 10, 13 mixed columns), ONNX runtime, one record per `POST /models/churn/predict`; wrk with keep-alive, {seconds} s per line, client and server on the same 2 cores; uvicorn with {workers} worker(s) for both servers. Micro-batching ({mode}): {"on" if batching else "off"}.

| measure | scorehouse | bare ASGI (parse JSON, constant answer) | ratio | goal | met |
|---|---|---|---|---|---|
| 8 connections, requests/s | {s8['rps']:,.0f} | {b8['rps']:,.0f} | {share:.0%} | >= {GOAL_SHARE:.0%} | {yes(share >= GOAL_SHARE)} |
| 8 connections, p50 / p99 ms | {s8['p50']:.2f} / {s8['p99']:.2f} | {b8['p50']:.2f} / {b8['p99']:.2f} | | p99 < {GOAL_P99_MS:g} | {yes(s8['p99'] < GOAL_P99_MS)} |
| 1 connection, requests/s, p50 / p99 ms | {s1['rps']:,.0f}, {s1['p50']:.2f} / {s1['p99']:.2f} | | | p50 < {GOAL_P50_MS:g} | {yes(s1['p50'] < GOAL_P50_MS)} |
| errors (non-2xx, socket) | {errors} | {b8['errors']} | | 0 | {yes(errors == 0)} |

The same record in each protocol, same server, same run (goal: every protocol >= {GOAL_PROTOCOL:.0%} of the fastest one's requests/s at 8 connections; errors: {sum(p[c]['errors'] for p in protocols for c in "81")}):

{protocol_table(protocols)}"""
    print(body)
    if not quick:
        write_section("serve", body + kept_log_section())


def kept_log_section() -> str:
    """The serve-log block now in BENCHMARKS.md (kept when the serve section is rewritten;
    `--log-ab` rewrites it)."""
    from report import BENCHMARKS

    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    m = re.search(r"<!-- serve-log:start -->.*?<!-- serve-log:end -->", text, re.S)
    return "\n" + (m[0] if m else "<!-- serve-log:start -->\n<!-- serve-log:end -->") + "\n"


if __name__ == "__main__":
    main()
