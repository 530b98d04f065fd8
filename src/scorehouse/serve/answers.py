"""What a deployment's answer says about itself, whatever the protocol: who answered (a
field of the body in each protocol, and response headers), and which row decides.

Headers of every answer to a deployment's request (errors too: `scorehouse-deployment`):

    scorehouse-deployment: churn-api
    scorehouse-answered-by: churn/3 champion        ("default" when the default answered)
    scorehouse-fallback: churn@production missed the 50 ms deadline   (only after a fallback)
    X-Request-Id: ...                               (given, or generated; as for models)

The body's field (`answered`): `{"deployment", "request_id", "role", "ref", "model",
"version", "fallback", "reason"}`: MLflow `answered_by` beside `predictions`, native
`answered_by` (and `model`, `version`: the answering model's), V2 flat in the response's
`parameters` (`model_name` is the deployment's, `model_version` the answering model's).

A request is one decision (see `decision_record`): one model answers all its rows, so the
body and the headers say who answered the whole request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from ..routing import Answer, DeploymentSpec, Role
from ..scorer import FILE_VERSION

#: Longest header value written (a fallback's reason quotes model errors).
HEADER_CHARS = 500
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def answered(deployment: str, answer: Answer) -> dict[str, Any]:
    """Who answered, as each protocol's body carries it (`version`: the public version,
    `scorer.FILE_VERSION` for a model from a file; None when the default answered)."""
    version = answer.version
    if version is None and answer.model is not None:
        version = FILE_VERSION
    return {"deployment": deployment, "request_id": answer.request_id,
            "role": answer.role.value, "ref": answer.ref, "model": answer.model,
            "version": version, "fallback": answer.fallback, "reason": answer.reason}


def headers(deployment: str, answer: Answer | None) -> dict[str, str]:
    """The response headers of a deployment's answer (None: nobody answered)."""
    out = {"scorehouse-deployment": deployment}
    if answer is None:
        return out
    if answer.role is Role.DEFAULT:
        out["scorehouse-answered-by"] = "default"
    else:
        version = FILE_VERSION if answer.version is None else answer.version
        out["scorehouse-answered-by"] = f"{answer.model}/{version} {answer.role.value}"
    if answer.fallback:
        out["scorehouse-fallback"] = header_text(answer.reason or "fallback")
    return out


def header_text(text: str) -> str:
    """`text` as a header value: printable ASCII (others as '?'), at most HEADER_CHARS."""
    text = _UNSAFE.sub("?", text)
    return text if len(text) <= HEADER_CHARS else text[:HEADER_CHARS - 3] + "..."


def decision_record(rows: Any, spec: DeploymentSpec) -> Mapping[str, Any]:
    """The record a request's decision is made on: the record itself for one row; for
    several (a list of records or an Arrow table), the first row's `sticky_by` and
    `route_by` fields.

    Why one decision per request: one model then answers all its rows in one call (a
    protocol's answer is one result, and the headers can say who answered), and each
    off-path role scores the request once rather than once per row (their pool is
    bounded). The cost: rows of several sticky keys in one request follow the first
    row's key; send one key's rows per request to keep each key sticky.

    Raises:
        InvalidInputError: rows whose `route_by` field differs (they belong to different
            models: send each value's rows in its own request).
    """
    if isinstance(rows, Mapping):
        return rows
    fields = [f for f in (spec.sticky_by, spec.route_by.field if spec.route_by else None) if f]
    table = hasattr(rows, "column_names")
    if not fields or not (rows.num_rows if table else len(rows)):
        return {}
    if table:
        names = set(rows.column_names)
        first = {f: rows.column(f)[0].as_py() for f in fields if f in names}
    else:
        first = {f: rows[0].get(f) for f in fields if f in rows[0]}
    route = spec.route_by.field if spec.route_by else None
    if route is not None:
        values = (rows.column(route).to_pylist() if route in rows.column_names else [None]) \
            if table else [r.get(route) for r in rows]
        seen = sorted({str(v) for v in values})
        if len(seen) > 1:
            shown = ", ".join(seen[:5]) + (" ..." if len(seen) > 5 else "")
            raise InvalidInputError(
                f"deployment {spec.name} routes by {route!r}, and the rows of this request "
                f"differ there ({shown}): send each value's rows in its own request")
    return first


def default_values(answer: Answer, one_record: bool) -> list[Any]:
    """The default's value for each row of the request (`one_record`: the request was one
    record, and the default gave one value; else it gave a list, a value per row)."""
    return [answer.value] if one_record else list(answer.value)


__all__ = ["HEADER_CHARS", "answered", "decision_record", "default_values", "header_text",
           "headers"]
