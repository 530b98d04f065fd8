"""The models a server holds: loaded once, swapped atomically when their alias moves.

A reference like `churn@production` is watched: a background thread asks the registry which
version the alias names, loads a new version off the request path, then replaces the
served scorer in one assignment. Requests already running keep the scorer they started with;
no request waits for a load.

A version pinned by a request path (`/models/churn/versions/3/predict`) is loaded on first
use and kept in a least-recently-used cache of `pinned_cache` versions per server
(default 4, `$SCOREHOUSE_PINNED_CACHE`; a forest model takes tens of MB). Archived versions
are never served this way: they were withdrawn.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import NotFoundError, ScorehouseError
from ..loading import is_path, load
from ..registry import Registry, parse
from ..scorer import Scorer

log = logging.getLogger("scorehouse.serve")

#: Seconds between registry checks for moved aliases.
WATCH_EVERY = 2.0
#: Pinned versions kept loaded at once by default (least recently used dropped first).
PINNED_CACHE = 4


def pinned_cache_size(given: int | None = None) -> int:
    """`given`, else $SCOREHOUSE_PINNED_CACHE, else PINNED_CACHE; 0 turns pinning off."""
    raw = given if given is not None else os.environ.get("SCOREHOUSE_PINNED_CACHE")
    try:
        n = int(raw) if raw not in (None, "") else PINNED_CACHE
    except ValueError:
        raise ScorehouseError(f"$SCOREHOUSE_PINNED_CACHE must be a whole number, got {raw!r}"
                              ) from None
    if n < 0:
        raise ScorehouseError(f"the pinned-version cache size must be 0 or more, got {n}")
    return n


@dataclass
class Served:
    """One model name as served: what was asked for and the scorer in use now."""

    name: str
    ref: str
    scorer: Scorer
    #: Versions pinned by request paths (at most the ModelSet's `pinned_cache` in all).
    pinned: dict[int, Scorer] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The version in use, as every route reports and accepts it (`Scorer.public_version`)."""
        return self.scorer.public_version


