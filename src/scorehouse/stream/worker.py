"""The streaming worker: events in, profile updated by a reducer, scored, written back.

Per batch: read events, fetch the profiles of their entities in one round trip, apply the
events in order, score every updated profile in one call, then write each event's effect
(profile + score + output-stream entry) with a compare-and-set that also rejects events
already applied, and acknowledge. A poison event (bad payload, a reducer or a model that
refuses it) is retried until `max_attempts` deliveries, then dead-lettered with its reason.
An event that arrives after newer events of its entity (a retry, a dead worker's event
reclaimed) still counts once, but its "last" fields do not overwrite newer ones (`order`).
"""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..monitor.live import LiveMonitor, row_ids
from ..scorer import Scorer
from .deployed import DeployedScoring
from .events import Event, Events
from .order import POSITIONS, settle
from .profiles import Applied, Effect, Outcome, Profiles, Refused, text_value
from .reducers import Reducer

log = logging.getLogger("scorehouse.stream")

#: Rewrites of one entity when another worker changed its profile meanwhile.
CONFLICT_RETRIES = 8
#: Seconds of the first wait before a rewrite; each next one waits up to twice as long, a
#: random share of it (full jitter), at most CONFLICT_WAIT_MAX.
CONFLICT_WAIT, CONFLICT_WAIT_MAX = 0.002, 0.05


@dataclass
class Stats:
    """What a worker did, for logs, metrics and tests."""

    events: int = 0
    scored: int = 0
    duplicates: int = 0
    dead: int = 0
    retried: int = 0
    conflicts: int = 0
    reconnects: int = 0
    scoring_seconds: float = 0.0
    #: Milliseconds from an event's publish time (`Event.published_ms`) to its score written,
    #: for the last events (a window of at most 10,000).
    lag_ms: list[float] = field(default_factory=list)


@dataclass
class _Step:
    event: Event
    entity: str
    payload: dict[str, Any]

    @property
    def order(self) -> tuple[int, tuple[int, ...]]:
        p = self.event.position
        return (p.partition, p.offset) if p is not None else (0, ())


@dataclass
class _Plan:
    """One event's effect as planned: the profile version it expects, the profile it leaves,
    and whether it is the newest event applied to that profile (stream order)."""

    step: _Step
    version: str
    profile: dict[str, Any]
    newest: bool


