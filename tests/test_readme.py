"""README.md, followed top to bottom as a new user would: every code block runs here, as
written, in one workspace, in the README's order, so the README cannot drift from the product.

Each block is preceded by a marker:

    <!-- readme: run -->            run it (sh blocks with bash -e, python blocks with exec,
                                    sql blocks statement by statement on the crm database)
    <!-- readme: skip REASON -->    not runnable on one machine; the reason is shown

A block without a marker fails `test_every_block_is_run_or_says_why_not`, so a new example
is either tested or skipped on purpose.

The workspace holds what a reader is assumed to have (a trained `model.joblib`,
`train.parquet`, customer files and tables). The only changes made to a block before it runs
are the ones in `SUBSTITUTIONS`: service addresses become the test's own (a fresh PostgreSQL
database for `crm`, the test Redis database, a free port, fresh NATS/Kafka names), so a
developer's own `crm` database or Redis database 0 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest

from scorehouse.demo import churn_frame, train_pipeline
from scorehouse.demo.data import TARGET

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!-- readme: (run|skip)(?: ([^\n]*?))? -->[ \t]*\n```(\w*)\n(.*?)^```",
                    re.S | re.M)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README and what its marker says."""

    line: int
    lang: str
    code: str
    action: str  # "run" or "skip"
    reason: str

    @property
    def id(self) -> str:
        return f"line {self.line} ({self.lang})"


def blocks() -> list[Block]:
    """The README's code blocks that carry a marker, in order."""
    text = README.read_text()
    return [Block(text[:m.start(3)].count("\n") + 1, m.group(3), m.group(4), m.group(1),
                  (m.group(2) or "").strip()) for m in MARKER.finditer(text)]


def test_every_block_is_run_or_says_why_not():
    text = README.read_text()
    fenced = {text[:m.start()].count("\n") + 1 for m in FENCE.finditer(text)}
    marked = {b.line for b in blocks()}  # both count the opening fence's line
    assert fenced - marked == set(), "README code blocks at these lines have no readme marker"
    for b in blocks():
        assert b.action == "run" or b.reason, f"{b.id}: a skipped block says why"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(request, tmp_path_factory, pg_server, redis_url, churn_data):
    """A reader's folder: a trained model (and a second one), its training data, customers
    as CSV, gzip CSV, Parquet, a dated Parquet folder, SQLite and DuckDB files, and a `crm`
    PostgreSQL database with customers, complaints and customer_profile tables."""
    import duckdb
    import psycopg

    d = tmp_path_factory.mktemp("readme")
    train = churn_frame(4000, seed=21)
    train.to_parquet(d / "train.parquet", index=False)
    joblib.dump(train_pipeline(train), d / "model.joblib")
    joblib.dump(train_pipeline(churn_frame(4000, seed=22)), d / "model-v2.joblib")
    customers = churn_frame(500, seed=23).drop(columns=[TARGET])
    customers.insert(0, "customer_id", [f"C{100000 + i}" for i in range(len(customers))])
    customers.to_csv(d / "customers.csv", index=False)
    customers.to_csv(d / "customers.csv.gz", index=False)
    customers.to_parquet(d / "customers.parquet", index=False)
    (d / "data").mkdir()
    customers.iloc[:250].to_parquet(d / "data" / "2026-11-01.parquet", index=False)
    customers.iloc[250:].to_parquet(d / "data" / "2026-11-02.parquet", index=False)
    (d / "lake" / "customers").mkdir(parents=True)
    customers.to_parquet(d / "lake" / "customers" / "part-0.parquet", index=False)
    with_id = customers.rename(columns={"customer_id": "id"})
    import sqlite3

    with sqlite3.connect(d / "crm.db") as con:
        with_id.assign(active=[i % 2 for i in range(len(with_id))]).to_sql("customers", con)
    with duckdb.connect(str(d / "crm.duckdb")) as con:
        con.register("frame", with_id)
        con.execute("CREATE TABLE customers AS SELECT * FROM frame")

    db = f"sh_readme_{uuid.uuid4().hex[:10]}"
    base = pg_server.rsplit("/", 1)[0]
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
        admin.execute("DO $$ BEGIN CREATE ROLE app_user; EXCEPTION WHEN duplicate_object "
                      "THEN NULL; END $$")
    crm = f"{base}/{db}"
    _crm_tables(crm, customers)
    home = d / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env.update(SCOREHOUSE_HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               COLUMNS="160", NO_COLOR="1")
    port = _free_port()
    subject = f"readme_{uuid.uuid4().hex[:8]}"
    topic = f"readme_{uuid.uuid4().hex[:8]}"
    brokers = request.getfixturevalue("kafka")
    substitutions = {
        "postgresql://postgres@localhost/crm": crm,
        "redis://localhost:6379/0": redis_url,
        "redis-cli -n 0 ": f"redis-cli -u {redis_url} ",
        "localhost:8080": f"127.0.0.1:{port}",
        "--port 8080": f"--port {port}",
        # NATS: the subject and the stream that keeps it.
        "subject=events": f"subject={subject}", '["events"]': f'["{subject}"]',
        'publish("events"': f'publish("{subject}"', 'name="EVENTS"': f'name="{subject.upper()}"',
        # Kafka: librdkafka's mock cluster (or SCOREHOUSE_KAFKA_URL's broker), a fresh topic.
        "localhost:9092": brokers, "topic=events": f"topic={topic}",
        'produce("events"': f'produce("{topic}"',
        # Spark reads relative paths from the JVM's directory: the run's one Spark session
        # started where pytest did, not in this workspace.
        'parquet("lake/': f'parquet("{d}/lake/',
    }
    yield Workspace(d, env, substitutions, crm)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _crm_tables(url: str, customers) -> None:
    import psycopg

    from scorehouse.schema import infer_schema

    sql_type = {"integer": "bigint", "number": "float8", "string": "text", "boolean": "boolean"}
    schema = infer_schema(customers.drop(columns=["customer_id"]))
    cols = ", ".join(f'"{c.name}" {sql_type[c.type]}' for c in schema.columns)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE TABLE customers (id text PRIMARY KEY, {cols})")
        with con.cursor().copy("COPY customers FROM STDIN") as copy:
            for row in customers.astype(object).itertuples(index=False):
                copy.write_row([None if v != v else v for v in row])
        con.execute(f"CREATE TABLE customer_profile (customer_id text PRIMARY KEY, {cols}, "
                    "last_channel text)")
        con.execute("INSERT INTO customer_profile SELECT id AS customer_id, "
                    + ", ".join(f'"{c}"' for c in customers.columns if c != "customer_id")
                    + ", NULL FROM customers")
        con.execute("CREATE TABLE complaints (id serial PRIMARY KEY, customer_id text, "
                    "channel text, at timestamptz DEFAULT now())")