class ModelSet:
    """Models by name; `get(name, version)` never blocks on a load of the current version."""

    def __init__(self, refs: list[str], registry: Registry | None = None, *,
                 runtime: str | None = None, trust: bool = False,
                 accept_parity_difference: bool = False,
                 on_swap: Callable[[str, int | None, int | None], None] | None = None,
                 pinned_cache: int | None = None):
        self.refs = refs
        self.pinned_cache = pinned_cache_size(pinned_cache)
        self._recent: OrderedDict[tuple[str, int], None] = OrderedDict()  # LRU order of pins
        self.registry = registry
        self.runtime, self.trust = runtime, trust
        self.accept_parity_difference = accept_parity_difference
        self.on_swap = on_swap
        self.models: dict[str, Served] = {}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one loader at a time; readers never take it
        self._watcher: threading.Thread | None = None

    def _registry(self) -> Registry:
        if self.registry is None:
            self.registry = Registry()
        return self.registry

    def _load(self, ref: str) -> Scorer:
        if is_path(ref):
            scorer = load(ref, runtime=self.runtime, trust=self.trust,
                          accept_parity_difference=self.accept_parity_difference)
        else:
            scorer = self._registry().load(ref, **self._choice())
        scorer.runtime.prepare()  # before it takes requests: no first-batch compile
        return scorer

    def _choice(self) -> dict[str, object]:
        """The runtime options every registry load of this set takes."""
        return {"runtime": self.runtime, "accept_parity_difference": self.accept_parity_difference}

    def load_all(self) -> None:
        """Load every model; readiness turns true when all are loaded."""
        for ref in self.refs:
            scorer = self._load(ref)
            if scorer.name in self.models:
                raise ScorehouseError(f"model {scorer.name!r} is given twice ({ref}); "
                                      "serve one reference per model name")
            self.models[scorer.name] = Served(scorer.name, ref, scorer)
            log.info("loaded %s as %s/%s", ref, scorer.name, scorer.public_version)
        self.ready.set()

    def get(self, name: str, version: int | None = None) -> Scorer:
        """The scorer for `name` (its current version, or the pinned `version`).

        A model from a file has one version, `Scorer.public_version` (what V2 metadata
        advertises); a registry model has its registry numbers. Others: NotFoundError.
        """
        served = self.models.get(name)
        if served is None:
            raise NotFoundError(f"model {name!r} is not served here; served: "
                                f"{', '.join(sorted(self.models)) or 'none'}")
        current = served.scorer
        if version is None or version == current.public_version:
            return current
        pinned = served.pinned.get(version)
        if pinned is None:
            if is_path(served.ref):
                raise NotFoundError(f"model {name!r} is served from a file and has one "
                                    f"version, {current.public_version}; version {version} "
                                    "does not exist")
            pinned = self._pin(served, version)
        else:
            with self._lock:  # most recently used last
                if (name, version) in self._recent:
                    self._recent.move_to_end((name, version))
        return pinned

    def _pin(self, served: Served, version: int) -> Scorer:
        # Load a pinned version (not an archived one) and keep the `pinned_cache` most
        # recently used across all models.
        if self.pinned_cache == 0:
            raise NotFoundError(f"pinned versions are turned off on this server (pinned cache "
                                f"size 0); {served.name} serves version {served.version}")
        with self._lock:
            found = served.pinned.get(version)
            if found is not None:
                return found
            ref = f"{served.name}/{version}"
            if self._registry().resolve(ref).status == "archived":
                raise NotFoundError(f"{ref} is archived (withdrawn) and is not served; "
                                    f"{served.name} serves version {served.version}")
            scorer = self._registry().load(ref, **self._choice())
            served.pinned[version] = scorer
            self._recent[(served.name, version)] = None
            while len(self._recent) > self.pinned_cache:  # drop the least recently used
                (name, old), _ = self._recent.popitem(last=False)
                self.models[name].pinned.pop(old, None)
                log.info("dropped pinned %s/%s from the cache (%d kept)", name, old,
                         self.pinned_cache)
        return scorer

    def drop_archived(self) -> list[str]:
        """Forget pinned versions archived since they were loaded; returns their refs."""
        dropped = []
        for served in list(self.models.values()):
            for version in list(served.pinned):
                ref = f"{served.name}/{version}"
                if self._registry().resolve(ref).status == "archived":
                    with self._lock:
                        served.pinned.pop(version, None)
                        self._recent.pop((served.name, version), None)
                    dropped.append(ref)
                    log.info("stopped serving pinned %s: it was archived", ref)
        return dropped

    def refresh(self) -> list[tuple[str, int | None, int | None]]:
        """Load and switch to every alias that moved; returns (name, old, new) per swap."""
        swaps = []
        for served in list(self.models.values()):
            if is_path(served.ref) or parse(served.ref).version is not None:
                continue  # a file or a fixed version never moves
            with self._lock:
                target = self._registry().resolve(served.ref)
                if target.version == served.scorer.version:
                    continue
                scorer = self._registry().load(served.ref, **self._choice())
                old = served.scorer.version
                served.scorer = scorer  # the switch: one reference assignment
            swaps.append((served.name, old, scorer.version))
            log.info("%s moved: now serving %s/%s (was %s)", served.ref, served.name,
                     scorer.version, old)
            if self.on_swap:
                self.on_swap(served.name, old, scorer.version)
        return swaps

    def watch(self, every: float = WATCH_EVERY) -> None:
        """Check the registry for moved aliases (and pinned versions archived since they were
        loaded) every `every` seconds, in the background."""
        if self._watcher is not None or all(is_path(s.ref) for s in self.models.values()):
            return  # files never move, and cannot pin versions

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.refresh()
                    self.drop_archived()
                except Exception:  # keep serving the loaded version; say why it did not move
                    log.exception("checking the registry for moved aliases failed")

        self._watcher = threading.Thread(target=loop, name="scorehouse-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
