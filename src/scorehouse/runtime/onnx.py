"""The ONNX Runtime runtime: for ONNX models, and for models compiled to ONNX at packaging."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from ..artifact.files import one_line
from ..artifact.flavors import COMPILED_FILE
from ..errors import ArtifactError, ModelError
from .base import Output, Runtime, binary_proba
from .tree_cache import checked_split
from .trees import SplitGraph

_NUMPY = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(string)": object,
          "tensor(bool)": bool}


#: Rows per session run when a large batch is split across threads: small enough for the
#: working set to stay in cache, large enough that the fixed cost of a run is noise
#: (figures: BENCHMARKS.md, "Figures behind design choices").
CHUNK_ROWS = 8192
#: Batches from this size up are split into chunks scored on parallel threads.
PARALLEL_MIN_ROWS = 4 * CHUNK_ROWS


def session(model_bytes: bytes, threads: int = 0) -> Any:
    """An ONNX Runtime session on the CPU, quiet, for one graph (threads=0: ORT's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxRuntime(Runtime):
    """Feeds columns to an ONNX Runtime session: one input per column, or one stacked matrix."""

    name = "onnx"
    parallel_batches = True

    def __init__(self, artifact, schema, model_bytes: bytes | None = None):
        super().__init__(artifact, schema)
        if model_bytes is None:
            if artifact.flavor == "onnx":
                model_bytes = artifact.model()
            elif COMPILED_FILE in artifact.files:
                model_bytes = artifact.files[COMPILED_FILE]
            else:
                compiled = artifact.manifest.compiled
                why = (compiled.reason if compiled and compiled.holds("reason")
                       else "it was not compiled")
                raise ModelError(f"{artifact.name!r} has no ONNX graph to run: {why}; "
                                 "use the native runtime")
        try:
            self.session = session(model_bytes)
        except Exception as e:  # noqa: BLE001 - ORT's own classes: the graph is unreadable
            raise ArtifactError(f"{artifact.source}: ONNX Runtime cannot load the model's graph "
                                f"({one_line(e)})") from None
        self._model_bytes = model_bytes
        self._chunk_session: Any = None  # opened on the first large batch
        self._chunk_lock = threading.Lock()
        self.workers = usable_cpus()
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
        self._fetch = self._probabilities_only()
        # The graph cut before its tree ensemble (see trees.py); found on the first
        # prediction, or by `prepare`, so loading a model pays nothing for it.
        self._split: SplitGraph | Literal[False] | None = False  # False: not looked for yet
        self._prefix: dict[int, Any] = {}  # threads -> session of the graph's prefix

    def _probabilities_only(self) -> list[str] | None:
        """["probabilities"] when that output alone decides the result, else None (fetch all).

        Labels are the argmax of the probabilities anyway; fetching the label tensor too would
        turn every row's label into a Python object for nothing.
        """
        if self._proba_index is None or self.classes is None or self.task == "regression":
            return None
        scores = [o for o in self.outputs if self._output_types[o].startswith("seq(map")
                  or self._output_types[o] in ("tensor(float)", "tensor(double)")]
        return ["probabilities"] if scores == ["probabilities"] else None

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
        """Predict n rows: one session run, or parallel chunks for a large batch."""
        if n < PARALLEL_MIN_ROWS or self.workers < 2:
            return self._run_batch(self.session, self._feed(columns, n), n)
        return self._predict_chunked(columns, n)

    def _run_batch(self, sess: Any, feed: Mapping[str, np.ndarray], n: int) -> Output:
        """Run a batch through `sess`, or its prefix + the tree kernel where that applies.

        Where the kernel applies it takes every batch, down to one row: ORT's ensemble sums
        in float32, the kernel in float64, and a row must get the same digits at any size.
        """
        cut = self.tree_kernel()
        if cut is None:
            return self._run(sess, feed)
        threads = 1 if sess is self._chunk_session else 0
        prefix = self._prefix.get(threads)
        if prefix is None:
            prefix = self._prefix[threads] = session(cut.prefix, threads=threads)
        X = prefix.run(None, feed)[0]
        return self._output({cut.output: cut.trees.predict(X)})

    def prepare(self) -> None:
        """Cut the graph and compile the tree kernel now rather than on the first batch."""
        cut = self.tree_kernel()
        if cut is not None:
            cut.trees.warm()

    def tree_kernel(self) -> SplitGraph | None:
        """The graph cut before its tree ensemble, whose trees every batch is scored with
        (trees.py), or None where ONNX Runtime scores alone: no ensemble the kernel handles,
        a kernel that disagreed with ONNX Runtime, or SCOREHOUSE_TREE_KERNEL=0.

        Looked for on the first call (or read from the cache of checked cuts), then kept.
        """
        if self._split is False:  # looked for once; single rows then take no lock
            with self._chunk_lock:
                if self._split is False:
                    self._split = self._find_split()
        return self._split or None

    def _find_split(self) -> SplitGraph | None:
        if os.environ.get("SCOREHOUSE_TREE_KERNEL", "1") == "0":
            return None
        if self.task != "regression" and self._fetch is None:
            return None  # outputs beyond the probabilities: the kernel makes only those
        try:
            return checked_split(self._model_bytes, session)
        except ImportError:  # numba missing: ONNX Runtime alone is correct, only slower
            return None

    def _predict_chunked(self, columns: Mapping[str, np.ndarray], n: int) -> Output:
        # ORT parallelises only some operators (the tree ensemble) over its intra-op threads;
        # string imputation, concatenation and one-hot run on one thread. One thread per CPU,
        # each running whole chunks through a single-threaded session (session.run is
        # thread-safe and releases the GIL), keeps every core busy all along. Rows are
        # computed independently, so the output is the same as one run's.
        chunk_session = self._single_threaded_session()
        # Equal chunks, as many per thread, of at most CHUNK_ROWS: no thread idles at the end.
        rounds = math.ceil(n / (self.workers * CHUNK_ROWS))
        size = math.ceil(n / (self.workers * rounds))
        starts = range(0, n, size)

        def score(start: int) -> Output:
            stop = min(start + size, n)
            part = {name: values[start:stop] for name, values in columns.items()}
            return self._run_batch(chunk_session, self._feed(part, stop - start), stop - start)

        with ThreadPoolExecutor(min(self.workers, len(starts))) as pool:
            return Output.concat(list(pool.map(score, starts)))

    def use_one_thread(self) -> None:
        """Run every batch through the single-threaded session, never on parallel chunks."""
        self.session = self._single_threaded_session()
        self.workers = 1
        self.parallel_batches = False

    def _single_threaded_session(self) -> Any:
        with self._chunk_lock:
            if self._chunk_session is None:
                self._chunk_session = session(self._model_bytes, threads=1)
            return self._chunk_session

    def _run(self, sess: Any, feed: Mapping[str, np.ndarray]) -> Output:
        if self._fetch is not None:
            out = self._output(dict(zip(self._fetch, sess.run(self._fetch, feed), strict=True)))
            if out.probabilities is not None:
                return out
        return self._output(dict(zip(self.outputs, sess.run(None, feed), strict=True)))

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
        # One thread: a single row gains nothing from ORT's pool, and a busy server (or
        # several workers) would pay for its spinning threads on every core.
        sess = self._chunk_session or self._single_threaded_session()
        if self.tree_kernel() is not None:  # the digits of every other batch size
            return self._run_batch(sess, feed, 1)
        if self._proba_index is None or self.classes is None:
            return self._run(sess, feed)
        p = sess.run([self.outputs[self._proba_index]], feed)[0][0].tolist()
        if len(p) == 1:
            p = [1.0 - p[0], p[0]]
        total = sum(p)  # float32 outputs: rescale so the row sums to 1, as natively
        proba = np.array([[x / total for x in p]])
        return Output(labels=self.classes[[p.index(max(p))]], probabilities=proba)

    def _output(self, by_name: Mapping[str, Any]) -> Output:
        first = next(iter(by_name.values()))
        if self.task == "regression":
            return Output(values=np.asarray(first, dtype="float64").reshape(-1))
        assert self.classes is not None  # not a regressor: a classifier
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
            return Output(labels=np.asarray(first, dtype=object).reshape(-1))
        return Output(labels=self.labels_from(proba), probabilities=proba)


def _normalised(proba: np.ndarray) -> np.ndarray:
    """Probabilities as float64; float32 rows are rescaled to sum to 1 as the native ones do."""
    out = np.asarray(proba, dtype=np.float64)
    if proba.dtype == np.float32 and out.ndim == 2 and out.shape[1] > 1:
        out /= out.sum(axis=1, keepdims=True)
    return out
