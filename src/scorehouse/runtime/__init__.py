"""Runtimes turn an artifact into something that predicts; the scorer picks one."""

from __future__ import annotations

from ..artifact import Artifact
from ..errors import ScorehouseError
from ..schema import Schema
from .base import Output, Runtime
from .native import NativeRuntime
from .onnx import OnnxRuntime

RUNTIMES: dict[str, type[Runtime]] = {"native": NativeRuntime, "onnx": OnnxRuntime}


def runtime_for(artifact: Artifact, schema: Schema, prefer: str | None = None) -> Runtime:
    """The runtime to score `artifact` with: `prefer` if given, else the artifact's best."""
    name = prefer or artifact.manifest["model"].get("runtime", "native")
    if artifact.flavor == "onnx":
        name = "onnx"
    cls = RUNTIMES.get(name)
    if cls is None:
        raise ScorehouseError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    return cls(artifact, schema)


__all__ = ["Output", "Runtime", "NativeRuntime", "OnnxRuntime", "RUNTIMES", "runtime_for"]
