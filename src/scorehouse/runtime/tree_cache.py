"""A graph's cut and the kernel's verdict on it, kept on disk between processes.

Cutting a graph before its tree ensemble and checking the kernel against ONNX Runtime is
slow next to scoring (parsing the ensemble's attributes, a session for the ensemble alone,
the probe rows; figures: BENCHMARKS.md), and would be paid again by every batch run, Spark
worker and server start. The result depends only on the graph and on the code and libraries that produced
it, so it is kept in `$SCOREHOUSE_HOME/cache/trees/`, one file per graph, under a key that
changes with any of them; a stale or unreadable file is simply computed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import home
from .trees import SplitGraph, Trees, split

log = logging.getLogger("scorehouse.runtime")

#: Set to 0 to neither read nor write the cache.
CACHE_ENV = "SCOREHOUSE_TREE_CACHE"

_ARRAYS = ("nodes64", "nodes32", "nan_left", "roots", "depths", "leaf_values", "base")
_FLAGS = ("average", "binary", "positive")


def checked_split(model_bytes: bytes, session: Callable[[bytes], Any]) -> SplitGraph | None:
    """The graph's cut with the kernel checked against ONNX Runtime, or None where the kernel
    does not apply or disagrees; from the cache when this graph was seen before."""
    path = _path(model_bytes) if os.environ.get(CACHE_ENV, "1") != "0" else None
    if path is not None:
        found = _read(path)
        if found is not None:
            return found or None
    cut = split(model_bytes)
    if cut is not None:
        cut.check(session)
    if path is not None:
        _write(path, cut)
    return cut if cut is not None and cut.checked else None


def _path(model_bytes: bytes) -> Path:
    import numba
    import onnxruntime

    h = hashlib.sha256(model_bytes)
    # The code that cuts, walks and checks, and the libraries it ran on, are part of the key.
    here = Path(__file__).parent
    for name in ("trees.py", "tree_walk.py", "tree_cache.py"):
        h.update((here / name).read_bytes())
    h.update(f"{onnxruntime.__version__} {numba.__version__} {np.__version__}".encode())
    return home() / "cache" / "trees" / f"{h.hexdigest()[:40]}.npz"


def _read(path: Path) -> SplitGraph | Literal[False] | None:
    """The cached cut (False: the graph has none, or the kernel disagreed); None: not cached."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not bool(z["usable"]):
                return False
            flags: dict[str, Any] = {k: bool(z[k]) for k in _FLAGS}
            trees = Trees(**{k: z[k] for k in _ARRAYS}, **flags)
            return SplitGraph(z["prefix"].tobytes(), b"", trees, str(z["output"]), checked=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or older file: compute again and replace it
        log.debug("tree cache %s unreadable (%s); recomputing", path, e)
        return None


def _write(path: Path, cut: SplitGraph | None) -> None:
    usable = cut is not None and bool(cut.checked)
    fields: dict[str, Any] = {"usable": usable}
    if cut is not None and usable:
        fields.update({k: getattr(cut.trees, k) for k in _ARRAYS})
        fields.update({k: getattr(cut.trees, k) for k in _FLAGS})
        fields.update(prefix=np.frombuffer(cut.prefix, np.uint8), output=cut.output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as e:  # a read-only home: run without the cache
        log.debug("tree cache %s not written: %s", path, e)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **fields)
        os.replace(tmp, path)
    except OSError as e:
        log.debug("tree cache %s not written: %s", path, e)
        Path(tmp).unlink(missing_ok=True)
