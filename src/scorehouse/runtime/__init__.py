"""Runtimes turn an artifact into something that predicts; the scorer picks one."""

from __future__ import annotations

import logging

from ..artifact import Artifact, CompileStatus
from ..errors import ParityError, ScorehouseError
from ..schema import Schema
from .base import Output, Runtime, proper_probabilities
from .native import NativeRuntime
from .onnx import OnnxRuntime

log = logging.getLogger("scorehouse.runtime")

RUNTIMES: dict[str, type[Runtime]] = {"native": NativeRuntime, "onnx": OnnxRuntime}

#: The option that runs a compiled graph the parity gate rejected (CLI spelling).
ACCEPT_OPTION = "--accept-parity-difference"


def runtime_for(artifact: Artifact, schema: Schema, prefer: str | None = None, *,
                accept_parity_difference: bool = False) -> Runtime:
    """The runtime to score `artifact` with: `prefer` if given, else the artifact's best.

    A compiled graph runs only where the parity gate passed it at packaging; asking for it
    anyway raises ParityError quoting the recorded figures, unless
    `accept_parity_difference` is true: then it runs, the figures are logged as a warning
    and kept on the runtime (`Runtime.parity_accepted`) for results to report.
    """
    name = prefer or artifact.manifest.model.runtime
    if artifact.flavor == "onnx":
        name = "onnx"
    cls = RUNTIMES.get(name)
    if cls is None:
        raise ScorehouseError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    failed = _failed_parity(artifact) if name == "onnx" else None
    if failed is not None and not accept_parity_difference:
        raise ParityError(f"{artifact.name!r}: the compiled graph failed the parity gate at "
                          f"packaging ({failed}); use --runtime native, re-package, or pass "
                          f"{ACCEPT_OPTION} (Python: accept_parity_difference=True) to score "
                          "with it anyway")
    runtime = cls(artifact, schema)
    if failed is not None:
        log.warning("%r: scoring with a compiled graph that failed the parity gate (%s), "
                    "as %s asks", artifact.name, failed, ACCEPT_OPTION)
        runtime.parity_accepted = failed
    return runtime


def _failed_parity(artifact: Artifact) -> str | None:
    """Why the artifact's compiled graph is not to be trusted (its parity figures), or None.

    An ONNX artifact is its own model; a compiled graph counts only with status "passed".
    A graph that was never converted has no file, which `OnnxRuntime` refuses by itself.
    """
    if artifact.flavor == "onnx":
        return None
    compiled = artifact.manifest.compiled
    status = compiled.status if compiled else None
    if compiled is None or status in (None, CompileStatus.PASSED, CompileStatus.NOT_CONVERTED):
        return None
    parity = compiled.parity
    rows = f" on {parity.rows:,} rows" if parity and isinstance(parity.rows, int) else ""
    reason = compiled.reason or (parity.reason if parity else None) or "no reason recorded"
    return f"{status}{rows}: {reason}"


__all__ = ["Output", "Runtime", "NativeRuntime", "OnnxRuntime", "RUNTIMES", "ACCEPT_OPTION",
           "runtime_for", "proper_probabilities"]
