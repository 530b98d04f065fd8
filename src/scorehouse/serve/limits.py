"""What one request may cost the server: body size, read time, rows, rejects listed, time.

A request is read under a deadline (a client that stops sending is answered 408 and
dropped), refused beyond `max_body` bytes or `max_rows` rows (413), and lists at most
`max_rejects` rejects (the rest are counted by column and reason). Small requests are
decoded, scored and encoded on the event loop, where a thread hop would cost more than
the work; large ones in a worker thread, at most `LARGE_AT_ONCE` at a time, under the
per-request timeout, so they cannot starve the loop (health probes, other requests).

Why 1 MiB by default: JSON parsing is one C call that holds the interpreter lock, and the
densest body (nested empty arrays) takes ~65 ns a byte on a shared 2-core machine (with the
cyclic garbage collector paused, as it is during large requests; ~3x more with it). At
1 MiB no request holds the loop for more than ~100 ms; `--max-body` raises it at that cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ScorehouseError

#: Largest request body accepted by default, in bytes (413 beyond it).
MAX_BODY = 1024 * 1024
#: Most rows one request may hold by default (413 beyond it).
MAX_ROWS = 100_000
#: Most rejects an answer lists by default; the rest are counted by column and reason.
MAX_REJECTS = 100
#: Seconds a client has by default to send a whole request body (408 beyond it).
READ_TIMEOUT = 30.0
#: Bodies up to this many bytes are handled on the event loop; larger ones in a thread.
INLINE_BYTES = 64 * 1024
#: Large requests worked on at the same time (more only add memory: the work holds the GIL).
LARGE_AT_ONCE = 2

T = TypeVar("T")


class TooLarge(ScorehouseError):
    """A request over the body size or row limit (413)."""


class TimedOut(ScorehouseError):
    """A request that took longer than the per-request timeout (504)."""


class SlowClient(ScorehouseError):
    """A client that did not send its request body in time (408; the connection is closed)."""


@dataclass(frozen=True)
class Limits:
    """The limits of one server (see the module docstring); `timeout` None means none."""

    max_body: int = MAX_BODY
    max_rows: int = MAX_ROWS
    max_rejects: int = MAX_REJECTS
    timeout: float | None = 30.0
    read_timeout: float = READ_TIMEOUT

    @classmethod
    def from_env(cls, **given: float | int | None) -> Limits:
        """Limits from keyword arguments, then $SCOREHOUSE_MAX_ROWS / _MAX_REJECTS /
        _READ_TIMEOUT, then the defaults."""
        env = {"max_rows": ("SCOREHOUSE_MAX_ROWS", int),
               "max_rejects": ("SCOREHOUSE_MAX_REJECTS", int),
               "read_timeout": ("SCOREHOUSE_READ_TIMEOUT", float)}
        values = {k: v for k, v in given.items() if v is not None or k == "timeout"}
        for key, (var, kind) in env.items():
            if key not in values and os.environ.get(var):
                try:
                    values[key] = kind(os.environ[var])
                except ValueError:
                    raise ScorehouseError(f"${var} must be a number, got "
                                          f"{os.environ[var]!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def check_rows(self, n: int) -> None:
        """Raise TooLarge when a request holds more than `max_rows` rows."""
        if n > self.max_rows:
            raise TooLarge(f"the request holds {n} rows, over the limit of {self.max_rows} per "
                           "request; send them in several requests")


async def read_body(chunks: AsyncIterator[bytes], length: str | None, limits: Limits) -> bytes:
    """The whole body from `chunks`, within `limits.max_body` bytes and `read_timeout` s.

    Raises TooLarge (413) or SlowClient (408).
    """
    if length is not None and length.isdigit() and int(length) > limits.max_body:
        raise TooLarge(f"request body of {length} bytes is over the limit of {limits.max_body}")
    # One timer per request that cancels this task if the body is not in by then (lighter
    # on the hot path than a timeout context per chunk).
    task = asyncio.current_task()
    fired = []
    timer = asyncio.get_running_loop().call_later(
        limits.read_timeout, lambda: (fired.append(True), task and task.cancel()))
    parts, size = [], 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limits.max_body:
                raise TooLarge(f"request body is over the limit of {limits.max_body} bytes")
            parts.append(chunk)
    except asyncio.CancelledError:
        if not fired:
            raise
        if task is not None and hasattr(task, "uncancel"):
            task.uncancel()
        raise SlowClient(f"the request body did not arrive within {limits.read_timeout:g} s "
                         f"({size} bytes received)") from None
    finally:
        timer.cancel()
    return b"".join(parts)


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large request builds its objects.

    Decoding a large body creates millions of containers, and each full collection they
    trigger walks all of them inside the parser's one C call: ~3x the parse time, all of
    it holding the interpreter lock. Request objects hold no cycles (reference counting
    frees them), so the pause loses nothing; it ends when the last large request does.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def _paused(work: Callable[[], T]) -> T:
    with gc_paused():
        return work()


class Offload:
    """Runs a request's work on the event loop when it is small, else in a worker thread."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._large: asyncio.Semaphore | None = None

    async def run(self, size: int, work: Callable[[], T]) -> T:
        """`work()` for a request of `size` bytes; raises TimedOut past the request timeout
        (the thread then finishes in the background: its work is bounded by the limits)."""
        if size <= INLINE_BYTES:
            return work()
        if self._large is None:  # made on the loop that uses it
            self._large = asyncio.Semaphore(LARGE_AT_ONCE)
        return await self.threaded(lambda: _paused(work), self._large)

    async def threaded(self, work: Callable[[], T], gate: asyncio.Semaphore | None = None) -> T:
        """`work()` in a worker thread (after `gate`, if given), under the request timeout."""
        from starlette.concurrency import run_in_threadpool

        async def go() -> T:
            if gate is None:
                return await run_in_threadpool(work)
            async with gate:
                return await run_in_threadpool(work)

        timeout = self.limits.timeout
        try:
            return await (asyncio.wait_for(go(), timeout) if timeout else go())
        except asyncio.TimeoutError:
            raise TimedOut(f"the request took longer than the {timeout:g} s request timeout; "
                           "send fewer rows per request") from None
