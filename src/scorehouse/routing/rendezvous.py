"""`Rendezvous`: score one request the way a `DeploymentSpec` says, and say who answered.

For each request the `Router` gives the answering chain (the chosen model, its fallbacks,
the default) and the off-path roles. The chosen model runs with the spec's deadline; when
it raises, rejects the row as a model error, or misses the deadline, the next step of the
chain runs, down to the default (a constant or a rule, which cannot time out). The result
is an `Answer`: which model (reference, name, version) in which role answered, whether a
fallback did and why.

Off the response path, the shadows and canaries score the same record and the decoy keeps
it as received, on a bounded pool that is only fed once the answer is known
(`routing.offpath`: micro-batched per role under load): when `max_pending` records wait
already, the role is skipped for that request and counted (`stats()`), so off-path work
never delays an answer nor piles up. Their `OffPathResult`s go to `on_off_path` (e.g. the
prediction log, under the request's id) and are returned as futures.

Both `decide_and_score` (threads: the stream worker, batch) and `decide_and_score_async`
(the asyncio server) run the same decision and bookkeeping; only the waiting differs. A
model call that misses its deadline cannot be stopped: it finishes in its pool thread and
its result is dropped. Each model has its own answering pool (`workers` threads): a model
that hangs holds its own threads, never the ones its fallback needs, and its calls that
could not even start before their deadline are cancelled. On an event loop, a fallback is
hedged: started a little before the deadline of the model before it (as long before as
it takes), so that its answer is ready when that deadline passes; a hedge not needed is
dropped (one that started finishes, and its row is logged with its role).

A request of several rows is one decision (made on one `record`, e.g. its first row):
the models score all its `rows` in one call, the default answers each row, and each
off-path role gets all of them once.

Logging each role's call: model calls in a pool run in a copy of the caller's context
(so context variables it set, e.g. the rows' log ids, reach the scorer's hooks), inside
`around(role, ids)` when given (e.g. a context naming the role for the prediction log;
`ids`: the request ids of an off-path batch, else None: the caller's).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError
from ..scorer import Result, ScorerCache
from .offpath import Around, OffPath, OffPathResult, model_failure
from .router import Decision, Router, Step
from .spec import DeploymentSpec, Role

log = logging.getLogger("scorehouse.routing")


@dataclass(frozen=True)
class Answer:
    """Who answered one request, and with what.

    `result`: the model's `Result` (None when the default answered, then `value` holds
    the default's value). `fallback`: True when the chosen model did not answer (a
    fallback or the default did); `reason` says why, one clause per step that failed
    ("churn@production missed the 50 ms deadline"). `latency_ms`: from the decision to
    the answer.
    """

    request_id: str
    role: Role
    ref: str | None
    model: str | None
    version: int | None
    fallback: bool
    reason: str
    result: Result | None = None
    value: Any = None
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The "who answered" part (what a response header or field carries)."""
        return {"request_id": self.request_id, "role": self.role.value, "ref": self.ref,
                "model": self.model, "version": self.version, "fallback": self.fallback,
                "reason": self.reason}


@dataclass
class Routed:
    """The answer to one request, the decision behind it, and the off-path work started
    (`skipped`: the off-path roles dropped because their pool was full)."""

    answer: Answer
    decision: Decision
    off_path: list[Future[OffPathResult]] = field(default_factory=list)
    skipped: list[Role] = field(default_factory=list)


