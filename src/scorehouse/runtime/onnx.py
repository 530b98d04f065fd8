"""The ONNX Runtime runtime: for ONNX models, and for models compiled to ONNX at packaging."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ModelError
from .base import Output, Runtime, binary_proba

_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(string)": object,
          "tensor(bool)": bool}

#: Where packaging puts the compiled graph of a non-ONNX model.
COMPILED_FILE = "compiled/model.onnx"


def session(model_bytes: bytes) -> Any:
    """An ONNX Runtime session on the CPU, quiet, for one graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


class OnnxRuntime(Runtime):
    """Feeds columns to an ONNX Runtime session: one input per column, or one stacked matrix."""

    name = "onnx"

    def __init__(self, artifact, schema, model_bytes: bytes | None = None):
        super().__init__(artifact, schema)
        if model_bytes is None:
            if artifact.flavor == "onnx":
                model_bytes = artifact.model()
            elif COMPILED_FILE in artifact.files:
                model_bytes = artifact.files[COMPILED_FILE]
            else:
                why = artifact.manifest.get("compiled", {}).get("reason", "it was not compiled")
                raise ModelError(f"{artifact.name!r} has no ONNX graph to run: {why}; "
                                 "use the native runtime")
        self.session = session(model_bytes)
        self.inputs = self.session.get_inputs()
        names = set(schema.names)
        self.per_column = len(self.inputs) > 1 or self.inputs[0].name in names and len(names) == 1
        if self.per_column and not {i.name for i in self.inputs} <= names:
            raise ModelError(f"ONNX inputs {[i.name for i in self.inputs]} do not match the "
                             f"schema's columns {schema.names}")
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._output_types = {o.name: o.type for o in self.session.get_outputs()}
        # The single-row path: (input name, numpy dtype) once, so predict_row does no lookups.
        self._row_inputs = [(i.name, _NUMPY.get(i.type, np.float32)) for i in self.inputs]
        self._proba_index = next((k for k, o in enumerate(self.outputs)
                                  if o == "probabilities"), None)
        self._buffers = threading.local()  # one-row input arrays, reused per thread

    def _feed(self, columns: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        if self.per_column:
            feed = {}
            for name, dtype in self._row_inputs:
                v = columns[name]
                if dtype is object:
                    v = np.where(v == None, "", v).astype(object)  # noqa: E711
                feed[name] = np.asarray(v, dtype=dtype).reshape(n, 1)
            return feed
        spec = self.inputs[0]
        dtype = _NUMPY.get(spec.type, np.float32)
        matrix = np.column_stack([np.asarray(columns[c], dtype="float64")
                                  for c in self.schema.names]).astype(dtype, copy=False)
        return {spec.name: matrix}

    def predict(self, columns: Mapping[str, np.ndarray], n: int) -> Output:
        """Predict n rows in one session run."""
        return self._output(self.session.run(None, self._feed(columns, n)))

    def predict_row(self, row: Mapping[str, Any]) -> Output:
        """Predict one row straight from its scalars: no DataFrame, no column arrays."""
        if not self.per_column:
            return super().predict_row(row)
        feed = getattr(self._buffers, "feed", None)
        if feed is None:
            feed = self._buffers.feed = {name: np.empty((1, 1), dtype=dtype)
                                         for name, dtype in self._row_inputs}
        for name, dtype in self._row_inputs:
            v = row.get(name)
            if v is None:
                v = "" if dtype is object else math.nan
            feed[name][0, 0] = v
        if self._proba_index is None or self.classes is None:
            return self._output(self.session.run(None, feed))
        p = self.session.run([self.outputs[self._proba_index]], feed)[0][0].tolist()
        if len(p) == 1:
            p = [1.0 - p[0], p[0]]
        total = sum(p)  # float32 outputs: rescale so the row sums to 1, as natively
        proba = np.array([[x / total for x in p]])
        return Output(labels=self.classes[[p.index(max(p))]], probabilities=proba)

    def _output(self, results: list[Any]) -> Output:
        by_name = dict(zip(self.outputs, results, strict=True))
        if self.task == "regression":
            return Output(values=np.asarray(results[0], dtype="float64").reshape(-1))
        proba = None
        for name, value in by_name.items():
            kind = self._output_types[name]
            if kind.startswith("seq(map"):
                proba = np.array([[row[c] for c in self.classes] for row in value], dtype="float64")
            elif kind == "tensor(float)" or kind == "tensor(double)":
                arr = _normalised(value)
                if arr.ndim == 2 and arr.shape[1] == len(self.classes):
                    proba = arr
                elif arr.ndim == 2 and arr.shape[1] == 1 and len(self.classes) == 2:
                    proba = binary_proba(arr)
        if proba is None:
            return Output(labels=np.asarray(results[0], dtype=object).reshape(-1))
        return Output(labels=self.labels_from(proba), probabilities=proba)


def _normalised(proba: np.ndarray) -> np.ndarray:
    """Probabilities as float64; float32 rows are rescaled to sum to 1 as the native ones do."""
    out = np.asarray(proba, dtype=np.float64)
    if proba.dtype == np.float32 and out.ndim == 2 and out.shape[1] > 1:
        out /= out.sum(axis=1, keepdims=True)
    return out