def _as_table(profiles: list[dict[str, Any]]) -> Any:
    """Profiles as an Arrow table of text columns: Redis keeps text, and the schema's
    vectorised text rules are several times faster than the per-record path."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for p in profiles:
        names.update(dict.fromkeys(p))
    names.pop(POSITIONS, None)  # the worker's bookkeeping, not an input of the model
    return pa.table({n: pa.array([None if (v := p.get(n)) is None else
                                  v if isinstance(v, str) else text_value(v) for p in profiles],
                                 pa.string()) for n in names})


class StreamWorker:
    """Turns a stream of events into fresh scores on profiles."""

    def __init__(self, scorer: Scorer | None, events: Events, profiles: Profiles,
                 reducer: Reducer, *, key: str, output_stream: str | None = None,
                 batch: int = 200, block_ms: int = 1000, max_attempts: int = 3,
                 live: LiveMonitor | None = None, deployment: DeployedScoring | None = None):
        if not isinstance(reducer, Reducer):  # a plain function(profile, event)
            reducer = Reducer(reducer)
        self.scorer, self.events, self.profiles, self.reducer = scorer, events, profiles, reducer
        #: Scoring through a deployment instead of `scorer` (`stream.deployed`).
        self.deployment = deployment
        self.key, self.output_stream = key, output_stream
        self.batch, self.block_ms, self.max_attempts = batch, block_ms, max_attempts
        self.stats = Stats()
        #: The prediction log and drift window attached to the scorer (`close` flushes).
        self.live = live
        self._stop = threading.Event()
        if scorer is not None:
            scorer.runtime.prepare()  # compile now, not while the first events wait
        # Without a scorer or a deployment the worker only enriches: the updated profile
        # goes, with the event, to the output stream, for a scoring worker to consume.

    @property
    def scoring(self) -> bool:
        """Whether the worker scores (with a model or a deployment), not only enriches."""
        return self.scorer is not None or self.deployment is not None

    # --- one batch --------------------------------------------------------------------------
    def step(self) -> int:
        """Read and handle one batch; how many events it read."""
        if self.deployment is not None:
            self.deployment.following.poll()  # a changed deployment applies from this batch
        events = self.events.read(self.batch, self.block_ms)
        if not events:
            return 0
        self.stats.events += len(events)
        steps: list[_Step] = []
        for e in events:
            payload, why = self._payload(e)
            if why:
                self._poison(e, why)
            else:
                steps.append(_Step(e, str(payload[self.key]), payload))
        chains: dict[str, list[_Step]] = {}
        for s in steps:
            chains.setdefault(s.entity, []).append(s)
        for chain in chains.values():  # reclaimed and new events may come mixed: stream order
            chain.sort(key=lambda s: s.order)
        if chains:
            self._handle(chains)
        return len(events)

    def _payload(self, e: Event) -> tuple[dict[str, Any], str | None]:
        fields = e.fields
        if set(fields) == {"data"} or set(fields) == {"payload"}:
            try:
                data = json.loads(next(iter(fields.values())))
            except ValueError as err:
                return {}, f"payload is not JSON: {err}"
            if not isinstance(data, dict):
                return {}, "payload is not a JSON object"
            fields = data
        if fields.get(self.key) in (None, ""):
            return {}, f"event has no {self.key!r}"
        why = self.profiles.entity_problem(str(fields[self.key]))
        return ({}, why) if why else (dict(fields), None)

    def _reduce(self, profile: dict[str, Any], s: _Step) -> tuple[dict[str, Any], bool]:
        """The profile after event `s`, in stream order (see `order.settle`), and whether `s`
        is the newest event applied to it. Raises what the reducer raises."""
        after = self.reducer(dict(profile), s.payload)
        if s.event.position is None:  # a source without positions: arrival order
            return after, True
        return settle(profile, after, self.reducer.latest(s.payload), s.event.position)

    def _handle(self, chains: dict[str, list[_Step]]) -> None:
        stored = self.profiles.fetch(list(chains))
        # Apply each entity's events in order; each intermediate profile is scored. The
        # version each write expects is the id of the event before it.
        plans: list[_Plan] = []
        changes: list[dict[str, Any]] = []  # only the fields an event changed are written
        for entity, chain in chains.items():
            version, profile = stored[entity]
            for s in chain:
                before = profile
                try:
                    profile, newest = self._reduce(profile, s)
                except Exception as e:  # noqa: BLE001 - a reducer's failure is the event's
                    self._poison(s.event, f"the reducer failed: {type(e).__name__}: {e}")
                    break  # the rest of the chain stays pending, retried after this one
                plans.append(_Plan(s, version, profile, newest))
                changes.append({k: v for k, v in profile.items() if before.get(k) != v})
                version = s.event.id
        answers: dict[int, Any] = {i: None for i in range(len(plans))}
        reasons: dict[int, str] = {}
        if self.scoring and plans:  # logged under the event ids
            answers, reasons = self._score([p.profile for p in plans],
                                           [p.step.event.id for p in plans])
        broken: set[str] = set()  # entities whose chain stopped at a failed event
        writes: list[tuple[_Step, Effect]] = []
        for i, plan in enumerate(plans):
            s = plan.step
            if s.entity in broken:
                continue  # left pending: retried after the failed event is settled
            if i in reasons:
                self._poison(s.event, reasons[i])
                broken.add(s.entity)
                continue
            writes.append((s, self._effect(s, plan.version, changes[i], answers[i],
                                           plan.newest, plan.profile)))
        outcomes = self.profiles.apply_many([effect for _, effect in writes])
        acks: list[str] = []
        stopped: set[str] = set()  # entities whose later events are settled elsewhere
        for (s, _), outcome in zip(writes, outcomes, strict=True):
            if s.entity in stopped:
                continue
            if isinstance(outcome, Refused):  # the store refused the values: a poison event
                stopped.add(s.entity)  # the rest stays pending, retried on a fresh read
                self._poison(s.event, outcome.reason)
                continue
            if outcome is Outcome.CONFLICT:  # another writer got there first: redo from here
                stopped.add(s.entity)
                chain = chains[s.entity]
                self._resolve_conflict(chain[chain.index(s):])
                continue
            self._count(s, outcome)
            acks.append(s.event.id)
        self.events.ack(acks)

    def _score(self, profiles: list[dict[str, Any]], ids: list[str]
               ) -> tuple[dict[int, Any], dict[int, str]]:
        """(answer by row, poison reason by row) of the profiles, row i logged as event
        `ids[i]`: a record of the model's, or a deployment's `Answer`."""
        started = time.perf_counter()
        try:
            if self.deployment is not None:
                return self.deployment.score(_as_table(profiles), ids)
            assert self.scorer is not None
            with row_ids(ids):
                result = self.scorer.predict(_as_table(profiles))
            reasons: dict[int, str] = {}
            for rej in result.rejects:
                reasons.setdefault(rej.row, rej.problem)
            return dict(zip(result.rows.tolist(), result.to_records(), strict=True)), reasons
        finally:
            self.stats.scoring_seconds += time.perf_counter() - started

    def _effect(self, s: _Step, version: str, profile: dict[str, Any],
                answer: Any, newest: bool, full: dict[str, Any] | None = None) -> Effect:
        if self.deployment is not None and answer is not None:
            fields, out = self.deployment.fields(s.entity, s.event.id, answer, newest)
            return Effect(s.entity, version, s.event.id, {**profile, **fields},
                          self.output_stream, out)
        if answer is None or self.scorer is None:  # enrich only: the event and the profile
            out = {**(full or profile), self.key: s.entity, "event_id": s.event.id,
                   "enriched_at": datetime.now(timezone.utc).isoformat()}
            out.pop(POSITIONS, None)
            return Effect(s.entity, version, s.event.id, profile, self.output_stream, out)
        m, v = self.scorer.name, self.scorer.version
        probabilities = answer.get("probabilities")
        score = self.scorer.headline(answer)
        # The score is the profile's as it now is (every event applied so far); the event id
        # beside it names the newest of them, which a late event is not.
        written = {**profile, f"{m}_label": answer.get("label", ""), f"{m}_score": score,
                   f"{m}_version": v}
        if newest:
            written[f"{m}_event_id"] = s.event.id
        out = {"entity": s.entity, "event_id": s.event.id, "model": m,
               "version": "" if v is None else v, "label": answer.get("label", ""),
               # A regressor's entry has its value as the score, and no probabilities.
               "score": score, **({"probabilities": probabilities} if probabilities else {}),
               "scored_at": datetime.now(timezone.utc).isoformat()}
        return Effect(s.entity, version, s.event.id, written, self.output_stream, out)

    def _count(self, s: _Step, outcome: Outcome) -> None:
        if outcome is Outcome.WRITTEN:
            self.stats.scored += 1
            self._lag(s.event)
        elif outcome is Outcome.ALREADY_APPLIED:
            self.stats.duplicates += 1

    def _write(self, s: _Step, version: str, profile: dict[str, Any], answer: Any,
               newest: bool) -> Applied:
        outcome = self.profiles.apply(self._effect(s, version, profile, answer, newest))
        if isinstance(outcome, Refused):
            self._poison(s.event, outcome.reason)
        else:
            self._count(s, outcome)
        return outcome

    def _resolve_conflict(self, chain: list[_Step]) -> None:
        # Another writer changed this profile since we read it: redo this entity's events
        # one by one on fresh reads.
        self.stats.conflicts += 1
        for s in chain:
            for attempt in range(CONFLICT_RETRIES):
                # Two workers on one entity that rewrite at once collide again, in step:
                # a random wait, growing with the attempt, takes them out of step
                # ("full jitter" backoff, as AWS's architecture blog describes it).
                if attempt:
                    time.sleep(random.uniform(0, min(CONFLICT_WAIT_MAX,
                                                     CONFLICT_WAIT * 2 ** attempt)))
                version, profile = self.profiles.fetch([s.entity])[s.entity]
                try:
                    profile, newest = self._reduce(profile, s)
                except Exception as e:  # noqa: BLE001 - a reducer's failure is the event's
                    self._poison(s.event, f"the reducer failed: {type(e).__name__}: {e}")
                    return
                answer = None
                if self.scoring:
                    answers, reasons = self._score([profile], [s.event.id])
                    if 0 in reasons:
                        self._poison(s.event, reasons[0])
                        return
                    answer = answers[0]
                outcome = self._write(s, version, profile, answer, newest)
                if isinstance(outcome, Refused):
                    return  # poisoned: the rest of the chain waits for a later delivery
                if outcome is not Outcome.CONFLICT:
                    self.events.ack([s.event.id])
                    break
            else:
                return  # still contended: left pending, reclaimed later

    def _poison(self, e: Event, reason: str) -> None:
        deliveries = max(e.deliveries, self.events.deliveries(e.id))
        if deliveries >= self.max_attempts:
            e.deliveries = deliveries
            self.events.dead_letter(e, reason)
            self.stats.dead += 1
            log.warning("event %s dead-lettered after %d deliveries: %s", e.id, deliveries,
                        reason)
        else:
            self.stats.retried += 1  # not acknowledged: delivered again after claim_idle_ms

    def _lag(self, event: Event) -> None:
        if event.published_ms is None:  # the transport did not say when (a Kafka option)
            return
        self.stats.lag_ms.append(time.time() * 1000 - event.published_ms)
        if len(self.stats.lag_ms) > 10_000:
            del self.stats.lag_ms[:5_000]

    # --- the loop ---------------------------------------------------------------------------
    def run(self, *, until_idle: bool = False) -> Stats:
        """Handle batches until stopped (SIGTERM/SIGINT drain the batch in hand)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        transient = (*self.events.transient, *self.profiles.transient)
        backoff = 0.1
        while not self._stop.is_set():
            try:
                n = self.step()
                backoff = 0.1
            except transient as e:
                # A server restarting: nothing unacknowledged is lost (it is delivered again,
                # and the idempotent write absorbs what was already applied); wait, retry.
                self.stats.reconnects += 1
                log.warning("%s unavailable (%s); retrying in %.1f s", type(e).__module__, e,
                            backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n == 0 and until_idle:
                break
        return self.stats

    def stop(self) -> None:
        """Finish the current batch, then return from `run`."""
        self._stop.set()

    def close(self) -> None:
        """Flush and close the prediction log (after `run` returned). Idempotent."""
        if self.live is not None:
            self.live.close()
        if self.deployment is not None:
            self.deployment.following.close()
