"""The compiled walks of `trees.Trees` (numba; compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np

#: Trees walked side by side: more independent loads in flight per row, which is what a
#: walk waits on (measured against one tree at a time: BENCHMARKS.md). The walk below is
#: written out for 4.
LANES = 4


@numba.njit(inline="always")
def _step(X, row, nodes, nan_left, k, missing):  # pragma: no cover - compiled
    """The node after node k for row `row` (`missing` is a constant where it is inlined)."""
    nd = nodes[k]
    x = X[row, nd.f]
    if missing:  # a branch per step: its own compiled walk
        return nd.l if x <= nd.t or (x != x and nan_left[k]) else nd.r
    return nd.l if x <= nd.t else nd.r


def _walker(missing: bool):  # noqa: ANN202 - a numba dispatcher
    """The walk, compiled with or without NaN routing (`missing` is a constant to numba).

    The closure holds only that bool: numba keys its on-disk cache by the closure's
    values, and a jitted function there would give every process a new key.
    """

    @numba.njit(nogil=True, cache=True)
    def walk(X, nodes, nan_left, roots, depths, leaf_values, out, block):  # pragma: no cover
        """Add each tree's leaf values for every row of X to `out`, `block` rows at a time.

        `nodes` holds one 16-byte record per node (threshold t, feature f, children l for
        x <= t and r), so a step reads one cache line; `nan_left[k]`: NaN goes to l.
        """
        n = X.shape[0]
        width = leaf_values.shape[1]
        trees = roots.shape[0]
        a = np.empty(block, np.int32)  # the node each row is at, in each lane's tree
        b = np.empty(block, np.int32)
        c = np.empty(block, np.int32)
        d = np.empty(block, np.int32)
        for start in range(0, n, block):
            m = min(block, n - start)
            for t in range(0, trees, LANES):
                lanes = min(LANES, trees - t)
                # Trees past the last one repeat it; their leaves are not added.
                t1, t2, t3 = min(t + 1, trees - 1), min(t + 2, trees - 1), min(t + 3, trees - 1)
                for j in range(m):
                    a[j], b[j], c[j], d[j] = roots[t], roots[t1], roots[t2], roots[t3]
                # Every row takes `depth` steps; one that reached a leaf stays there (a
                # leaf's children are itself), so a step has no data-dependent branch.
                depth = max(max(depths[t], depths[t1]), max(depths[t2], depths[t3]))
                for _ in range(depth):
                    for j in range(m):
                        row = start + j
                        a[j] = _step(X, row, nodes, nan_left, a[j], missing)
                        b[j] = _step(X, row, nodes, nan_left, b[j], missing)
                        c[j] = _step(X, row, nodes, nan_left, c[j], missing)
                        d[j] = _step(X, row, nodes, nan_left, d[j], missing)
                for j in range(m):
                    # In tree order: the same sum as walking the trees one by one.
                    for k in range(width):
                        out[start + j, k] += leaf_values[a[j], k]
                        if lanes > 1:
                            out[start + j, k] += leaf_values[b[j], k]
                        if lanes > 2:
                            out[start + j, k] += leaf_values[c[j], k]
                        if lanes > 3:
                            out[start + j, k] += leaf_values[d[j], k]

    return walk


#: For rows without NaN, or trees that send every NaN to the false side (x <= t is false).
walk = _walker(missing=False)
#: For rows with NaN through trees where some node sends NaN to its true side.
walk_missing = _walker(missing=True)
