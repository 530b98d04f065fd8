"""`Router`: which model answers a request, which score it off the path, decided in
microseconds and the same in every process.

The split is sticky: the key (the `sticky_by` field of the record, else the request id) is
hashed with BLAKE2b, salted with the deployment's name so that two experiments split their
keys independently, into one of BUCKETS buckets. Challenger i answers the buckets from the
sum of the weights before it up to that sum plus its own weight (x BUCKETS); the champion
answers the rest. The hash is not Python's `hash()` (salted per process): the same key lands
on the same model in every server, worker and batch job. Raising a challenger's weight only
adds buckets to it, so the keys it already had stay with it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .spec import DeploymentSpec, Role

#: The number of buckets the keys are hashed into: weights are applied to 1/BUCKETS.
BUCKETS = 10_000


def bucket_of(key: str, salt: bytes = b"") -> int:
    """The bucket (0 .. BUCKETS-1) of `key`: BLAKE2b of salt + key, modulo BUCKETS."""
    digest = hashlib.blake2b(salt + key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def buckets_of(keys: Iterable[str], salt: bytes = b"") -> np.ndarray:
    """`bucket_of` of every key, as an int64 array: the same BLAKE2b digests, read as
    big-endian unsigned 64-bit integers in one numpy pass."""
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(salt + k.encode("utf-8", "surrogatepass"),
                                digest_size=8).digest() for k in keys])
    return (np.frombuffer(digests, dtype=">u8") % BUCKETS).astype(np.int64)


@dataclass(frozen=True)
class Step:
    """One model that may answer: its role and reference (None for the default)."""

    role: Role
    ref: str | None


@dataclass(frozen=True)
class Decision:
    """What to do with one request.

    `chain`: who answers, in order: the first step, then the fallbacks, then the default
    (if the spec has one); each next step runs when the one before fails or misses the
    deadline. `off_path`: (role, reference) of the shadows and canaries to score, plus
    (DECOY, None) when the raw input is archived. `key`, `bucket`: the sticky key used and
    its bucket (None when the request was routed by field).
    """

    request_id: str
    chain: tuple[Step, ...]
    off_path: tuple[tuple[Role, str | None], ...]
    key: str
    bucket: int | None


class Router:
    """Decides per request, from a `DeploymentSpec`; no I/O and no model calls.

    The spec is read once into tables (bucket bounds, the fallback chain, the off-path
    list), so `decide` only hashes and compares.
    """

    def __init__(self, spec: DeploymentSpec):
        self.spec = spec
        self._salt = spec.name.encode() + b"\x00"
        bounds: list[tuple[int, Step]] = []
        upper = 0.0
        for c in spec.challengers:
            upper += c.weight * BUCKETS
            bounds.append((round(upper), Step(Role.CHALLENGER, c.model)))
        self._bounds = tuple(bounds)
        self._champion = Step(Role.CHAMPION, spec.champion)
        tail = [Step(Role.FALLBACK, r) for r in spec.fallbacks]
        if spec.default is not None:
            tail.append(Step(Role.DEFAULT, None))
        self._tail = tuple(tail)
        off: list[tuple[Role, str | None]] = [(Role.SHADOW, r) for r in spec.shadows]
        off += [(Role.CANARY, r) for r in spec.canaries]
        if spec.decoy:
            off.append((Role.DECOY, None))
        self._off_path = tuple(off)
        route = spec.route_by
        self._route_field = route.field if route else None
        self._routes = {k: Step(Role.ROUTED, v) for k, v in route.models.items()} if route else {}

    def decide(self, record: Mapping[str, Any], request_id: str | None = None) -> Decision:
        """The `Decision` for one input record.

        `request_id` names the request in the log (a fresh UUID when None); it is the
        sticky key when the spec has no `sticky_by` or the record lacks that field.
        """
        rid = request_id or uuid.uuid4().hex
        if self._route_field is not None:
            routed = self._routes.get(str(record.get(self._route_field)))
            if routed is not None:
                return Decision(rid, (routed, *self._tail), self._off_path,
                                str(record.get(self._route_field)), None)
        sticky = self.spec.sticky_by
        value = record.get(sticky) if sticky is not None else None
        key = rid if value is None else str(value)
        bucket = bucket_of(key, self._salt)
        first = self._champion
        for bound, step in self._bounds:
            if bucket < bound:
                first = step
                break
        return Decision(rid, (first, *self._tail), self._off_path, key, bucket)

    @property
    def tail(self) -> tuple[Step, ...]:
        """The steps after the first of every decision: the fallbacks, then the default."""
        return self._tail

    @property
    def off_path(self) -> tuple[tuple[Role, str | None], ...]:
        """(role, reference) of the shadows and canaries, plus (DECOY, None) with a decoy."""
        return self._off_path

    def first_steps(self, sticky: Sequence[Any] | None, route: Sequence[Any] | None,
                    request_ids: Sequence[str]) -> tuple[tuple[Step, ...], np.ndarray]:
        """What `decide` picks first for many records at once (a table's rows).

        Args:
            sticky: each record's `sticky_by` value (None: the record lacks it; the whole
                argument None: no record has the field, or the spec has no `sticky_by`).
            route: each record's `route_by` value, likewise.
            request_ids: each record's request id (the sticky key when it has no value).

        Returns (steps, index): `steps[index[i]]` is `decide(record_i, request_ids[i])
        .chain[0]` (the same keys, buckets and routes; the keys are hashed in one pass).
        """
        n = len(request_ids)
        routed = tuple(dict.fromkeys(self._routes.values()))
        steps = (self._champion, *(s for _, s in self._bounds), *routed)
        index = np.zeros(n, np.int64)
        open_ = np.ones(n, bool)  # not routed by field
        if self._route_field is not None:
            slot = {value: 1 + len(self._bounds) + routed.index(step)
                    for value, step in self._routes.items()}
            routes: Sequence[Any] = route if route is not None else [None] * n
            for i, v in enumerate(routes):
                j = slot.get(str(v))
                if j is not None:
                    index[i], open_[i] = j, False
        if self._bounds and open_.any():
            rows = np.flatnonzero(open_)
            at = rows.tolist()
            values = sticky if sticky is not None and self.spec.sticky_by is not None else None
            if values is None:
                keys = [str(request_ids[i]) for i in at]
            else:  # a missing value: the request id (as `decide`)
                picked = values if len(at) == n else [values[i] for i in at]
                keys = [str(request_ids[i]) if v is None else str(v)
                        for i, v in zip(at, picked, strict=True)]
            bounds = np.asarray([b for b, _ in self._bounds], np.int64)
            below = np.searchsorted(bounds, buckets_of(keys, self._salt), side="right")
            index[rows] = np.where(below < len(bounds), below + 1, 0)
        return steps, index

    def model_for(self, key: str) -> Step:
        """The step that answers sticky key `key` first (what `decide` picks for it)."""
        bucket = bucket_of(key, self._salt)
        for bound, step in self._bounds:
            if bucket < bound:
                return step
        return self._champion


__all__ = ["BUCKETS", "Decision", "Router", "Step", "bucket_of", "buckets_of"]
