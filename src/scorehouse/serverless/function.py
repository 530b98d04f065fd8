"""`serve`'s app answering AWS Lambda events in-process: one `LambdaFunction` per execution
environment, built from the environment's settings when the function initialises.

HTTP events (API Gateway REST APIs, payload 1.0; HTTP APIs, payload 1.0 or 2.0; Function
URLs, payload 2.0; ALB) become an ASGI request to the same app `scorehouse serve` runs, through
Mangum, the ASGI adapter for Lambda (base64 bodies decoded, binary answers base64-encoded);
direct invocations go the same way after `direct.http_event`. No protocol is implemented
here: the route table, the service, the data plane and the wire modules of `serve` answer.

What differs from a server, because Lambda runs one request at a time per environment and
freezes it between requests:
- no background threads are relied on: models load at initialisation (`prepare`), an
  alias is checked for moves at the start of an invocation at most every `WATCH_EVERY`
  seconds (not by the server's watcher thread), and the prediction log is flushed before
  each answer returns;
- micro-batching is off unless $SCOREHOUSE_BATCHING asks for it (requests never overlap,
  and measuring whether it pays would lengthen the cold start);
- tree ensembles are scored by ONNX Runtime alone unless $SCOREHOUSE_TREE_KERNEL says
  otherwise: importing numba and loading the compiled tree kernel is most of a cold start's
  model loading (BENCHMARKS.md), and without a warm /tmp it is compiled again at every cold
  start, while one request at a time gains nothing from it. ONNX Runtime sums the trees in
  float32, so probabilities may differ from a server using the kernel in their 7th digit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from ..serve.entry import app_from_settings
from ..serve.fastpath import FastPath
from ..serve.models import WATCH_EVERY
from ..serve.routes import Protocol
from ..serve.service import error_reply
from ..serve.settings import ServeSettings
from . import direct

log = logging.getLogger("scorehouse.serverless")

#: A prefix the API stage or custom domain mapping adds to every path, stripped before routing.
BASE_PATH_ENV = "SCOREHOUSE_BASE_PATH"
#: The runtime's switch of the tree kernel (`runtime.onnx`); off in Lambda unless set.
TREE_KERNEL_ENV = "SCOREHOUSE_TREE_KERNEL"


class LambdaFunction:
    """Lambda events answered by `app` (a `serve` app whose models are loaded and prepared).

    `base_path`: a prefix to strip from request paths (an HTTP API stage other than
    `$default`, or a custom domain's API mapping); `refresh_every`: seconds between checks of
    the registry for moved aliases (0: never).
    """

    def __init__(self, app: FastPath, *, base_path: str = "/",
                 refresh_every: float = WATCH_EVERY):
        from mangum import Mangum

        self.app, self.service = app, app.service
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.adapter = Mangum(app, lifespan="off", api_gateway_base_path=base_path)
        self.refresh_every = refresh_every
        self._checked = time.monotonic()

    @classmethod
    def from_settings(cls, settings: ServeSettings, **options: Any) -> LambdaFunction:
        """Load and prepare the models of `settings` now (the function's initialisation).

        Raises:
            ScorehouseError: as `scorehouse serve` does for a model that cannot be loaded.
        """
        app = app_from_settings(settings, preload=True, watch=False)  # `_refresh` checks
        return cls(app, **options)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LambdaFunction:
        """The function the environment describes: SCOREHOUSE_MODELS and the other serve
        settings (`ServeSettings.from_env`), and $SCOREHOUSE_BASE_PATH. Reading the
        process' own environment (`env` None), it turns the tree kernel off unless
        $SCOREHOUSE_TREE_KERNEL is set (see the module docstring).

        Raises:
            UsageError: SCOREHOUSE_MODELS unset, or a setting that does not parse.
        """
        if env is None:
            os.environ.setdefault(TREE_KERNEL_ENV, "0")
            env = os.environ
        settings = ServeSettings.from_env(env, batching="off")
        return cls.from_settings(settings, base_path=env.get(BASE_PATH_ENV) or "/")

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The answer to one event: the HTTP response of the event's trigger, or for a direct
        invocation `{"statusCode", "headers", "body"}` (see `direct`)."""
        self._refresh()
        asyncio.set_event_loop(self.loop)  # other code of the process may have replaced it
        if direct.is_direct(event):
            answer = self._direct(event, context)
        else:
            answer = self.adapter(event, context)
        if self.service.monitoring.logger is not None:
            self.service.monitoring.flush()  # the environment may freeze once we return
        return answer

    def close(self) -> None:
        """Stop what the service started and close the event loop (tests; Lambda just
        ends the process)."""
        self.service.bodies.close()
        self.service.models.close()
        self.service.monitoring.close()
        self.loop.run_until_complete(asyncio.sleep(0))  # the cancelled watchdog ends
        self.loop.close()

    def _direct(self, event: Any, context: Any) -> dict[str, Any]:
        protocol = Protocol.NATIVE
        try:
            if not isinstance(event, Mapping):
                raise InvalidInputError("a direct invocation's event is a JSON object: a "
                                        "scoring body with \"model\" (see the README)")
            protocol = direct.protocol_of(event)
            model = event.get("model")
            if model is None and protocol is not Protocol.MLFLOW and \
                    len(self.service.models.models) == 1:
                model = next(iter(self.service.models.models))
            version = event.get("version")
            path = direct.path_of(protocol, None if model is None else str(model),
                                  None if version is None else str(version))
        except InvalidInputError as e:
            reply = error_reply(e, protocol)
            return direct.answer({"statusCode": reply.status, "body": reply.body.decode(),
                                  "headers": {"content-type": reply.content_type}})
        request_id = getattr(context, "aws_request_id", None)
        return direct.answer(self.adapter(direct.http_event(event, protocol, path, request_id),
                                          context))

    def _refresh(self) -> None:
        """Follow moved aliases and archived pins, at most every `refresh_every` seconds."""
        if not self.refresh_every or time.monotonic() - self._checked < self.refresh_every:
            return
        self._checked = time.monotonic()
        try:
            self.service.models.refresh()
            self.service.models.drop_archived()
        except Exception:  # keep serving the loaded version; say why it did not move
            log.exception("checking the registry for moved aliases failed")


_function: LambdaFunction | None = None


def default() -> LambdaFunction:
    """The process' function, built from the environment on first use."""
    global _function
    if _function is None:
        _function = LambdaFunction.from_env()
    return _function


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The Lambda handler (`scorehouse.serverless.handler`): `event` answered by the function
    that SCOREHOUSE_MODELS and the other SCOREHOUSE_* variables describe (built at the
    function's initialisation in Lambda, else on the first call).

    Raises:
        UsageError, ScorehouseError: on the first call, when the function cannot be built
            (no SCOREHOUSE_MODELS, a model that cannot be loaded): Lambda reports it as the
            invocation's error. Bad requests never raise: they are 4xx answers.
    """
    return default()(event, context)
