"""What one request may cost the server: body size, read time, rows, rejects listed, time.

A request is read under a deadline (a client that stops sending its body is answered 408
and dropped; its head: serve.protocol), refused beyond `max_body` bytes or `max_rows`
rows (413), and lists at most `max_rejects` rejects (the rest are counted by column and
reason, see serve.rejects). Small requests are
decoded, scored and encoded on the event loop, where a thread hop would cost more than
the work; large ones in a worker thread, at most `LARGE_AT_ONCE` at a time, under the
per-request timeout, so they cannot starve the loop (health probes, other requests).

Why 1 MiB by default: JSON parsing is one C call that holds the interpreter lock for a
time that grows with the body (the densest is nested empty arrays; more with the cyclic
garbage collector running, so it is paused during large requests). 1 MiB keeps that hold
near a tenth of a second on a small shared machine (the per-byte figures: BENCHMARKS.md);
`--max-body` raises it at that cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
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
#: Seconds a client has by default to send a request's head, and then its body (a late
#: body gets a 408; a late head only the connection closed, see serve.protocol).
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


class BodyReader:
    """Reads request bodies within `max_body` bytes and `read_timeout` seconds.

    One watchdog task per server checks the reads in progress once a second and cancels
    those past their deadline (a timer per request would cost the fast path more than the
    rest of reading a small body).
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._reading: dict[asyncio.Task, float] = {}  # task -> deadline (loop time)
        self._expired: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None

    async def read(self, chunks: AsyncIterator[bytes], length: str | None) -> bytes:
        """The whole body from `chunks`; raises TooLarge (413) or SlowClient (408)."""
        limit = self.limits.max_body
        if length is not None and length.isdigit() and int(length) > limit:
            raise TooLarge(f"request body of {length} bytes is over the limit of {limit}")
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())
        self._reading[task] = loop.time() + self.limits.read_timeout
        parts, size = [], 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"request body is over the limit of {limit} bytes")
                parts.append(chunk)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            if hasattr(task, "uncancel"):
                task.uncancel()
            raise SlowClient(f"the request body did not arrive within "
                             f"{self.limits.read_timeout:g} s ({size} bytes received)") from None
        finally:
            self._reading.pop(task, None)
            self._expired.discard(task)
        return b"".join(parts)

    def close(self) -> None:
        """Stop the watchdog (at server shutdown)."""
        if self._watchdog is not None:
            self._watchdog.cancel()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.limits.read_timeout / 4))
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


#: The interpreter's thread switch interval while large requests run, in seconds (5 ms
#: by default): the event loop gets the lock back this much sooner after each system call.
SWITCH_INTERVAL = 0.001

_large_lock = threading.Lock()
_large_running = 0
_saved: tuple[bool, float] = (True, 0.005)


@contextlib.contextmanager
def large_work() -> Iterator[None]:
    """While a large request is worked on in a thread: the cyclic garbage collector paused
    and a short thread switch interval, for the event loop's sake.

    Decoding a large body creates millions of containers, and each full collection they
    trigger walks all of them inside the parser's one C call: several times the parse itself
    (BENCHMARKS.md), all of it holding the interpreter lock. Request objects hold no cycles
    (reference counting frees them), so the pause loses nothing. The event loop gives the
    lock up at every system call and then waits up to the switch interval to get it back
    from the worker; answering a health probe takes several. Both settings are restored
    when the last large request ends.
    """
    global _large_running, _saved
    with _large_lock:
        if _large_running == 0:
            _saved = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(SWITCH_INTERVAL)
        _large_running += 1
    try:
        yield
    finally:
        with _large_lock:
            _large_running -= 1
            if _large_running == 0:
                if _saved[0]:
                    gc.enable()
                sys.setswitchinterval(_saved[1])


def _as_large(work: Callable[[], T]) -> T:
    with large_work():
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
        return await self.threaded(lambda: _as_large(work), self._large)

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
