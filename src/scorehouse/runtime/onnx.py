"""The ONNX Runtime runtime, for models packaged as ONNX files."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ModelError
from .base import Output, Runtime, binary_proba

_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(string)": object,
          "tensor(bool)": bool}


class OnnxRuntime(Runtime):
    """Feeds columns to an ONNX Runtime session: one input per column, or one stacked matrix."""

    name = "onnx"

    def __init__(self, artifact, schema, model_bytes: bytes | None = None):
        super().__init__(artifact, schema)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("ONNX models need onnxruntime: pip install 'scorehouse[onnx]'") \
                from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes or artifact.model(), opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        names = set(schema.names)
        self.per_column = len(self.inputs) > 1 or self.inputs[0].name in names and len(names) == 1
        if self.per_column and not {i.name for i in self.inputs} <= names:
            raise ModelError(f"ONNX inputs {[i.name for i in self.inputs]} do not match the "
                             f"schema's columns {schema.names}")
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._output_types = {o.name: o.type for o in self.session.get_outputs()}

    def _feed(self, columns: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        if self.per_column:
            feed = {}
            for i in self.inputs:
                v = columns[i.name]
                dtype = _NUMPY.get(i.type, np.float32)
                if dtype is object:
                    v = np.where(v == None, "", v).astype(object)  # noqa: E711
                feed[i.name] = np.asarray(v, dtype=dtype).reshape(n, 1)
            return feed
        spec = self.inputs[0]
        dtype = _NUMPY.get(spec.type, np.float32)
        matrix = np.column_stack([np.asarray(columns[c], dtype="float64")
                                  for c in self.schema.names]).astype(dtype, copy=False)
        return {spec.name: matrix}

    def predict(self, columns: Mapping[str, np.ndarray], n: int) -> Output:
        """Predict n rows in one session run."""
        results = self.session.run(None, self._feed(columns, n))
        by_name = dict(zip(self.outputs, results, strict=True))
        if self.task == "regression":
            return Output(values=np.asarray(results[0], dtype="float64").reshape(-1))
        proba = None
        for name, value in by_name.items():
            kind = self._output_types[name]
            if kind.startswith("seq(map"):
                proba = np.array([[row[c] for c in self.classes] for row in value], dtype="float64")
            elif kind == "tensor(float)" or kind == "tensor(double)":
                arr = np.asarray(value, dtype="float64")
                if arr.ndim == 2 and arr.shape[1] == len(self.classes):
                    proba = arr
                elif arr.ndim == 2 and arr.shape[1] == 1 and len(self.classes) == 2:
                    proba = binary_proba(arr)
        if proba is None:
            return Output(labels=np.asarray(results[0], dtype=object).reshape(-1))
        return Output(labels=self.labels_from(proba), probabilities=proba)
