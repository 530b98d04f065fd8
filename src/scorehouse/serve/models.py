"""The models a server holds: loaded once, swapped atomically when their alias moves.

A reference like `churn@production` is watched: a background thread asks the registry which
version the alias names, loads a new version off the request path, then replaces the
served scorer in one assignment. Requests already running keep the scorer they started with;
no request waits for a load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import NotFoundError, ScorehouseError
from ..loading import is_path, load
from ..registry import Registry, parse
from ..scorer import Scorer

log = logging.getLogger("scorehouse.serve")

#: Seconds between registry checks for moved aliases.
WATCH_EVERY = 2.0


@dataclass
class Served:
    """One model name as served: what was asked for and the scorer in use now."""

    name: str
    ref: str
    scorer: Scorer
    pinned: dict[int, Scorer]

    @property
    def version(self) -> int:
        """The version in use, as every route reports and accepts it (`Scorer.public_version`)."""
        return self.scorer.public_version


class ModelSet:
    """Models by name; `get(name, version)` never blocks on a load of the current version."""

    def __init__(self, refs: list[str], registry: Registry | None = None, *,
                 runtime: str | None = None, trust: bool = False,
                 accept_parity_difference: bool = False,
                 on_swap: Callable[[str, int | None, int | None], None] | None = None):
        self.refs = refs
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
            self.models[scorer.name] = Served(scorer.name, ref, scorer, {})
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
            with self._lock:
                pinned = served.pinned.get(version) or self._registry().load(
                    f"{name}/{version}", **self._choice())
                served.pinned[version] = pinned
        return pinned

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
        """Check the registry for moved aliases every `every` seconds, in the background."""
        if self._watcher is not None or not any(
                not is_path(s.ref) and parse(s.ref).version is None for s in self.models.values()):
            return

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.refresh()
                except Exception:  # keep serving the loaded version; say why it did not move
                    log.exception("checking the registry for moved aliases failed")

        self._watcher = threading.Thread(target=loop, name="scorehouse-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
