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
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import NotFoundError, ScorehouseError
from ..loading import load
from ..registry.refs import ModelRef, RefKind
from ..scorer import Scorer, ScorerCache

if TYPE_CHECKING:  # SQLAlchemy and Alembic load only when a reference needs the registry
    from ..registry import Registry

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


def watcher(every: float, stop: threading.Event, check: Callable[[], object], name: str,
            failed: str) -> threading.Thread:
    """A started daemon thread `scorehouse-<name>` calling `check()` every `every` seconds
    until `stop` is set; a check that raises is logged (`failed`) and tried again next time.
    (The alias watcher of the served models, and the deployments' watcher.)"""
    def loop() -> None:
        while not stop.wait(every):
            try:
                check()
            except Exception:
                log.exception(failed)

    thread = threading.Thread(target=loop, name=f"scorehouse-{name}", daemon=True)
    thread.start()
    return thread


class Served:
    """One model name as served: what was asked for and the scorer in use now.

    A view of the ModelSet's caches: `scorer` is the current scorer of `ref`, `pinned`
    the versions of this model that request paths pinned (at most the ModelSet's
    `pinned_cache` over all models).
    """

    def __init__(self, name: str, ref: str, current: ScorerCache[str],
                 pins: ScorerCache[tuple[str, int]]):
        self.name, self.ref = name, ref
        self.model_ref = ModelRef.parse(ref)  # its kind, decided once
        self._current, self._pins = current, pins

    def __repr__(self) -> str:
        return f"<Served {self.name} ref={self.ref} version={self.version}>"

    @property
    def scorer(self) -> Scorer:
        """The scorer in use now (swapped in one step when the alias moves)."""
        scorer = self._current.peek(self.ref)
        assert scorer is not None, "a Served exists only once its reference is loaded"
        return scorer

    @property
    def pinned(self) -> dict[int, Scorer]:
        """Versions pinned by request paths and still cached, by number."""
        return {version: entry.scorer for (name, version), entry in self._pins.snapshot().items()
                if name == self.name}

    @property
    def version(self) -> int:
        """The version in use, as every route reports and accepts it (`Scorer.public_version`)."""
        return self.scorer.public_version


