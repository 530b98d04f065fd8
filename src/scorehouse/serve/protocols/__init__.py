"""One module per wire format, each with the same three functions.

    decode(body: bytes, headers: Mapping[str, str]) -> calls.Decoded   (InvalidInputError: 400)
    encode(result: Result, scorer: Scorer, request: calls.Decoded) -> calls.Reply
    error_body(message: str, status: int, extra: dict) -> dict         (the JSON of an error)

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
