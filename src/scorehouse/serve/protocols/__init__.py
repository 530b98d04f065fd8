"""One module per wire format, each with the same four functions.

    decode(body: bytes, headers: Mapping[str, str]) -> calls.Decoded   (InvalidInputError: 400)
    encode(result: Result, scorer: Scorer | None, request: calls.Decoded) -> calls.Reply
    encode_default(values: list, request: calls.Decoded) -> calls.Reply
    error_body(message: str, status: int, extra: dict) -> dict         (the JSON of an error)

`encode` answers a model's request (`scorer`: the model) or a deployment's (`scorer` None:
`request.answered` says who answered, and each protocol puts it in its body);
`encode_default` a deployment's default answer (a value per row, no model).

They sit on the pure codecs of `serve.codecs` (bytes <-> rows and results) and add what
HTTP needs: statuses, content types, headers.
"""

from __future__ import annotations

from types import ModuleType

from ..routes import Protocol
from . import mlflow, native, v2

#: The module of each protocol.
WIRE: dict[Protocol, ModuleType] = {Protocol.MLFLOW: mlflow, Protocol.V2: v2,
                                    Protocol.NATIVE: native}

__all__ = ["WIRE", "mlflow", "native", "v2"]
