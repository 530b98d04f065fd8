"""A local Lambda Runtime API (version 2018-06-01) for tests: it hands events to a runtime
interface client and records what the client answers.

It implements the documented paths (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
- GET  /2018-06-01/runtime/invocation/next: the next event as the body, with the
  `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
  headers; it waits while no event is queued, as Lambda does;
- POST /2018-06-01/runtime/invocation/{id}/response and /{id}/error: the handler's answer or
  error (`{"errorMessage", "errorType", ...}`), answered 202;
- POST /2018-06-01/runtime/init/error: an error before the first event, answered 202.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:scorehouse"


class RuntimeApi:
    """The Runtime API on 127.0.0.1 (a free port), as a context manager.

    `invoke(event)` queues an event and returns its request id; `result(id)` waits for the
    client's answer: ("response", body) or ("error", body); `init_error` holds an
    initialisation error's body once one was posted.
    """

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: dict[str, tuple[str, Any]] = {}
        self.init_error: Any = None
        self.done = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RuntimeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def invoke(self, event: Any) -> str:
        """Queue `event` (JSON-encoded here) for the client; returns its request id."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        return request_id

    def result(self, request_id: str, timeout: float = 60) -> tuple[str, Any]:
        """("response" or "error", the posted JSON) for `request_id`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self.done:
            while request_id not in self.results:
                left = deadline - time.monotonic()
                assert left > 0, f"no answer to invocation {request_id}"
                self.done.wait(left)
            return self.results[request_id]

    def wait_init_error(self, timeout: float = 60) -> Any:
        """The posted initialisation error, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self.done:
            while self.init_error is None:
                left = deadline - time.monotonic()
                assert left > 0, "no initialisation error was posted"
                self.done.wait(left)
            return self.init_error

    def _record(self, key: str | None, kind: str, body: bytes) -> None:
        value = json.loads(body) if body else None
        with self.done:
            if key is None:
                self.init_error = value
            else:
                self.results[key] = (kind, value)
            self.done.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404)
                request_id, body = api.events.get()  # waits, as Lambda does between events
                self._reply(200, body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                    "Lambda-Runtime-Invoked-Function-Arn": ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;"
                                               "Parent=9a9197af755a6419;Sampled=1"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api._record(None, "error", body)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response",
                                                                                  "error"):
                    api._record(parts[1], parts[2], body)
                else:
                    return self._reply(404)
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        return Handler
