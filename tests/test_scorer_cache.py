"""`ScorerCache`, driven directly: hits, reloads on a new hash, the LRU bound, loader errors,
background reloads, and readers during swaps (never blocked by a load, never a half state).

The cached objects stand in for Scorers: the cache reads only `artifact.manifest_sha256` and
calls `runtime.prepare()`. One test caches a real Scorer end to end.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

import scorehouse
from scorehouse.scorer import ScorerCache


class FakeRuntime:
    def __init__(self) -> None:
        self.prepared = 0

    def prepare(self) -> None:
        self.prepared += 1


def fake(sha: str, tag: object = None) -> SimpleNamespace:
    """A stand-in Scorer built from the artifact of manifest hash `sha`."""
    return SimpleNamespace(artifact=SimpleNamespace(manifest_sha256=sha), runtime=FakeRuntime(),
                           tag=tag)


class Source:
    """A loader over a dict key -> current hash, counting its loads."""

    def __init__(self, **hashes: str) -> None:
        self.hashes = dict(hashes)
        self.loads: list[str] = []
        self.fail: Exception | None = None
        self.delay = 0.0

    def __call__(self, key: str) -> SimpleNamespace:
        self.loads.append(key)
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return fake(self.hashes[key], key)


def test_a_hit_loads_once_and_prepares_once():
    source = Source(a="h1")
    cache = ScorerCache(source)
    first = cache.get("a")
    assert cache.get("a") is first and cache.get("a", "h1") is first
    assert source.loads == ["a"] and first.runtime.prepared == 1
    assert cache.entry("a").sha256 == "h1" and "a" in cache and len(cache) == 1
    assert cache.peek("b") is None and source.loads == ["a"]  # peek never loads


def test_a_changed_hash_reloads_and_the_new_scorer_is_kept():
    source = Source(a="h1")
    cache = ScorerCache(source)
    old = cache.get("a", "h1")
    source.hashes["a"] = "h2"
    new = cache.get("a", "h2")
    assert new is not old and new.artifact.manifest_sha256 == "h2"
    assert cache.get("a", "h2") is new and source.loads == ["a", "a"]


def test_without_prepare_the_scorer_is_left_as_loaded():
    cache = ScorerCache(Source(a="h1"), prepare=False)
    assert cache.get("a").runtime.prepared == 0


def test_the_lru_bound_drops_the_least_recently_used():
    source = Source(a="1", b="2", c="3", d="4")
    dropped = []
    cache = ScorerCache(source, max_size=2, on_evict=lambda k, s: dropped.append((k, s.tag)))
    cache.get("a")
    cache.get("b")
    cache.get("a")  # a is now more recently used than b
    cache.get("c")
    assert set(cache) == {"a", "c"} and dropped == [("b", "b")]
    cache.get("d")
    assert set(cache) == {"c", "d"} and dropped[-1] == ("a", "a")
    cache.put("e", fake("5"))  # a put counts as a use, and is never the one dropped
    assert set(cache) == {"d", "e"}
    with pytest.raises(ValueError, match="max_size"):
        ScorerCache(source, max_size=0)


def test_a_loader_error_keeps_the_old_scorer():
    source = Source(a="h1")
    cache = ScorerCache(source)
    old = cache.get("a", "h1")
    source.hashes["a"], source.fail = "h2", RuntimeError("artifact store down")
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("a", "h2")
    with pytest.raises(RuntimeError, match="store down"):
        cache.reload("a")
    assert cache.get("a") is old and cache.entry("a").sha256 == "h1"
    with pytest.raises(RuntimeError):  # nothing cached yet: the error is the caller's
        cache.get("b")
    assert "b" not in cache
    source.fail = None
    assert cache.get("a", "h2").artifact.manifest_sha256 == "h2"


def test_a_failed_background_reload_is_logged_and_the_old_scorer_kept(caplog):
    source = Source(a="h1")
    cache = ScorerCache(source)
    old = cache.get("a")
    source.hashes["a"], source.fail = "h2", RuntimeError("bad bytes")
    assert cache.get("a", "h2", wait=False) is old  # the stale one, at once
    for thread in threading.enumerate():
        if thread.name.startswith("scorehouse-reload"):
            thread.join(5)
    assert cache.peek("a") is old and "reloading 'a' failed" in caplog.text


def test_a_stale_get_without_waiting_answers_at_once_and_reloads_in_the_background():
    source = Source(a="h1")
    cache = ScorerCache(source)
    old = cache.get("a")
    source.hashes["a"], source.delay = "h2", 0.5
    started = time.perf_counter()
    assert cache.get("a", "h2", wait=False) is old
    assert cache.get("a", "h2", wait=False) is old  # one reload runs, not two
    assert time.perf_counter() - started < 0.25
    thread = cache.reload_later("a")
    assert thread is None  # already running
    deadline = time.time() + 5
    while cache.entry("a").sha256 != "h2":
        assert time.time() < deadline
        time.sleep(0.01)
    assert source.loads == ["a", "a"]


def test_callers_of_one_missing_key_share_one_load():
    source = Source(a="h1")
    source.delay = 0.3
    cache = ScorerCache(source)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert source.loads == ["a"] and len({id(s) for s in got}) == 1


def test_readers_never_wait_for_a_reload_of_the_key_they_read():
    source = Source(a="h1", b="h1")
    cache = ScorerCache(source)
    old = cache.get("a")
    cache.get("b")
    source.hashes["a"], source.delay = "h2", 1.0
    reloading = threading.Thread(target=cache.reload, args=("a",))
    reloading.start()
    time.sleep(0.1)  # the reload is now inside the loader
    started = time.perf_counter()
    for _ in range(1000):
        assert cache.get("a") is old
        cache.get("b")
    assert time.perf_counter() - started < 0.5
    reloading.join()
    assert cache.get("a").artifact.manifest_sha256 == "h2"


def test_readers_during_swaps_never_see_half_an_endpoint():
    # The deployments' shape: several scorers per endpoint (champion, challenger, shadow),
    # replaced together. A reader takes one snapshot and must find them all from one swap.
    cache: ScorerCache[tuple[str, str]] = ScorerCache()
    roles = ("champion", "challenger", "shadow")
    cache.swap({("churn", r): fake("g0", 0) for r in roles})
    stop, mixed, reads = threading.Event(), [], [0]

    def reader() -> None:
        while not stop.is_set():
            view = cache.snapshot()
            generations = {view[("churn", r)].scorer.tag for r in roles}
            if len(generations) != 1:
                mixed.append(generations)
            reads[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for generation in range(1, 2000):
        replaced = cache.swap({("churn", r): fake(f"g{generation}", generation) for r in roles})
        assert {s.tag for s in replaced.values()} == {generation - 1}
    stop.set()
    for t in threads:
        t.join()
    assert mixed == [] and reads[0] > 0
    assert cache.drop(("churn", "shadow")).tag == 1999 and ("churn", "shadow") not in cache


def test_a_call_can_bring_its_own_loader():
    cache: ScorerCache[str] = ScorerCache()
    with pytest.raises(LookupError, match="no loader"):
        cache.get("a")
    scorer = cache.get("a", loader=lambda key: fake("h", key))
    assert scorer.tag == "a" and cache.get("a") is scorer


def test_a_real_scorer_is_cached_with_its_manifest_hash(churn_artifact):
    loads = []

    def loader(path: str):
        loads.append(path)
        return scorehouse.load(path, trust=True)

    cache = ScorerCache(loader)
    scorer = cache.get(str(churn_artifact))
    sha = scorer.artifact.manifest_sha256
    assert cache.entry(str(churn_artifact)).sha256 == sha and len(sha) == 64
    assert cache.get(str(churn_artifact), sha) is scorer and loads == [str(churn_artifact)]


def test_each_load_is_measured_in_time_and_memory():
    """`scorer.load_cost`: the load's seconds and the resident memory it added (a loader
    that holds 64 MB of touched pages shows at least most of them)."""
    held: list[bytearray] = []

    def heavy(key: str) -> SimpleNamespace:
        time.sleep(0.05)
        held.append(bytearray(64 << 20))  # zero-filled: every page touched
        return fake("h1", key)

    cache = ScorerCache(heavy)
    cost = cache.get("a").load_cost
    assert cost.seconds >= 0.05 and cost.memory_bytes >= 48 << 20
    _, again = cache.reload("a")
    assert again.load_cost is not cost and again.load_cost.seconds >= 0.05