class ModelSet:
    """Models by name; `get(name, version)` never blocks on a load of the current version.

    The scorers live in two `ScorerCache`s: the current scorer of each reference given
    (swapped by `refresh`), and an LRU of pinned versions keyed by (name, version).
    """

    def __init__(self, refs: list[str], registry: Registry | None = None, *,
                 runtime: str | None = None, trust: bool = False,
                 accept_parity_difference: bool = False,
                 on_swap: Callable[[str, int | None, int | None], None] | None = None,
                 pinned_cache: int | None = None):
        self.refs = refs
        self.pinned_cache = pinned_cache_size(pinned_cache)
        self.registry = registry
        self.runtime, self.trust = runtime, trust
        self.accept_parity_difference = accept_parity_difference
        self.on_swap = on_swap
        self.models: dict[str, Served] = {}
        self.ready = threading.Event()
        self._current: ScorerCache[str] = ScorerCache(self._load)
        self._pins: ScorerCache[tuple[str, int]] = ScorerCache(
            self._load_pinned, max_size=self.pinned_cache or None, on_evict=self._dropped)
        self._stop = threading.Event()
        self._refreshing = threading.Lock()  # one refresh at a time; readers never take it
        self._watcher: threading.Thread | None = None

    def _registry(self) -> Registry:
        if self.registry is None:
            from ..registry import Registry

            self.registry = Registry()
        return self.registry

    def _load(self, ref: str) -> Scorer:
        if ModelRef.parse(ref).is_path:
            return load(ref, runtime=self.runtime, trust=self.trust,
                        accept_parity_difference=self.accept_parity_difference)
        return self._from_registry(ref)

    def _load_pinned(self, key: tuple[str, int]) -> Scorer:
        # A pinned version, unless it was archived (withdrawn).
        name, version = key
        ref = f"{name}/{version}"
        if self._registry().resolve(ref).status == "archived":
            raise NotFoundError(f"{ref} is archived (withdrawn) and is not served; "
                                f"{name} serves version {self.models[name].version}")
        return self._from_registry(ref)

    def _dropped(self, key: tuple[str, int], scorer: Scorer) -> None:
        log.info("dropped pinned %s/%s from the cache (%d kept)", *key, self.pinned_cache)

    def _from_registry(self, ref: str) -> Scorer:
        """`ref` loaded from the registry with this set's runtime options."""
        return self._registry().load(ref, runtime=self.runtime,
                                     accept_parity_difference=self.accept_parity_difference)

    def load_all(self) -> None:
        """Load (and prepare) every model; readiness turns true when all are loaded.

        Raises:
            ScorehouseError: a model name given twice; NotFoundError, ArtifactError,
                ParityError... from loading a reference.
        """
        for ref in self.refs:
            scorer = self._current.get(ref)
            if scorer.name in self.models:
                raise ScorehouseError(f"model {scorer.name!r} is given twice ({ref}); "
                                      "serve one reference per model name")
            self.models[scorer.name] = Served(scorer.name, ref, self._current, self._pins)
            log.info("loaded %s as %s/%s", ref, scorer.name, scorer.public_version)
        self.ready.set()

    def get(self, name: str, version: int | None = None) -> Scorer:
        """The scorer for `name` (its current version, or the pinned `version`).

        A model from a file has one version, `Scorer.public_version` (what V2 metadata
        advertises); a registry model has its registry numbers.

        Raises:
            NotFoundError: a model not served here, a version that does not exist, is
                archived, or cannot be pinned (a file, or pinning turned off).
        """
        served = self.models.get(name)
        if served is None:
            raise NotFoundError(f"model {name!r} is not served here; served: "
                                f"{', '.join(sorted(self.models)) or 'none'}")
        current = served.scorer
        if version is None or version == current.public_version:
            return current
        if served.model_ref.is_path:
            raise NotFoundError(f"model {name!r} is served from a file and has one "
                                f"version, {current.public_version}; version {version} "
                                "does not exist")
        if self.pinned_cache == 0:
            raise NotFoundError(f"pinned versions are turned off on this server (pinned cache "
                                f"size 0); {name} serves version {served.version}")
        # Loaded on first use (that request waits for it); later ones find it at once.
        return self._pins.get((name, version))

    def drop_archived(self) -> list[str]:
        """Forget pinned versions archived since they were loaded; returns their refs."""
        dropped = []
        for name, version in list(self._pins):
            ref = f"{name}/{version}"
            if self._registry().resolve(ref).status == "archived":
                self._pins.drop((name, version))
                dropped.append(ref)
                log.info("stopped serving pinned %s: it was archived", ref)
        return dropped

    def refresh(self) -> list[tuple[str, int | None, int | None]]:
        """Load and switch to every alias that moved; returns (name, old, new) per swap.

        The new version is loaded and prepared while the old one keeps serving.
        """
        swaps = []
        for served in list(self.models.values()):
            if served.model_ref.kind is not RefKind.ALIAS:
                continue  # a file or a fixed version never moves
            with self._refreshing:
                target = self._registry().resolve(served.ref)
                if target.version == served.scorer.version:
                    continue
                old, scorer = self._current.reload(served.ref)  # the switch: one assignment
            old_version = old.version if old is not None else None
            swaps.append((served.name, old_version, scorer.version))
            log.info("%s moved: now serving %s/%s (was %s)", served.ref, served.name,
                     scorer.version, old_version)
            if self.on_swap:
                self.on_swap(served.name, old_version, scorer.version)
        return swaps

    def watch(self, every: float = WATCH_EVERY) -> None:
        """Check the registry for moved aliases (and pinned versions archived since they were
        loaded) every `every` seconds, in the background."""
        if self._watcher is not None or all(s.model_ref.is_path for s in self.models.values()):
            return  # files never move, and cannot pin versions

        def check() -> None:
            self.refresh()
            self.drop_archived()

        # On failure, keep serving the loaded version; say why it did not move.
        self._watcher = watcher(every, self._stop, check, "watch",
                                "checking the registry for moved aliases failed")

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
