"""uvicorn's HTTP protocol with a deadline for the request head (line and headers).

uvicorn times out idle keep-alive connections, but not a client that connects and never
finishes its headers: each such connection is held forever. Here a connection whose
request head is not complete within the read timeout (`$SCOREHOUSE_READ_TIMEOUT`, default
`limits.READ_TIMEOUT`) is closed. The body has its own deadline (`limits.BodyReader`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import READ_TIMEOUT


def head_timeout() -> float:
    """Seconds a client has to send a request's line and headers."""
    raw = os.environ.get("SCOREHOUSE_READ_TIMEOUT")
    return float(raw) if raw else READ_TIMEOUT


class HeadDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request head does not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_timeout = head_timeout()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self.logger.info("closing a connection whose request head did not arrive within %g s",
                         self._head_timeout)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a client that connects and sends nothing

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()  # each request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
