"""A stored deployment followed by a running channel: changes in the registry take effect
between two batches, with nothing in flight.

    following = follow("churn-api", registry)    # every model loaded and prepared
    while running:
        following.poll()                        # cheap unless `every` seconds passed
        score_table(following.rz, table, ids)   # the spec in force for the whole batch

`poll` asks the registry for the deployment's revision every `every` seconds (as the
server's alias watcher does, `serve.models.WATCH_EVERY`); a new revision's spec is put in
force with `Rendezvous.use` (its new models loaded first, the old spec answering until
then), and models whose alias moved are reloaded (`Rendezvous.refresh`). A caller that
polls between batches never scores one batch with two specs, and no event is dropped or
scored twice by a change. When the registry cannot be read or a new model cannot be
loaded, the spec in force stays and the next poll tries again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .registered import current_sha256, read, scorer_cache
from .rendezvous import Rendezvous

if TYPE_CHECKING:
    from ..registry import Registry

log = logging.getLogger("scorehouse.routing")

#: Seconds between two looks at the registry (the server's alias watcher's interval).
FOLLOW_EVERY = 2.0


class Following:
    """`rz` kept at deployment `name`'s stored spec (see the module docstring).

    `revision`: the revision in force; `changes`: how many times `poll` switched spec.
    """

    def __init__(self, rz: Rendezvous, registry: Registry, name: str, revision: int, *,
                 every: float = FOLLOW_EVERY) -> None:
        self.rz, self.registry, self.name = rz, registry, name
        self.revision, self.every, self.changes = revision, every, 0
        self._next = time.monotonic() + every

    def poll(self, *, force: bool = False) -> bool:
        """Look at the registry if `every` seconds passed (or `force`); True when the spec
        or a model changed. Never raises: a failure is logged, the spec in force stays."""
        now = time.monotonic()
        if not force and now < self._next:
            return False
        self._next = now + self.every
        try:
            stored, spec = read(self.registry, self.name)
            changed = stored.revision != self.revision
            if changed:
                self.rz.use(spec)  # loads the new models first; raises: the old spec stays
                log.info("deployment %s: revision %d in force (was %d)", self.name,
                         stored.revision, self.revision)
                self.revision = stored.revision
                self.changes += 1
            moved = self.rz.refresh(current_sha256(self.registry))
            if moved:
                log.info("deployment %s: reloaded %s (alias moved)", self.name,
                         ", ".join(moved))
            return changed or bool(moved)
        except Exception:  # keep scoring with the spec in force; say why it did not move
            log.exception("deployment %s: following the registry failed; keeping revision %d",
                          self.name, self.revision)
            return False

    def close(self) -> None:
        """Stop the rendezvous's pools."""
        self.rz.close(wait=False)


def follow(name: str, registry: Registry, *, every: float = FOLLOW_EVERY,
           runtime: str | None = None, **options: Any) -> Following:
    """Deployment `name` as stored now, every model loaded and prepared, followed.

    Args:
        runtime: the runtime every model scores with (None: each artifact's best).
        options: passed to `Rendezvous` (pools, `on_off_path`).

    Raises:
        NotFoundError: no such deployment, or a model it names.
    """
    stored, spec = read(registry, name)
    cache = scorer_cache(registry, runtime=runtime)
    for ref in spec.refs():
        cache.get(ref)
    rz = Rendezvous(spec, cache, **options)
    return Following(rz, registry, name, stored.revision, every=every)


__all__ = ["FOLLOW_EVERY", "Following", "follow"]
