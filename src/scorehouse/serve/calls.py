"""What the service's handlers take and give, whichever transport carried the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = "application/json"


@dataclass
class Reply:
    """An answer: status, body, content type (None: no Content-Type header) and extra headers."""

    status: int
    body: bytes
    content_type: str | None = JSON
    headers: dict[str, str] | None = None


def json_reply(data: Any, status: int = 200) -> Reply:
    """`data` as a JSON answer (numpy scalars and arrays written as plain JSON)."""
    return Reply(status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


@dataclass
class Call:
    """One request as the handlers see it.

    `params`: the path parameters (e.g. {"name": "churn", "version": "3"});
    `headers`: request headers by lower-case name; `read()`: the body, read within the
    server's limits (raises `limits.TooLarge` / `limits.SlowClient`).
    """

    params: Mapping[str, str]
    headers: Mapping[str, str]
    read: Callable[[], Awaitable[bytes]]
    #: The model and version that answered (set once the model is found), for metrics.
    served: tuple[str, str] = ("", "")
    #: The request's id (`X-Request-Id`, the body's `id`, or generated): answered in the
    #: `X-Request-Id` header and logged as the id of its rows.
    request_id: str | None = None
    #: Headers every answer to this request carries, errors included (a deployment's
    #: `scorehouse-answered-by`...), set by the data plane.
    reply_headers: dict[str, str] | None = None


@dataclass
class Decoded:
    """A scoring request as a protocol read it.

    `rows`: one record (a dict of column -> value), a list of records or an Arrow table;
    `doc`: what of the request the answer needs (V2: its JSON header, for `id` and the
    outputs asked for); empty for the other protocols.
    """

    rows: Any
    doc: dict[str, Any] = field(default_factory=dict)
    #: The request id the body carries (V2's `id`; native `{"id", "records"}`), if any.
    id: str | None = None
    #: Who answered, for a deployment's request (`serve.answers.answered`): each protocol
    #: puts it in its answer's body. None for a model's request.
    answered: dict[str, Any] | None = None
