"""The native protocol (`/models/{name}/predict`): records in; labels, probabilities, the
version that answered and every reject out. Bad rows do not fail the others."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import InvalidInputError
from ...scorer import Result, Scorer
from ..calls import Decoded, Reply, json_reply
from ..codecs import jsonbody
from ..rejects import reject_fields


def decode(body: bytes, headers: Mapping[str, str]) -> Decoded:
    """One record `{"column": value, ...}`, a list of them, or `{"records": [...]}`
    (which may carry the request's `"id"`).

    Raises:
        InvalidInputError: the body is not JSON, or not one of those forms.
    """
    data = jsonbody.loads(body)
    given = None
    if isinstance(data, dict) and "records" in data:
        given = data.get("id")
        data = data["records"]
    if not isinstance(data, (dict, list)) or (isinstance(data, list) and not all(
            isinstance(r, dict) for r in data)):
        raise InvalidInputError('send one record {"column": value, ...}, a list of '
                                'them, or {"records": [...]}')
    return Decoded(data, id=str(given) if given not in (None, "") else None)


def encode(result: Result, scorer: Scorer | None, request: Decoded) -> Reply:
    """`{"model", "version", "runtime", "request_id", "predictions": [...], "rejects": [...],
    ...}`:
    200, or 422 when every row was rejected; `columns` when the input's columns differ
    from the schema (lenient policy)."""
    out = {"model": scorer.name if scorer else result.model,
           "version": scorer.public_version if scorer else result.version,
           "runtime": result.runtime,
           **({"request_id": request.id} if request.id is not None else {}),
           **({"parity_accepted": result.parity_accepted} if result.parity_accepted else {}),
           "predictions": result.to_records(), **reject_fields(result)}
    if not result.column_check.clean:
        out["columns"] = result.column_check.to_dict()
    if request.answered is not None:  # a deployment: the model and version that answered
        out.update(deployment=request.answered["deployment"], model=request.answered["model"],
                   version=request.answered["version"], answered_by=request.answered)
    return json_reply(out, 422 if result.rejects and not result.n_scored else 200)


def encode_default(values: list[Any], request: Decoded) -> Reply:
    """A deployment's default answer: `{"deployment", "model": null, "version": null,
    "request_id", "predictions": [{"row", "value", "flags"}], "rejects": [], ...,
    "answered_by"}`."""
    answered = request.answered or {}
    return json_reply({"deployment": answered.get("deployment"), "model": None,
                       "version": None, "runtime": None,
                       **({"request_id": request.id} if request.id is not None else {}),
                       "predictions": [{"row": i, "value": v, "flags": []}
                                       for i, v in enumerate(values)],
                       **reject_fields(None), "answered_by": request.answered})


def error_body(message: str, status: int, extra: dict[str, Any]) -> dict[str, Any]:
    """`{"error": message, **extra}`."""
    return {"error": message, **extra}
