"""What every scoring route does, whatever its wire format: find the model (or the
deployment), then decode -> score -> encode.

A deployment's request (its name in the path where a model's would be) goes the same
way, with one decision by its `Rendezvous` in place of one model's call (see `route`):
the protocols only decode and encode, each putting who answered in its body
(`serve.answers`).

A small body is worked on the event loop, where a thread hop would cost more than the
work: one record micro-batched with others when that pays (`batching`), up to
`INLINE_ROWS` rows inline, more in a worker thread. A large body (over
`limits.INLINE_BYTES`) is decoded, scored and encoded in a worker thread (`limits.Offload`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError, NotFoundError
from ..monitor.live import ROW_IDS, LiveMonitor, NumberedIds
from ..monitor.log import new_id
from ..routing import Rendezvous, Routed
from ..schema import ColumnPolicy, check_input
from ..scorer import Result, Scorer
from . import answers
from .batching import MicroBatcher
from .calls import Call, Decoded, Reply
from .deployments import DeploymentSet
from .limits import INLINE_BYTES, Limits, Offload
from .metrics import Metrics
from .models import ModelSet
from .protocols import WIRE
from .routes import Protocol

#: Requests with at most this many rows are scored on the event loop (a thread hop costs
#: more than scoring them); larger ones in the thread pool.
INLINE_ROWS = 64

#: A version in a path: ASCII digits, at most 9 (str.isdigit also takes '²' and '٣').
_VERSION = re.compile(r"[0-9]{1,9}")


class DataPlane:
    """Scoring for every protocol over `models`, within `limits`, under the `columns` policy.

    `batched`: the names of the models whose single records are micro-batched (decided at
    start-up, see `ScoringService.prepare`); `live`: the prediction log and drift windows
    every scorer used is attached to (None: neither).

    Ids: a request's id is its `X-Request-Id` header, else the body's (V2 `id`, native
    `{"id", "records"}`), else a generated uuid7; a one-row request's row is logged under
    it, row i of a larger one under `<request id>/<i>`. Every answer has it in its
    `X-Request-Id` header; V2's `id` and native's `request_id` carry it when the client
    gave it or the server logs.
    """

    def __init__(self, models: ModelSet, limits: Limits, metrics: Metrics,
                 columns: ColumnPolicy, live: LiveMonitor | None = None,
                 deployments: DeploymentSet | None = None):
        self.models, self.limits, self.metrics, self.columns = models, limits, metrics, columns
        self.deployments = deployments
        self.live = live if live is not None and live.active else None
        self.logging = live is not None and live.logger is not None
        self.offload = Offload(limits)
        self.batcher = MicroBatcher(observe=metrics.batch_size.observe)
        self.batched: set[str] = set()

    def model(self, call: Call) -> Scorer:
        """The scorer a request's path names (`name` or `model`, and `version` if pinned);
        the only one when the path names none. Sets `call.served`.

        Raises:
            InvalidInputError: no model named and several served.
            NotFoundError: no such model or version.
        """
        name = call.params.get("name") or call.params.get("model")
        version = call.params.get("version")
        if name is None:
            if len(self.models.models) != 1 or (self.deployments and self.deployments.served):
                raise InvalidInputError("this server holds several models (or deployments); "
                                        "POST to /models/{name}/invocations")
            name = next(iter(self.models.models))
        if version is not None and not _VERSION.fullmatch(version):
            raise NotFoundError(f"version {version!r} is not a number")
        scorer = self.models.get(name, int(version) if version is not None else None)
        call.served = (scorer.name, str(scorer.public_version))
        if self.live is not None:
            self.live.watch(scorer)  # once per scorer: a set lookup afterwards
        return scorer

    async def infer(self, call: Call, protocol: Protocol) -> Reply:
        """The answer to a scoring request in `protocol`'s wire format.

        Raises:
            ScorehouseError: as the protocol's decode and encode, the model lookup
                (`model`) and the limits (`limits.TooLarge`, `TimedOut`, `SlowClient`) do.
        """
        call.request_id = call.headers.get("x-request-id") or None
        rz = self.deployment(call)
        if rz is not None:
            return await self.route(call, protocol, rz)
        scorer = self.model(call)
        body = await call.read()
        wire = WIRE[protocol]

        def in_thread() -> Reply:
            request = _identified(wire.decode(body, call.headers), call, self.logging)
            rows, n = self._rows(request.rows)
            return wire.encode(self._predict(scorer, rows, n, call.request_id), scorer, request)

        if len(body) > INLINE_BYTES:
            return await self.offload.run(len(body), in_thread)
        request = _identified(wire.decode(body, call.headers), call, self.logging)
        return wire.encode(await self._score(scorer, request.rows, call.request_id), scorer,
                           request)

    def deployment(self, call: Call) -> Rendezvous | None:
        """The deployment a request's path names (or the only thing served, when it names
        nothing and that is a deployment), else None (a model's request). Sets
        `call.served`.

        Raises:
            NotFoundError: a version pinned on a deployment; a name served as neither.
        """
        served = self.deployments.served if self.deployments is not None else {}
        if not served:
            return None
        name = call.params.get("name") or call.params.get("model")
        if name is None:
            if self.models.models or len(served) != 1:
                return None
            name = next(iter(served))
        rz = served.get(name)
        if rz is None:
            if name not in self.models.models:
                raise NotFoundError(f"{name!r} is not served here; models: "
                                    f"{', '.join(sorted(self.models.models)) or 'none'}; "
                                    f"deployments: {', '.join(sorted(served))}")
            return None
        if call.params.get("version") is not None:
            raise NotFoundError(f"{name!r} is a deployment, which has no versions (its spec "
                                f"names its models'): see `scorehouse deploy show {name}`")
        call.served = (name, "")
        return rz

    async def route(self, call: Call, protocol: Protocol, rz: Rendezvous) -> Reply:
        """A deployment's answer in `protocol`'s wire format: decode, one decision for the
        request (`answers.decision_record`), encode with who answered; the rows' log ids
        are set for every role's call. Large requests are worked in a thread, as models'.

        Raises:
            ScorehouseError: as `infer`; ModelError when no model answered and the spec has
                no default (answered 400, as serve answers a model failing on every row).
        """
        name, wire = rz.spec.name, WIRE[protocol]
        call.reply_headers = answers.headers(name, None)  # errors say the deployment too
        body = await call.read()

        def in_thread() -> Reply:
            request, rows, n = self._decoded(wire, body, call)
            return self._answer(wire, self._decide(rz, rows, n, call), request, rows, call)

        if len(body) > INLINE_BYTES:
            return await self.offload.run(len(body), in_thread)
        request, rows, n = self._decoded(wire, body, call)
        if n > INLINE_ROWS:
            routed = await self.offload.threaded(lambda: self._decide(rz, rows, n, call))
        else:
            token = ROW_IDS.set(_row_ids(call.request_id, n))
            try:
                routed = await rz.decide_and_score_async(
                    answers.decision_record(rows, rz.spec), call.request_id,
                    rows=None if isinstance(rows, Mapping) else rows)
            finally:
                ROW_IDS.reset(token)
        return self._answer(wire, routed, request, rows, call)

    def _decoded(self, wire: Any, body: bytes, call: Call) -> tuple[Decoded, Any, int]:
        request = _identified(wire.decode(body, call.headers), call, self.logging)
        rows, n = self._rows(request.rows)
        return request, rows, n

    def _decide(self, rz: Rendezvous, rows: Any, n: int, call: Call) -> Routed:
        # The decision and the answer where the caller is (a worker thread).
        token = ROW_IDS.set(_row_ids(call.request_id, n))
        try:
            return rz.decide_and_score(answers.decision_record(rows, rz.spec), call.request_id,
                                       rows=None if isinstance(rows, Mapping) else rows)
        finally:
            ROW_IDS.reset(token)

    def _answer(self, wire: Any, routed: Routed, request: Decoded, rows: Any, call: Call
                ) -> Reply:
        answer, name = routed.answer, call.served[0]
        if self.deployments is not None and self.deployments.metrics is not None:
            self.deployments.metrics.answered(name, routed)
        call.reply_headers = answers.headers(name, answer)
        request.answered = answers.answered(name, answer)
        if answer.result is None:
            values = answers.default_values(answer, isinstance(rows, Mapping))
            if self.deployments is not None and call.request_id:
                self.deployments.log_default(name, call.request_id, rows, values)
            return wire.encode_default(values, request)
        self.metrics.observe(answer.result)
        return wire.encode(answer.result, None, request)

    def _rows(self, rows: Any) -> tuple[Any, int]:
        # (rows, how many), one record as a dict (what the micro-batcher and the scorer's
        # one-row path take); TooLarge beyond the row limit.
        if isinstance(rows, list) and len(rows) == 1:
            rows = rows[0]
        n = rows.num_rows if hasattr(rows, "num_rows") else \
            len(rows) if isinstance(rows, list) else 1
        self.limits.check_rows(n)
        return rows, n

    def _predict(self, scorer: Scorer, rows: Any, n: int, request_id: str | None) -> Result:
        # Scoring `n` rows (as `_rows` gave them) where the caller already is (the event
        # loop, or a worker thread), the rows' ids set for the log hook.
        token = ROW_IDS.set(_row_ids(request_id, n))
        try:
            result = scorer.predict(rows, columns=self.columns,
                                    max_rejects=self.limits.max_rejects)
        finally:
            ROW_IDS.reset(token)
        self.metrics.observe(result)
        return result

    async def _score(self, scorer: Scorer, rows: Any, request_id: str | None) -> Result:
        # Scoring for a small body, on the event loop: micro-batched, inline or threaded.
        rows, n = self._rows(rows)
        if isinstance(rows, Mapping) and scorer.name in self.batched:
            # Each request's columns are its own, whatever it is batched with.
            check = check_input(scorer.schema, rows).enforce(self.columns)
            result = await self.batcher.score(scorer, rows, request_id)
            result.column_check = check
            self.metrics.observe(result)
            return result
        if n <= INLINE_ROWS:
            return self._predict(scorer, rows, n, request_id)
        return await self.offload.threaded(lambda: self._predict(scorer, rows, n, request_id))


def _identified(request: Decoded, call: Call, logging: bool) -> Decoded:
    """`request` with its id: the header's, else the body's, else a new one, kept in
    `call.request_id` (the response header). The answer's body names it (`request.id`)
    when the client gave it or the row is logged under it: otherwise the body stays as it
    was before ids, the same for the same rows."""
    given = call.request_id or request.id
    call.request_id = given or new_id()
    request.id = call.request_id if given or logging else None
    return request


def _row_ids(request_id: str | None, n: int) -> Any:
    """The log ids of a request's `n` rows: the request id for one row, else `<id>/<i>`."""
    if request_id is None:
        return None
    return [request_id] if n == 1 else NumberedIds(request_id, n)