class StepFailed(Exception):
    """An answering step that did not answer; `reason` says why, for `Answer.reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Rendezvous:
    """Scores requests for one deployment over a `ScorerCache` keyed by model reference.

    Args:
        spec: the deployment.
        scorers: reference text -> prepared Scorer (its loader loads a missing one); a
            watcher may `reload` a key when an alias moves, and `use` swaps the spec.
        workers: threads per model running its deadline-bound calls (each model its own).
        off_path_workers, max_pending: threads for off-path work, and how many off-path
            calls may wait or run before new ones are skipped.
        on_off_path: called (in a pool thread) with each finished `OffPathResult`.
        around: `around(role, ids)` is entered around every model call, in the thread
            running it (None: nothing; see the module docstring).
    """

    def __init__(self, spec: DeploymentSpec, scorers: ScorerCache[str], *, workers: int = 8,
                 off_path_workers: int = 2, max_pending: int = 64,
                 on_off_path: Callable[[OffPathResult], None] | None = None,
                 around: Around | None = None):
        self.scorers = scorers
        self.router = Router(spec)
        self.around = around
        self._workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}  # answering pools, one per model
        self._latency: dict[str, float] = {}  # ms a model's calls take (moving average)
        self._off = OffPath(scorers, workers=off_path_workers, max_pending=max_pending,
                            on_result=on_off_path, around=around,
                            known=lambda: self.router.spec.refs())
        self._fallbacks = 0
        self._lock = threading.Lock()

    @property
    def spec(self) -> DeploymentSpec:
        """The spec in force."""
        return self.router.spec

    def use(self, spec: DeploymentSpec) -> None:
        """Switch to `spec` with no failed request: its models are loaded first, then the
        new router is published in one assignment, then models it no longer uses dropped.

        Raises:
            Whatever loading a model raises (the old spec stays in force).
        """
        for ref in spec.refs():
            self.scorers.get(ref)
        old = set(self.router.spec.refs()) - set(spec.refs())
        self.router = Router(spec)
        self.scorers.swap(dict.fromkeys(old))
        # A dropped model's answering pool stays (idle) until `close`: a request that read
        # the old router a moment ago may still submit to it.

    def refresh(self, current_sha256: Callable[[str], str | None]) -> list[str]:
        """Reload every model whose reference now names another artifact (an alias moved):
        `current_sha256(ref)` gives the manifest hash the reference resolves to now (None:
        unknown, keep). Returns the references reloaded.

        Raises:
            Whatever loading raises (the loaded scorer stays in use).
        """
        moved = []
        for ref in self.router.spec.refs():
            sha, entry = current_sha256(ref), self.scorers.entry(ref)
            if sha is not None and (entry is None or entry.sha256 != sha):
                self.scorers.reload(ref)
                moved.append(ref)
        return moved

    def stats(self) -> dict[str, Any]:
        """Counters: answers given by a fallback or the default; off-path calls skipped."""
        return {"fallbacks": self._fallbacks,
                "skipped": {r.value: n for r, n in sorted(self._off.skipped.items())}}

    def close(self, wait: bool = True) -> None:
        """Stop the pools; with `wait`, after the running calls (a hung model's too) end."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=not wait)
        self._off.close(wait=wait)

    # --- answering ---------------------------------------------------------------------------

    def decide_and_score(self, record: Mapping[str, Any], request_id: str | None = None, *,
                         rows: Any = None) -> Routed:
        """Score one record (or a request's `rows`, decided on `record`): the answer
        (within the deadline per step), then the off-path work started.

        `rows`: what the models score when it is more than `record` (a list of records or
        an Arrow table: one decision for the request, see the module docstring); the
        default then answers a list of values, one per row.

        Raises:
            ModelError: every step of the chain failed and the spec has no default, or the
                default rule failed on this record.
        """
        start = time.perf_counter()
        router = self.router  # one read: a concurrent `use` does not mix two specs
        decision = router.decide(record, request_id)
        data = record if rows is None else rows
        deadline = router.spec.deadline_ms
        failures: list[str] = []
        for i, step in enumerate(decision.chain):
            if step.role is Role.DEFAULT:
                return self._default(router, decision, data, failures, start)
            try:
                result = self._wait(step, data, deadline)
            except StepFailed as e:
                failures.append(e.reason)
                continue
            return self._answered(decision, data, i, step, result, failures, start)
        raise self._nobody(router, failures)

    async def decide_and_score_async(self, record: Mapping[str, Any],
                                     request_id: str | None = None, *, rows: Any = None
                                     ) -> Routed:
        """`decide_and_score` for an event loop: model calls with a deadline wait in their
        model's pool without blocking the loop (without a deadline, they are scored
        inline, as the server's small requests are).

        Raises:
            ModelError: as `decide_and_score`.
        """
        start = time.perf_counter()
        router = self.router
        decision = router.decide(record, request_id)
        data = record if rows is None else rows
        deadline = router.spec.deadline_ms
        failures: list[str] = []
        hedges: dict[int, tuple[asyncio.Future[Result], float]] = {}
        try:
            for i, step in enumerate(decision.chain):
                if step.role is Role.DEFAULT:
                    return self._default(router, decision, data, failures, start)
                try:
                    result = await self._wait_async(decision.chain, i, data, deadline, hedges)
                except StepFailed as e:
                    failures.append(e.reason)
                    continue
                return self._answered(decision, data, i, step, result, failures, start)
            raise self._nobody(router, failures)
        finally:
            for call, _ in hedges.values():  # not needed: one not started never will
                call.cancel()

    def _score(self, ref: str, data: Any, role: Role) -> Result:
        scorer = self.scorers.get(ref)
        began = time.perf_counter()
        if self.around is None:
            result = scorer.predict(data)
        else:
            with self.around(role, None):
                result = scorer.predict(data)
        ms = (time.perf_counter() - began) * 1000
        last = self._latency.get(ref)  # a moving average: how long this model takes
        self._latency[ref] = ms if last is None else 0.8 * last + 0.2 * ms
        failed = model_failure(result)
        if failed:
            raise StepFailed(f"{ref} failed: {failed}")
        return result

    def _pool(self, ref: str) -> ThreadPoolExecutor:
        """The answering pool of model `ref` (made on first use)."""
        pool = self._pools.get(ref)
        if pool is None:
            with self._lock:
                pool = self._pools.get(ref)
                if pool is None:
                    pool = self._pools[ref] = ThreadPoolExecutor(
                        self._workers, thread_name_prefix="scorehouse-answer")
        return pool

    def _wait(self, step: Step, data: Any, deadline_ms: float | None) -> Result:
        assert step.ref is not None
        try:
            if deadline_ms is None:
                return self._score(step.ref, data, step.role)
            future = self._pool(step.ref).submit(contextvars.copy_context().run, self._score,
                                                 step.ref, data, step.role)
            try:
                return future.result(timeout=deadline_ms / 1000)
            except FutureTimeout:
                future.cancel()  # only helps if it has not started: a running call finishes
                raise StepFailed(f"{step.ref} missed the {deadline_ms:g} ms deadline") from None
        except StepFailed:
            raise
        except Exception as e:  # any failure of this model moves on to the next step
            raise StepFailed(f"{step.ref} failed: {type(e).__name__}: {e}") from None

    def _start(self, step: Step, data: Any) -> tuple[asyncio.Future[Result], float]:
        """A model call started in its pool (in a copy of this context), and when."""
        assert step.ref is not None
        call = asyncio.get_running_loop().run_in_executor(
            self._pool(step.ref), contextvars.copy_context().run, self._score, step.ref, data,
            step.role)
        return call, time.perf_counter()

    async def _wait_async(self, chain: tuple[Step, ...], i: int, data: Any,
                          deadline_ms: float | None,
                          hedges: dict[int, tuple[asyncio.Future[Result], float]]) -> Result:
        step = chain[i]
        assert step.ref is not None
        try:
            if deadline_ms is None:
                return self._score(step.ref, data, step.role)
            call, began = hedges.pop(i) if i in hedges else self._start(step, data)
            end = began + deadline_ms / 1000
            await self._hedge(chain, i, data, call, end, hedges)
            left = end - time.perf_counter()
            # asyncio.wait, not wait_for: at the deadline the request goes on at once,
            # without waiting on the loop for the cancellation to be acknowledged.
            if not call.done() and left > 0:
                await asyncio.wait((call,), timeout=left)
            if not call.done():
                call.cancel()  # a call that has not started never will
                raise StepFailed(f"{step.ref} missed the {deadline_ms:g} ms deadline")
            return call.result()
        except StepFailed:
            raise
        except Exception as e:
            raise StepFailed(f"{step.ref} failed: {type(e).__name__}: {e}") from None

    async def _hedge(self, chain: tuple[Step, ...], i: int, data: Any,
                     call: asyncio.Future[Result], end: float,
                     hedges: dict[int, tuple[asyncio.Future[Result], float]]) -> None:
        """Start the next model early when step `i` is still running a little before its
        deadline (`end`): as long before as that model takes (its moving average, x2,
        + 1 ms: the hand-overs to its thread and back; at most half the deadline), so that
        a fallback's answer is ready when the deadline passes rather than starting then."""
        j = i + 1
        if j >= len(chain) or chain[j].ref is None or j in hedges:
            return
        took = self._latency.get(chain[j].ref or "")
        if took is None:
            return  # not measured yet: its first call starts at the deadline
        half = (end - time.perf_counter()) / 2
        lead = min((took * 2 + 1.0) / 1000, max(half, 0.0))
        wait = end - lead - time.perf_counter()
        if wait > 0:
            await asyncio.wait((call,), timeout=wait)
        if not call.done():
            hedges[j] = self._start(chain[j], data)

    # --- the shared bookkeeping -------------------------------------------------------------

    def _answered(self, decision: Decision, data: Any, i: int, step: Step, result: Result,
                  failures: list[str], start: float) -> Routed:
        answer = Answer(decision.request_id, step.role, step.ref, result.model, result.version,
                        fallback=i > 0, reason="; ".join(failures), result=result,
                        latency_ms=(time.perf_counter() - start) * 1000)
        return self._finish(answer, decision, data)

    def _default(self, router: Router, decision: Decision, data: Any, failures: list[str],
                 start: float) -> Routed:
        default = router.spec.default
        assert default is not None  # the router adds the step only then
        if isinstance(data, Mapping):
            value = default.evaluate(data)  # ModelError when a rule fails
        else:  # several rows: a value each
            records = data.to_pylist() if hasattr(data, "to_pylist") else list(data)
            value = [default.evaluate(r) for r in records]
        answer = Answer(decision.request_id, Role.DEFAULT, None, None, None, fallback=True,
                        reason="; ".join(failures), value=value,
                        latency_ms=(time.perf_counter() - start) * 1000)
        return self._finish(answer, decision, data)

    def _nobody(self, router: Router, failures: list[str]) -> ModelError:
        return ModelError(f"deployment {router.spec.name}: no model answered and it has no "
                          f"default ({'; '.join(failures)})")

    def _finish(self, answer: Answer, decision: Decision, data: Any) -> Routed:
        if answer.fallback:
            with self._lock:
                self._fallbacks += 1
        routed = Routed(answer, decision)
        if decision.off_path:
            # The caller may reuse its dict once answered; many rows are not changed.
            copy = dict(data) if isinstance(data, Mapping) else data
            for role, ref in decision.off_path:
                # Taken now: a `use` that drops this model before the pool runs the call
                # must not see it loaded back into the cache by that late call.
                scorer = None if ref is None else self.scorers.peek(ref)
                future = self._off.submit(role, ref, copy, decision.request_id, scorer)
                if future is None:
                    routed.skipped.append(role)
                else:
                    routed.off_path.append(future)
        return routed


__all__ = ["Answer", "OffPathResult", "Rendezvous", "Routed", "StepFailed"]
