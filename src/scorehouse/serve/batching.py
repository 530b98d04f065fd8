"""Adaptive micro-batching: single-record requests that arrive together are scored together.

No request waits on a timer. A request queues its record and the queue is scored on the
event loop's next turn, so a batch holds exactly the requests that were ready at the same
time: one under light load, more under heavy load (up to `max_batch`). Whether it pays off
depends on the model, so `worth_it` measures it at start-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..monitor.live import ROW_IDS
from ..scorer import Result, Scorer

#: Most records scored in one call.
MAX_BATCH = 32


class MicroBatcher:
    """Queues one-record requests per scorer; `observe(n)` sees every batch size."""

    def __init__(self, max_batch: int = MAX_BATCH, observe: Callable[[int], None] | None = None):
        self.max_batch = max_batch
        self.observe = observe
        self._queues: dict[int, tuple[Scorer, list[tuple[Mapping[str, Any], asyncio.Future,
                                                         str | None]]]] = {}

    async def score(self, scorer: Scorer, record: Mapping[str, Any],
                    request_id: str | None = None) -> Result:
        """The result of one record, scored with whatever else is queued for `scorer`;
        `request_id` is the id the prediction log gives its row."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        key = id(scorer)
        if key not in self._queues:
            self._queues[key] = (scorer, [])
            loop.call_soon(self._flush, key)
        self._queues[key][1].append((record, future, request_id))
        return await future

    def _flush(self, key: int) -> None:
        scorer, queue = self._queues.pop(key)
        while queue:
            part, queue = queue[: self.max_batch], queue[self.max_batch:]
            if self.observe:
                self.observe(len(part))
            ids = [rid for _, _, rid in part if rid is not None]
            token = ROW_IDS.set(ids if len(ids) == len(part) else None)  # each row's log id
            try:
                if len(part) == 1:
                    results = [scorer.predict(part[0][0])]
                else:
                    merged = scorer.predict([rec for rec, _, _ in part])
                    results = [merged.pick(i) for i in range(len(part))]
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error
                for _, f, _ in part:
                    if not f.done():
                        f.set_exception(e)
                continue
            finally:
                ROW_IDS.reset(token)
            for (_, f, _), r in zip(part, results, strict=True):
                if not f.done():
                    f.set_result(r)


def worth_it(scorer: Scorer, sample: Mapping[str, Any], batch: int = 8, rounds: int = 50) -> bool:
    """True when scoring `batch` records in one call costs under 60% of scoring them one by one."""
    records = [dict(sample)] * batch
    scorer.predict(sample)
    scorer.predict(records)
    start = time.perf_counter()
    for _ in range(rounds):
        for r in records:
            scorer.predict(r)
    single = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        merged = scorer.predict(records)
        for i in range(batch):
            merged.pick(i)
    return time.perf_counter() - start < 0.6 * single