@dataclass
class Workspace:
    """Where the README's blocks run, and how their addresses become the test's."""

    path: Path
    env: dict[str, str]
    substitutions: dict[str, str]
    crm: str

    def prepare(self, code: str) -> str:
        for old, new in self.substitutions.items():
            code = code.replace(old, new)
        return code


@pytest.fixture(scope="module")
def python_namespace(workspace, churn_data):
    """What a Python block may assume: the reader's pipeline, training frame, new rows."""
    train = churn_frame(4000, seed=21)
    new = churn_frame(50, seed=24).drop(columns=[TARGET])
    return {"pipeline": joblib.load(workspace.path / "model.joblib"), "train_df": train,
            "new_customers": new}


@pytest.mark.slow  # every block in turn, one workspace: ~3 min; CI runs it (CI=true)
@pytest.mark.parametrize("block", [b for b in blocks() if b.action == "run"], ids=lambda b: b.id)
def test_readme_block_runs_as_written(block, workspace, python_namespace, monkeypatch):
    code = workspace.prepare(block.code)
    monkeypatch.chdir(workspace.path)
    for k, v in workspace.env.items():
        monkeypatch.setenv(k, v)
    if block.lang in ("sh", "bash"):
        _run_shell(code, workspace)
    elif block.lang == "python":
        exec(compile(code, f"README.md:{block.line}", "exec"), dict(python_namespace))
    elif block.lang == "sql":
        _run_sql(code, workspace.crm)
    else:  # pragma: no cover - a marker on a block of another language
        pytest.fail(f"{block.id}: no runner for {block.lang!r} blocks")


def _run_shell(code: str, ws: Workspace) -> None:
    script = "set -eo pipefail\n" + code
    # Its own process group, stopped whatever happens: a block that fails before its
    # `kill %1` must not leave its server holding the port the next blocks use.
    proc = subprocess.Popen(["bash", "-c", script], cwd=ws.path, env=ws.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert p.returncode == 0, f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-4000:]}\n" \
                              f"--- stderr ---\n{p.stderr[-4000:]}"
    assert "Traceback" not in p.stderr, p.stderr[-4000:]


def _run_sql(code: str, url: str) -> None:
    import psycopg

    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", code).split(";") if s.strip()]
    with psycopg.connect(url, autocommit=True) as con:
        for sql in statements:
            rows = con.execute(sql).fetchall()
            assert rows, f"no rows from: {sql}"


def test_the_tools_the_readme_uses_are_installed():
    for tool in ("jq", "curl", "redis-cli", "bash"):
        assert shutil.which(tool), f"the README's examples use {tool}: scripts/services.sh " \
                                   "installs it"
