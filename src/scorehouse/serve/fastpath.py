"""The raw-ASGI transport: every route of `serve.routes` answered without framework layers.

Starlette's request objects, routing and responses cost more than scoring one record with
a compiled model, so the service's routes are matched and answered here in plain ASGI;
everything the table does not take (404s, 405s, /docs' static files, lifespan events)
goes on to the Starlette app built from the same table (`serve.app`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from .calls import Call, Reply
from .routes import Route, find
from .service import ScoringService

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Headers(dict):
    """Request headers from an ASGI scope, looked up by lower-case name."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        super().__init__((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


class FastPath:
    """ASGI app: the table's routes through `service`; the rest to `pages` (Starlette)."""

    def __init__(self, pages: ASGIApp, service: ScoringService, routes: list[Route]):
        self.pages, self.service, self.routes = pages, service, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = find(scope["method"], scope["path"], self.routes)
            if found is not None:
                await self._answer(scope, receive, send, *found)
                return
        await self.pages(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, route: Route,
                      params: dict[str, str]) -> None:
        headers = _Headers(scope["headers"])

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        def read() -> Awaitable[bytes]:
            return self.service.bodies.read(chunks(), headers.get("content-length"))

        reply = await self.service.handle(route, Call(params, headers, read))
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": head(reply)})
        await send({"type": "http.response.body", "body": reply.body})


def head(reply: Reply) -> list[tuple[bytes, bytes]]:
    """The response headers of `reply`, as ASGI wants them."""
    out = [(b"content-length", str(len(reply.body)).encode())]
    if reply.content_type is not None:
        out.append((b"content-type", reply.content_type.encode()))
    out += [(k.lower().encode(), v.encode()) for k, v in (reply.headers or {}).items()]
    return out
