"""Serverless: the models of `scorehouse serve` behind an AWS Lambda handler.

`handler(event, context)` answers API Gateway (REST and HTTP APIs), Function URL, ALB and
direct invocations with serve's own app (see `function`); a container image runs it with
`python -m scorehouse.serverless` (AWS's runtime interface client).

Importing this package is cheap; its names load on first use. In a Lambda execution
environment ($AWS_LAMBDA_RUNTIME_API set) the runtime's first look-up of `handler` loads the
models, in the function's initialisation phase: the first request does not wait for them,
and a model that cannot load fails the initialisation (reported to Lambda as an init
error), not a request.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .function import LambdaFunction, handler

__all__ = ["LambdaFunction", "handler"]


def __getattr__(name: str) -> Any:
    """`handler` and `LambdaFunction`, imported on first use (the handler's models loaded
    then, inside Lambda)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = importlib.import_module(".function", __name__)
    if name == "handler" and os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        function.default()  # initialisation (UsageError when SCOREHOUSE_MODELS is unset)
    value = getattr(function, name)
    globals()[name] = value
    return value
