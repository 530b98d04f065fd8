"""`ScorerCache`: prepared Scorers by key, each with the manifest hash it was built from.

Every channel that keeps models loaded uses this one piece: the server (a scorer per served
reference, and an LRU of versions pinned by request paths), the SQL worker and the PL/Python
functions (a scorer per installed model, reloaded when `db sync` installs another hash), and
Spark executors (a scorer per shipment and process).

How it stays safe and fast:

- Readers never take a lock that a load holds. Entries live in a dict that is never changed
  once published: a write builds a new dict and publishes it in one assignment, so a reader
  sees the old entries or the new ones, never a mix (`swap` replaces several keys at once:
  e.g. the champion and challenger of one endpoint).
- A load runs outside that write: the old scorer keeps answering until the new one is
  prepared. Two callers wanting the same key wait for one load (a lock per key); a loader
  that raises leaves the old scorer in place.
- With `max_size`, the least recently used entries are dropped once more are held.
- Each load is measured (`LoadCost` on `scorer.load_cost`: seconds, and the process's
  resident memory grown by it) for the operations team: the server exports both.

The scorer layer does not know where artifacts come from: the caller gives a loader (key ->
Scorer), e.g. a registry lookup, a row of an installed-models table or shipped bytes.
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from .scorer import Scorer

log = logging.getLogger("scorehouse.scorer.cache")

K = TypeVar("K", bound=Hashable)
#: key -> a Scorer; may raise whatever its source raises (the cache keeps the old scorer).
Loader = Callable[[K], Scorer]


@dataclass(frozen=True)
class LoadCost:
    """What loading one scorer took: wall `seconds` (read, verify, build the runtime,
    prepare it) and `memory_bytes`, the growth of the process's resident set over the load
    (0 when it did not grow; approximate when other threads allocate meanwhile)."""

    seconds: float
    memory_bytes: int


def resident_bytes() -> int:
    """The process's resident set size now, in bytes: /proc/self/statm on Linux, else the
    peak (`getrusage`'s ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass(frozen=True)
class Loaded:
    """One cached scorer and the manifest hash (hex sha256) of the artifact it was built from."""

    scorer: Scorer
    sha256: str


def _hash_of(scorer: Scorer) -> str:
    return scorer.artifact.manifest_sha256


class ScorerCache(Generic[K]):
    """Prepared Scorers by key, reloaded when the manifest hash a caller expects changes.

    Args:
        loader: builds the Scorer of a key (the default for every call; `get` and `reload`
            take another, e.g. when the key alone cannot rebuild it).
        max_size: keep at most this many scorers, dropping the least recently used first;
            None (the default) keeps every one.
        prepare: call `scorer.runtime.prepare()` after loading, so that the first call does
            not pay the one-time compile (the scorer is published only after it).
        on_evict: called with (key, scorer) for each entry dropped to respect `max_size`.

    Raises:
        ValueError: `max_size` below 1.
    """

    def __init__(self, loader: Loader[K] | None = None, *, max_size: int | None = None,
                 prepare: bool = True, on_evict: Callable[[K, Scorer], None] | None = None):
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be 1 or more (or None for no bound), got {max_size}")
        self.loader, self.max_size, self.prepare, self.on_evict = loader, max_size, prepare, on_evict
        self._entries: Mapping[K, Loaded] = MappingProxyType({})  # replaced, never changed
        self._write = threading.Lock()  # publishing a new entries dict; never held by a load
        self._locks: dict[K, threading.Lock] = {}  # one per key: one load of a key at a time
        self._clock = itertools.count()
        self._used: dict[K, int] = {}  # key -> tick of its last use, for the LRU order
        self._pending: set[K] = set()  # keys reloading in the background

    # --- reading (never blocks on a load of another key, nor on a reload of this one) ----------

    def get(self, key: K, sha256: str | None = None, *, wait: bool = True,
            loader: Loader[K] | None = None) -> Scorer:
        """The scorer of `key`, loaded if absent or built from another hash than `sha256`.

        Args:
            key: what the loader rebuilds a scorer from.
            sha256: the manifest hash the caller knows to be current; None accepts any.
            wait: with False, a cached scorer of another hash is returned as it is while a
                background thread reloads it (`reload_later`); a missing one is still loaded.
            loader: used instead of the cache's own loader for this call.

        Returns the cached scorer, or the one just loaded (whose hash is the source's at the
        time of the load: it may already be newer than `sha256`).

        Raises:
            Whatever the loader raises (the previous scorer, if any, stays cached);
            LookupError when the cache has no loader and none is given.
        """
        entry = self._entries.get(key)
        if entry is not None and (sha256 is None or entry.sha256 == sha256):
            self._used[key] = next(self._clock)
            return entry.scorer
        if entry is not None and not wait:
            self.reload_later(key, loader=loader)
            self._used[key] = next(self._clock)
            return entry.scorer
        return self._load(key, sha256, loader)

    def peek(self, key: K) -> Scorer | None:
        """The cached scorer of `key`, or None; never loads and leaves the LRU order alone."""
        entry = self._entries.get(key)
        return None if entry is None else entry.scorer

    def entry(self, key: K) -> Loaded | None:
        """The cached scorer of `key` with its hash, or None (never loads)."""
        return self._entries.get(key)

    def snapshot(self) -> Mapping[K, Loaded]:
        """Every entry as of now: a read-only view no later write changes (one consistent
        state, e.g. every scorer of an endpoint from the same `swap`)."""
        return self._entries

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    # --- loading ----------------------------------------------------------------------------

    def _lock_of(self, key: K) -> threading.Lock:
        with self._write:
            return self._locks.setdefault(key, threading.Lock())

    def _build(self, key: K, loader: Loader[K] | None) -> Scorer:
        load = loader or self.loader
        if load is None:
            raise LookupError(f"no loader for {key!r}: give the cache one, or one to this call")
        start, memory = time.perf_counter(), resident_bytes()
        scorer = load(key)
        if self.prepare:  # before it is published: no caller pays the first-batch compile
            scorer.runtime.prepare()
        scorer.load_cost = LoadCost(time.perf_counter() - start,
                                    max(resident_bytes() - memory, 0))
        return scorer

    def _load(self, key: K, sha256: str | None, loader: Loader[K] | None) -> Scorer:
        with self._lock_of(key):
            entry = self._entries.get(key)  # loaded by the caller we waited for?
            if entry is not None and (sha256 is None or entry.sha256 == sha256):
                self._used[key] = next(self._clock)
                return entry.scorer
            scorer = self._build(key, loader)
            self._publish({key: scorer})
            return scorer

    def reload(self, key: K, *, loader: Loader[K] | None = None) -> tuple[Scorer | None, Scorer]:
        """Load `key` again and switch to the new scorer; returns (old or None, new).

        Calls running on the old scorer finish on it; later ones get the new one.

        Raises:
            Whatever the loader raises (the old scorer stays cached).
        """
        with self._lock_of(key):
            old = self.peek(key)
            scorer = self._build(key, loader)
            self._publish({key: scorer})
        return old, scorer

    def reload_later(self, key: K, *, loader: Loader[K] | None = None) -> threading.Thread | None:
        """`reload(key)` on a background thread (returned; None when one already runs).

        A loader error is logged and the old scorer kept: the next stale `get` tries again.
        """
        with self._write:
            if key in self._pending:
                return None
            self._pending.add(key)

        def run() -> None:
            try:
                self.reload(key, loader=loader)
            except Exception:
                log.exception("reloading %r failed; the loaded scorer stays in use", key)
            finally:
                with self._write:
                    self._pending.discard(key)

        thread = threading.Thread(target=run, name=f"scorehouse-reload-{key!r}", daemon=True)
        thread.start()
        return thread

    # --- writing ----------------------------------------------------------------------------

    def put(self, key: K, scorer: Scorer) -> Scorer | None:
        """Cache `scorer` (used as given: prepare it first) under `key`; returns the old one."""
        return self.swap({key: scorer}).get(key)

    def drop(self, key: K) -> Scorer | None:
        """Forget `key`; returns the scorer it held, or None."""
        return self.swap({key: None}).get(key)

    def swap(self, changes: Mapping[K, Scorer | None]) -> dict[K, Scorer]:
        """Set (or, for None, drop) several keys in one step: no reader sees some changed and
        others not. Returns the scorers replaced or dropped, by key."""
        return self._publish(changes)

    def _publish(self, changes: Mapping[K, Scorer | None]) -> dict[K, Scorer]:
        evicted: list[tuple[K, Scorer]] = []
        with self._write:
            entries = dict(self._entries)
            old = {k: entries[k].scorer for k in changes if k in entries}
            for key, scorer in changes.items():
                if scorer is None:
                    entries.pop(key, None)
                    self._used.pop(key, None)
                else:
                    entries[key] = Loaded(scorer, _hash_of(scorer))
                    self._used[key] = next(self._clock)
            if self.max_size is not None:
                evicted = self._evict(entries, keep=changes.keys())
            self._entries = MappingProxyType(entries)  # the switch: one assignment
        for key, scorer in evicted:  # outside the lock: the callback may log, or call us
            if self.on_evict is not None:
                self.on_evict(key, scorer)
        return old

    def _evict(self, entries: dict[K, Loaded], keep: Collection[K]) -> list[tuple[K, Scorer]]:
        # Readers stamp `_used` without a lock: read it from a copy (one C-level step).
        used = dict(self._used)
        evicted = []
        while len(entries) > (self.max_size or 0):
            candidates = [k for k in entries if k not in keep] or list(entries)
            oldest = min(candidates, key=lambda k: used.get(k, -1))
            evicted.append((oldest, entries.pop(oldest).scorer))
            self._used.pop(oldest, None)
        return evicted


__all__ = ["LoadCost", "Loaded", "Loader", "ScorerCache", "resident_bytes"]
