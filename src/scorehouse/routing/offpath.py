"""Off the response path: the shadows and canaries score a request, the decoy keeps it.

Work is fed once the answer is known. Each off-path (role, model) has a queue, and one
drain at a time per queue runs on a small pool: it lets records gather for `linger`
seconds (unless `BATCH` wait already), then scores the single records in one call, so that
a shadow pays the scorer's per-call cost (validation, the runtime's call) once per batch
rather than once per request: off the response path, nobody waits for it. A request of
several rows is scored in a call of its own. When `max_pending` records wait or run, a
role is skipped for a request and counted, so off-path work never delays an answer nor
piles up.

Each finished `OffPathResult` (a shadow's or canary's `result`, or the `error` it raised;
the decoy's `record`) goes to `on_result` and resolves the future the request got.
Logging: a single record is scored in its request's context, a batch inside
`around(role, ids)` with the batch's request ids (a channel's log hook reads them).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..scorer import Result, Scorer, ScorerCache
from .spec import Role

log = logging.getLogger("scorehouse.routing")

#: The most single records one off-path call scores at once.
BATCH = 64
#: Seconds a drain lets records gather before scoring them (fewer than BATCH waiting).
LINGER = 0.02

#: `around(role, ids)`: the context of one model call (ids: the rows' request ids, None
#: when they are the caller's).
Around = Callable[[Role, "Sequence[str] | None"], AbstractContextManager[Any]]


@dataclass(frozen=True)
class OffPathResult:
    """One off-path role's work for a request: a shadow's or canary's `result` (or the
    `error` it raised), or for the decoy the `record` as received (for a request of
    several rows: its rows, a list of records or an Arrow table)."""

    request_id: str
    role: Role
    ref: str | None
    result: Result | None = None
    error: str = ""
    record: Any = None
    latency_ms: float = 0.0


@dataclass
class _Item:
    data: Any
    rid: str
    context: contextvars.Context
    scorer: Scorer | None  # taken when the request was answered (None: not loaded then)
    future: Future[OffPathResult] = field(default_factory=Future)


def model_failure(result: Result) -> str | None:
    """The reason a call failed as a model (no row scored, a "model error" reject), else None."""
    if result.n_scored == 0 and result.rejects:
        broken = [r.reason for r in result.rejects if r.reason.startswith("model error")]
        if broken:
            return broken[0]
    return None


class OffPath:
    """The off-path pool of one `Rendezvous` (see the module docstring)."""

    def __init__(self, scorers: ScorerCache[str], *, workers: int = 2, max_pending: int = 64,
                 on_result: Callable[[OffPathResult], None] | None = None,
                 around: Around | None = None, linger: float = LINGER,
                 known: Callable[[], Collection[str]] | None = None):
        self.scorers, self.on_result, self.around = scorers, on_result, around
        self.linger, self.known = linger, known
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="scorehouse-offpath")
        self._room = threading.BoundedSemaphore(max_pending)
        self._queues: dict[tuple[Role, str | None], deque[_Item]] = {}
        self._draining: set[tuple[Role, str | None]] = set()
        self._lock = threading.Lock()
        self.skipped: Counter[Role] = Counter()

    def submit(self, role: Role, ref: str | None, data: Any, rid: str,
               scorer: Scorer | None = None) -> Future[OffPathResult] | None:
        """Queue `data` (request `rid`) for `role`'s model `ref` (None: the decoy), to be
        scored by `scorer` (the one loaded when the request was answered: a model that a
        spec change drops meanwhile is not loaded back; None: `ref` from the cache, unless
        it is no longer `known`); None when it was skipped (the pool is full, or shut down)."""
        if not self._room.acquire(blocking=False):
            with self._lock:
                self.skipped[role] += 1
            return None
        item, key = _Item(data, rid, contextvars.copy_context(), scorer), (role, ref)
        with self._lock:
            self._queues.setdefault(key, deque()).append(item)
            start = key not in self._draining
            self._draining.add(key)
        if start:
            try:
                self._pool.submit(self._drain, role, ref)
            except RuntimeError:  # shut down: nothing will drain this queue
                with self._lock:
                    self._draining.discard(key)
                    self._queues[key].remove(item)
                self._room.release()
                return None
        return item.future

    def close(self, wait: bool = True) -> None:
        """Stop the pool (with `wait`, after the calls running now)."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _drain(self, role: Role, ref: str | None) -> None:
        key = (role, ref)
        lingered = False
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    self._draining.discard(key)
                    return
                wait = not lingered and self.linger > 0 and len(queue) < BATCH
                items = [] if wait else [queue.popleft() for _ in range(min(len(queue), BATCH))]
            if wait:  # let more records gather: one call for them all
                time.sleep(self.linger)
                lingered = True
                continue
            lingered = False
            try:
                self._run(role, ref, items)
            except Exception:  # never leave the queue without its drain
                log.exception("off-path %s %s failed", role.value, ref)
            finally:
                for _ in items:
                    self._room.release()

    def _run(self, role: Role, ref: str | None, items: list[_Item]) -> None:
        start = time.perf_counter()
        if ref is None:  # the decoy: the input as received
            for item in items:
                self._done(item, OffPathResult(item.rid, role, None, record=item.data), start)
            return
        batches: dict[int, list[_Item]] = {}  # single records, by the scorer they take
        for item in items:
            if isinstance(item.data, Mapping):
                batches.setdefault(id(item.scorer), []).append(item)
        for item in items:  # a request of several rows, or a lone record: in its context
            if not isinstance(item.data, Mapping) or len(batches[id(item.scorer)]) < 2:
                self._done(item, item.context.run(self._one, role, ref, item), start)
        for batch in batches.values():
            if len(batch) >= 2:
                for item, out in zip(batch, self._batch(role, ref, batch), strict=True):
                    self._done(item, out, start)

    def _call(self, ref: str, scorer: Scorer | None, data: Any, role: Role,
              ids: Sequence[str] | None) -> Result:
        if scorer is None:
            if self.known is not None and ref not in self.known():
                raise LookupError(f"{ref} left the deployment before its call ran")
            scorer = self.scorers.get(ref)
        with self.around(role, ids) if self.around else contextlib.nullcontext():
            return scorer.predict(data)

    def _one(self, role: Role, ref: str, item: _Item) -> OffPathResult:
        try:
            result = self._call(ref, item.scorer, item.data, role, None)
        except Exception as e:  # an off-path model's failure is only reported
            return OffPathResult(item.rid, role, ref, error=f"{type(e).__name__}: {e}")
        failed = model_failure(result)
        return OffPathResult(item.rid, role, ref, result=None if failed else result,
                             error=f"{ref} failed: {failed}" if failed else "")

    def _batch(self, role: Role, ref: str, items: list[_Item]) -> list[OffPathResult]:
        try:
            result = self._call(ref, items[0].scorer, [i.data for i in items], role,
                                [i.rid for i in items])
        except Exception as e:
            return [OffPathResult(i.rid, role, ref, error=f"{type(e).__name__}: {e}")
                    for i in items]
        out = []
        for n, item in enumerate(items):
            one = result.pick(n)
            failed = model_failure(one)
            out.append(OffPathResult(item.rid, role, ref, result=None if failed else one,
                                     error=f"{ref} failed: {failed}" if failed else ""))
        return out

    def _done(self, item: _Item, out: OffPathResult, start: float) -> None:
        out = OffPathResult(out.request_id, out.role, out.ref, out.result, out.error,
                            out.record, (time.perf_counter() - start) * 1000)
        if self.on_result is not None:
            try:
                self.on_result(out)
            except Exception:  # a sink's failure must not end the pool's thread
                log.exception("on_off_path failed for request %s", item.rid)
        item.future.set_result(out)


__all__ = ["BATCH", "LINGER", "OffPath", "OffPathResult", "model_failure"]
