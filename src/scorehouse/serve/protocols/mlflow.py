"""MLflow's scoring protocol (`/invocations`): the codec of `codecs.mlflow`, with MLflow's
error bodies `{"error_code": "BAD_REQUEST", "message": "..."}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...scorer import Result, Scorer
from ..calls import JSON, Decoded, Reply, json_reply
from ..codecs import mlflow as codec
from ..rejects import reject_fields, rejected


def decode(body: bytes, headers: Mapping[str, str]) -> Decoded:
    """Rows from a JSON body (`dataframe_split`, `dataframe_records`, `instances`, `inputs`)
    or a CSV one, by Content-Type.

    Raises:
        InvalidInputError: an unsupported content type, or a body of none of those forms.
    """
    return Decoded(codec.decode(body, headers.get("content-type") or JSON))


def encode(result: Result, scorer: Scorer | None, request: Decoded) -> Reply:
    """200 `{"predictions": [...]}`, one object per row; 400 naming the rejects when any
    row was rejected (MLflow answers all rows or none). A deployment's answer has
    `answered_by` beside `predictions` (and beside the rejects)."""
    extra = None if request.answered is None else {"answered_by": request.answered}
    if result.rejects:
        return json_reply({"error_code": "BAD_REQUEST", "message": str(rejected(result)),
                           **reject_fields(result), **(extra or {})}, 400)
    return Reply(200, codec.encode(result, extra))


def encode_default(values: list[Any], request: Decoded) -> Reply:
    """A deployment's default answer: 200 `{"predictions": [{"value": v}, ...],
    "answered_by": {...}}`."""
    return json_reply({"predictions": [{"value": v} for v in values],
                       "answered_by": request.answered})


def error_body(message: str, status: int, extra: dict[str, Any]) -> dict[str, Any]:
    """`{"message", "error_code", **extra}`, the code as MLflow's server names it."""
    code = "BAD_REQUEST" if status < 500 else "TIMEOUT" if status == 504 else \
        "UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
    return {"message": message, "error_code": code, **extra}
