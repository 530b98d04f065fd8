"""Scaling out: several `scorehouse serve` processes (the replicas of a Deployment) on one
PostgreSQL registry and one artifact store follow an alias move together, while clients
keep scoring, and no request fails."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import scorehouse
from conftest import SCRIPT, CliServer, cli_env, free_port


class Replica(CliServer):
    """`scorehouse serve churn@production [OPTIONS]` on the shared registry, in its own process."""

    def __init__(self, registry: str, artifacts: str, home, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = cli_env(home)
        env.update(SCOREHOUSE_REGISTRY=registry, SCOREHOUSE_ARTIFACTS=artifacts)
        self.proc = subprocess.Popen([SCRIPT, "serve", "churn@production", "--port",
                                      str(self.port), *options], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)


def test_replicas_on_one_postgresql_registry_follow_an_alias_move(
        pg_url, tmp_path, strict_churn_artifact, rows):
    artifacts = str(tmp_path / "artifacts")  # one store for all (S3 in a cluster)
    reg = scorehouse.Registry(pg_url, artifacts)
    reg.register(strict_churn_artifact)
    reg.register(strict_churn_artifact, allow_duplicate=True)
    reg.promote("churn/1", "production")
    replicas = [Replica(pg_url, artifacts, tmp_path / f"home{i}") for i in range(2)]
    row = next(r for r in rows if None not in r.values())
    answers: list[list[tuple[int, int | None]]] = [[] for _ in range(4)]  # per client
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=replicas[i % 2].url, timeout=20) as c:
            while not stop.is_set():
                r = c.post("/models/churn/predict", json=row)
                answers[i].append((r.status_code, r.json().get("version")))

    try:
        for r in replicas:
            r.wait_ready()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        reg.promote("churn/2", "production", reason="scale-out test")
        deadline = time.time() + 30  # each replica checks the registry every 2 s
        while not all(a and a[-1] == (200, 2) for a in answers):
            assert time.time() < deadline, "a replica did not follow the alias"
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        for r in replicas:
            r.stop()
    for i, seen in enumerate(answers):
        assert {status for status, _ in seen} == {200}, f"client {i}: a request failed"
        versions = [v for _, v in seen]
        first_new = versions.index(2)
        # Each client saw version 1, then version 2 only: the switch is one step.
        assert set(versions[:first_new]) == {1} and set(versions[first_new:]) == {2}, i


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_worker_process_is_ready_before_it_accepts_a_connection(
        backend, request, tmp_path, strict_churn_artifact, rows):
    # `--workers N` processes share one listening socket, and `/v2/health/ready` is answered
    # by whichever accepts: once any answers ready, none may still answer 503. The workers
    # also open one registry at the same moment (a fresh SQLite file has races of its own).
    url = request.getfixturevalue("pg_url") if backend == "postgresql" \
        else f"sqlite:///{tmp_path / 'registry.db'}"
    artifacts = str(tmp_path / "artifacts")
    reg = scorehouse.Registry(url, artifacts)
    reg.register(strict_churn_artifact)
    reg.promote("churn/1", "production")
    reg.close()
    server = Replica(url, artifacts, tmp_path / "home", "--workers", "3")
    row = next(r for r in rows if None not in r.values())
    try:
        server.wait_ready()

        def fresh_connection(_: int) -> int:  # each request may reach another worker
            return httpx.post(f"{server.url}/models/churn/predict", json=row,
                              timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(fresh_connection, range(48)))
    finally:
        err = server.stop()
    assert Counter(statuses) == {200: 48}, err
