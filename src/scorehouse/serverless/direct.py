"""Direct invocation (`aws lambda invoke`, an SDK's `Invoke`, Step Functions): a JSON event
that is a scoring body plus a few control keys, turned into the HTTP request `serve` answers.

An event:

    {"model": "churn", "version": 3, "protocol": "mlflow",
     "headers": {"x-request-id": "..."}, "dataframe_split": {...}}

`model` (optional when the function serves one model), `version` (optional: a pinned
version), `protocol` (optional: "mlflow", "v2" or "native", else read from the body's keys:
`inputs` holding V2 tensors is V2, any other MLflow key (`dataframe_split`,
`dataframe_records`, `instances`, `inputs`) is MLflow, anything else is native: `records`
or the remaining keys as one record) and `headers` (optional request headers) are taken
out; the rest is the body, sent as JSON to the route of the protocol. A model whose columns
include one of those four names is scored through `{"records": [...]}`.

The answer is `{"statusCode": int, "headers": {...}, "body": <the route's JSON answer>}`:
the same body `serve` gives for the same request, errors included (4xx and the protocol's
JSON error body), since the same app answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import InvalidInputError
from ..serve.codecs.mlflow import KEYS as MLFLOW_KEYS
from ..serve.routes import Protocol

#: The keys of a direct event that are not part of the body.
CONTROL = ("model", "version", "protocol", "headers")


def is_direct(event: Any) -> bool:
    """True when `event` is not one of the HTTP events the adapter reads (API Gateway REST
    and HTTP APIs, Function URLs, ALB: all carry `requestContext`; Lambda@Edge `Records`)."""
    return not (isinstance(event, Mapping) and ("requestContext" in event or "Records" in event))


def protocol_of(event: Mapping[str, Any]) -> Protocol:
    """The protocol a direct event speaks: its `protocol` key, else read from the body's keys.

    Raises:
        InvalidInputError: a `protocol` other than mlflow, v2 or native.
    """
    given = event.get("protocol")
    if given is not None:
        try:
            return Protocol(str(given).lower())
        except ValueError:
            raise InvalidInputError(f"protocol must be mlflow, v2 or native, not {given!r}"
                                    ) from None
    inputs = event.get("inputs")
    if isinstance(inputs, list) and inputs and all(
            isinstance(t, Mapping) and "datatype" in t for t in inputs):
        return Protocol.V2
    if any(k in event for k in MLFLOW_KEYS):
        return Protocol.MLFLOW
    return Protocol.NATIVE


def path_of(protocol: Protocol, model: str | None, version: str | None) -> str:
    """The route of `protocol` for `model` (None: the only model, named by the caller for V2
    and native) and `version` (None: the current one).

    Raises:
        InvalidInputError: a version without a model, or no model where the route needs one.
    """
    if version is not None and model is None:
        raise InvalidInputError("a direct event with a version names its model too")
    if model is None:
        if protocol is Protocol.MLFLOW:
            return "/invocations"
        raise InvalidInputError("this function serves several models: name one in the "
                                "event's \"model\"")
    pinned = f"/versions/{quote(version, safe='')}" if version is not None else ""
    name = quote(model, safe="")
    if protocol is Protocol.V2:
        return f"/v2/models/{name}{pinned}/infer"
    if protocol is Protocol.MLFLOW:
        return f"/models/{name}{pinned}/invocations"
    return f"/models/{name}{pinned}/predict"


def http_event(event: Mapping[str, Any], protocol: Protocol, path: str,
               request_id: str | None) -> dict[str, Any]:
    """The direct event as an HTTP API (payload 2.0) POST of its body to `path`."""
    body = {k: v for k, v in event.items() if k not in CONTROL}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    headers.setdefault("content-type", "application/json")
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers, "isBase64Encoded": False,
        "body": orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "", "userAgent": "lambda-invoke"},
                           "requestId": request_id or "", "routeKey": "$default",
                           "stage": "$default"},
    }


def answer(response: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's HTTP answer as a direct invocation's: the body parsed from JSON."""
    body: Any = response.get("body", "")
    try:
        body = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:  # not JSON (no scoring route answers so): as it came
        pass
    return {"statusCode": response["statusCode"], "headers": response.get("headers") or {},
            "body": body}
