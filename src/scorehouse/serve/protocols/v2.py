"""The Open Inference Protocol (KServe V2): JSON tensors and the binary tensor extension,
over the codec of `codecs.v2`; errors are `{"error": "..."}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import __version__
from ...scorer import Result, Scorer
from ..calls import Decoded, Reply, json_reply
from ..codecs import v2 as codec
from ..rejects import rejected

HEADER = codec.HEADER


def decode(body: bytes, headers: Mapping[str, str]) -> Decoded:
    """The inputs of an infer request (one record for one row, else an Arrow table) and its
    JSON header; binary data follows the header when `Inference-Header-Content-Length` says so.

    Raises:
        InvalidInputError: a malformed request (see `codecs.v2.decode`).
    """
    rows, doc = codec.decode(body, headers.get(HEADER.lower()))
    given = doc.get("id")
    return Decoded(rows, doc, str(given) if given not in (None, "") else None)


def encode(result: Result, scorer: Scorer | None, request: Decoded) -> Reply:
    """200 with the output tensors (binary ones after the JSON header when asked for);
    `id` is the request's id (`request.id`: given or generated).

    Raises:
        InvalidInputError: a row was rejected (V2 answers all rows or none), or the request
            asked for an output the model does not have.
    """
    if result.rejects:
        raise rejected(result)
    doc = request.doc if request.id is None or request.doc.get("id") else \
        {**request.doc, "id": request.id}
    payload, header = codec.encode(result, scorer, doc, request.answered)
    if header is None:
        return Reply(200, payload)
    return Reply(200, payload, "application/octet-stream", {HEADER: str(header)})


def encode_default(values: list[Any], request: Decoded) -> Reply:
    """A deployment's default answer: one output tensor `value` (JSON data, whatever
    outputs were asked for: the default has no other), who answered in `parameters`."""
    answered = request.answered or {}
    return json_reply({"model_name": answered.get("deployment", ""), "model_version": "",
                       "id": request.doc.get("id") or request.id or "",
                       "outputs": [codec.value_tensor(values)],
                       "parameters": codec.parameters(answered)})


def error_body(message: str, status: int, extra: dict[str, Any]) -> dict[str, Any]:
    """`{"error": message, **extra}` (the protocol's error object)."""
    return {"error": message, **extra}


def server_metadata() -> dict[str, Any]:
    """`GET /v2`: name, version and the extensions served."""
    return {"name": "scorehouse", "version": __version__,
            "extensions": ["binary_tensor_data", "model_repository"]}


model_metadata = codec.model_metadata
