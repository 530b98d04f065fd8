"""JSON request bodies as Python clients write them: orjson first, `NaN` and `Infinity` taken.

Python's `json.dumps`, MLflow's scoring client and tritonclient (JSON tensors) write a
missing float as the bare token `NaN`, and infinities as `Infinity` / `-Infinity`. Strict
JSON has no such tokens, so orjson refuses them; a refused body that holds one is read again
with Python's own parser (MLflow's server does the same), which makes them `float("nan")` and
`float("inf")`. The schema then reads NaN as a missing value and an infinity as the
"infinite value" reject of its row. Bodies without those tokens never pay for a second parse.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ...errors import InvalidInputError

#: Byte strings whose presence makes a body orjson refused worth a second, tolerant parse.
_TOKENS = (b"NaN", b"Infinity")


def loads(body: bytes, what: str = "the body") -> Any:
    """The JSON document in `body`; InvalidInputError naming `what` when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        refused = e
    if any(t in body for t in _TOKENS):
        try:
            doc = json.loads(body.decode("utf-8"))
            # Python's parser takes what orjson refuses for good reasons too (lone UTF-16
            # surrogates, which no answer could echo); writing the document back finds them.
            orjson.dumps(doc)
        except (ValueError, TypeError, RecursionError):
            pass
        else:
            return doc
    raise InvalidInputError(f"{what} is not valid JSON: {refused} (a missing value is null; "
                            "NaN, Infinity and -Infinity are read too)")
