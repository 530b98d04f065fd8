"""The compiled walks of `trees.Trees` (numba; compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np


def _walker(missing: bool):  # noqa: ANN202 - a numba dispatcher
    """The walk, compiled with or without NaN routing (`missing` is a constant to numba)."""

    @numba.njit(nogil=True, cache=True)
    def walk(X, nodes, nan_left, roots, depths, leaf_values, out, block):  # pragma: no cover - compiled
        """Add each tree's leaf values for every row of X to `out`, `block` rows at a time.

        `nodes` holds one 16-byte record per node (threshold t, feature f, children l for
        x <= t and r), so a step reads one cache line; `nan_left[k]`: NaN goes to l. Trees
        are walked two at a time: twice the independent loads in flight per row, which is
        what a walk waits on.
        """
        n = X.shape[0]
        width = leaf_values.shape[1]
        trees = roots.shape[0]
        a = np.empty(block, np.int32)
        b = np.empty(block, np.int32)
        for start in range(0, n, block):
            m = min(block, n - start)
            for t in range(0, trees, 2):
                u = min(t + 1, trees - 1)  # an odd last tree is walked as its own pair
                for j in range(m):
                    a[j] = roots[t]
                    b[j] = roots[u]
                # Every row takes `depth` steps; one that reached a leaf stays there (a
                # leaf's children are itself), so a step has no data-dependent branch.
                for _ in range(max(depths[t], depths[u])):
                    for j in range(m):
                        na = nodes[a[j]]
                        nb = nodes[b[j]]
                        xa = X[start + j, na.f]
                        xb = X[start + j, nb.f]
                        if missing:  # a branch per step: its own compiled walk
                            a[j] = na.l if xa <= na.t or (xa != xa and nan_left[a[j]]) else na.r
                            b[j] = nb.l if xb <= nb.t or (xb != xb and nan_left[b[j]]) else nb.r
                        else:
                            a[j] = na.l if xa <= na.t else na.r
                            b[j] = nb.l if xb <= nb.t else nb.r
                for j in range(m):
                    for c in range(width):
                        out[start + j, c] += leaf_values[a[j], c]
                    if u != t:
                        for c in range(width):
                            out[start + j, c] += leaf_values[b[j], c]

    return walk


#: For rows without NaN, or trees that send every NaN to the false side (x <= t is false).
walk = _walker(missing=False)
#: For rows with NaN through trees where some node sends NaN to its true side.
walk_missing = _walker(missing=True)
