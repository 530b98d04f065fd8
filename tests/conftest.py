"""Shared fixtures: an isolated SCOREHOUSE_HOME, real PostgreSQL databases, a trained model,
and the server helpers of the serve tests (a uvicorn thread, a `scorehouse serve` process)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sysconfig
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import scorehouse
from scorehouse.demo import churn_frame, train_pipeline
from scorehouse.demo.data import TARGET

PG_URL = os.environ.get("SCOREHOUSE_TEST_PG",
                        "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI") == "true"


def pytest_addoption(parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="Also run the tests marked slow (CI=true runs them always).")


def _with_slow(config) -> bool:
    return IN_CI or config.getoption("--slow") or os.environ.get("SCOREHOUSE_SLOW") == "1"


def pytest_report_header(config) -> list[str]:
    """Which Kafka the stream tests talk to, and whether the slow tests run."""
    return [f"kafka: {KAFKA_URL or 'librdkafka mock cluster (SCOREHOUSE_KAFKA_URL unset)'}",
            "slow tests: " + ("run" if _with_slow(config) else
                              "left out (--slow, SCOREHOUSE_SLOW=1 or CI=true run them)")]


def pytest_collection_modifyitems(config, items) -> None:
    """The default run leaves out the tests marked slow (an image build, an offline install
    into a fresh virtualenv, the README's blocks in turn: minutes each) so that it stays
    near 15 minutes; CI runs them."""
    if _with_slow(config):
        return
    slow = [i for i in items if i.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if not i.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_HOME", str(tmp_path / "home"))
    for var in ("SCOREHOUSE_REGISTRY", "SCOREHOUSE_ARTIFACTS", "SCOREHOUSE_SIGNING_KEY",
                "SCOREHOUSE_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def unreachable(service: str, url: str, error: Exception) -> None:
    """A missing service fails the test under CI=true and skips it otherwise."""
    msg = f"{service} not reachable at {url}: {error}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: run scripts/services.sh)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL; fails (never skips) under CI=true."""
    try:
        _pg_connect(PG_URL).close()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("PostgreSQL", PG_URL, e)
    return PG_URL


REDIS_URL = os.environ.get("SCOREHOUSE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (database 15, flushed); fails (never skips) under CI=true."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.flushdb()
        client.close()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("Redis", REDIS_URL, e)
    return REDIS_URL


@pytest.fixture
def r(redis_url):
    """A client of the test Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"sh_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _pg_connect(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path) -> str:
    """Each registry test runs against SQLite and against real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def churn_data():
    """A small churn training frame (numeric + categorical columns, missing values)."""
    return churn_frame(3000, seed=3)


@pytest.fixture(scope="session")
def churn_model(churn_data):
    """The demo's scikit-learn pipeline, trained on `churn_data`."""
    return train_pipeline(churn_data)


@pytest.fixture(scope="session")
def churn_artifact(tmp_path_factory, churn_data, churn_model) -> Path:
    """A packaged churn artifact (.shz)."""
    path = tmp_path_factory.mktemp("artifacts") / "churn.shz"
    return scorehouse.package(churn_model, churn_data, name="churn", target=TARGET, path=path)


def strict_overrides(churn_data) -> dict[str, dict[str, bool]]:
    """Schema overrides that make every churn input without missing values in training
    required again (the demo pipeline imputes every column, so each accepts a null)."""
    X = churn_data.drop(columns=[TARGET])
    return {c: {"nullable": False} for c in X.columns if not X[c].isna().any()}


@pytest.fixture(scope="session")
def strict_churn_artifact(tmp_path_factory, churn_data, churn_model) -> Path:
    """The churn artifact with `strict_overrides`: for tests of rejected missing values."""
    path = tmp_path_factory.mktemp("artifacts") / "churn-strict.shz"
    return scorehouse.package(churn_model, churn_data, name="churn", target=TARGET, path=path,
                              schema_overrides=strict_overrides(churn_data))


@pytest.fixture
def scorer(churn_artifact):
    """The churn artifact, loaded."""
    return scorehouse.load(churn_artifact, trust=True)


@pytest.fixture
def features(churn_data):
    """The churn inputs without the target."""
    return churn_data.drop(columns=[TARGET])


NATS_URL = os.environ.get("SCOREHOUSE_TEST_NATS", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """A reachable NATS (JetStream); fails (never skips) under CI=true."""
    import asyncio

    import nats

    async def check() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=3)
        await nc.close()

    try:
        asyncio.run(check())
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("NATS", NATS_URL, e)
    return NATS_URL


KAFKA_URL = os.environ.get("SCOREHOUSE_KAFKA_URL")


@pytest.fixture(scope="session")
def kafka():
    """Bootstrap servers speaking Kafka's protocol: SCOREHOUSE_KAFKA_URL's broker, else
    librdkafka's mock cluster, held open by a client of this process for the whole run (the
    run's header says which: see `pytest_report_header`)."""
    from urllib.parse import urlsplit

    if KAFKA_URL:
        yield urlsplit(KAFKA_URL).netloc
        return
    from confluent_kafka import Producer

    holder = Producer({"bootstrap.servers": "", "test.mock.num.brokers": 1, "log_level": 3})
    brokers = holder.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    holder.flush(5)


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession whose Python workers run this interpreter, shared by every
    test that needs Spark; fails (never skips) under CI=true."""
    import sys

    try:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        session = (SparkSession.builder.master("local[2]").appName("scorehouse-tests")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    except Exception as e:  # noqa: BLE001 - no Java or no pyspark: Spark is not reachable
        unreachable("Spark (Java + pyspark)", "local[2]", e)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    try:
        session.stop()
    except Exception as e:  # noqa: BLE001 - the JVM already gone at the end of the run
        import warnings

        warnings.warn(f"Spark session did not stop cleanly: {e}", stacklevel=1)


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    """`scorehouse ARGS` in this process (no start-up cost): (exit code, stdout, stderr)."""
    from scorehouse.cli.app import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    got = capsys.readouterr()
    return code, got.out, got.err


# --- serve: servers on local ports, and the registry and rows most serve tests use --------

#: The `scorehouse` console script of this environment.
SCRIPT = shutil.which("scorehouse", path=sysconfig.get_path("scripts")) or "scorehouse"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_json(text: str) -> bool:
    """True when `text` is a JSON document."""
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


class Server:
    """uvicorn serving an ASGI app in a background thread, as a context manager that waits
    until the models are loaded (`url`: its base URL)."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        while httpx.get(f"{self.url}/v2/health/ready").status_code != 200:
            assert time.time() < deadline, "models did not load"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def cli_env(home: Path) -> dict[str, str]:
    """This environment without SCOREHOUSE_* variables, SCOREHOUSE_HOME set to `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(home)
    return env


class CliServer:
    """`scorehouse serve ARGS` in its own process (so its peak memory is its own)."""

    def __init__(self, args: list[str], home: Path, scheme: str = "http", **popen):
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([SCRIPT, "serve", *args, "--port", str(self.port)],
                                     env=cli_env(home), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, **popen)

    def wait_ready(self, **client) -> None:
        """Until /v2/health/ready answers 200 (fails when the process exits first)."""
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", **client).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.time() < deadline and self.proc.poll() is None, self.stop()
            time.sleep(0.1)

    def peak_rss_mb(self) -> int:
        """The process' peak resident memory so far, in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) // 1024

    def stop(self) -> str:
        """Stop the server; returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory, strict_churn_artifact):
    """A registry holding churn/1 (production) and churn/2, with the columns never missing in
    training required (tests send them absent or null as bad input)."""
    home = tmp_path_factory.mktemp("serve-home")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(strict_churn_artifact)
    reg.register(strict_churn_artifact, allow_duplicate=True)
    reg.promote("churn/1", "production")
    return reg


@pytest.fixture(scope="module")
def server(registry_home):
    """`churn@production` of `registry_home`, served in this process (a `Server`)."""
    from scorehouse.serve import ModelSet, create_app

    models = ModelSet(["churn@production"], registry_home)
    with Server(create_app(models)) as s:
        yield s


@pytest.fixture
def http(server):
    """An HTTP client of `server`."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def rows(churn_data):
    """The first 20 churn input rows as JSON-ready records (missing values as None)."""
    X = churn_data.drop(columns=[TARGET]).head(20)
    return X.astype(object).where(X.notna(), None).to_dict("records")


# --- pages in a real browser ---------------------------------------------------------------

CHROMIUM = os.environ.get("SCOREHOUSE_TEST_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
#: The flags a root sandbox needs, and no calls home (the machine's network is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium under Playwright; fails (never skips) under CI=true.

    Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is started, so a later module's `asyncio.run`
    (the NATS probe, the async router tests) would fail with "cannot be called from a
    running event loop". Stopping it at the end of each module gives the loop back."""
    try:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - no chromium or no playwright: not reachable
        unreachable("chromium (Debian package) driven by Playwright", CHROMIUM, e)
    yield b
    b.close()
    pw.stop()


@dataclass
class OfflinePage:
    """A page opened from a file with every other request refused: `left` lists what it
    tried to fetch (aborted), `dialogs` what a script showed (dismissed)."""

    page: Any
    left: list[str]
    dialogs: list[str]


def offline_page(browser, path: Path) -> OfflinePage:
    """`path` opened in `browser` (1280 wide) on a network with no way out but the file."""
    opened = OfflinePage(browser.new_page(viewport={"width": 1280, "height": 900}), [], [])

    def only_the_file(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            opened.left.append(route.request.url)
            route.abort()

    opened.page.route("**/*", only_the_file)
    opened.page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
    opened.page.goto(path.as_uri())
    opened.page.wait_for_load_state("load")
    return opened
