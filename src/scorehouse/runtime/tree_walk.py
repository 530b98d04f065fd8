"""The compiled walk of `trees.Trees` (numba; compiled on first use, cached on disk)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def walk(X, feature, threshold, children, missing_true, any_missing, roots, depths,
         leaf_values, strict, out, block):  # pragma: no cover - runs compiled
    """Add each tree's leaf values for every row of X to `out`, `block` rows at a time."""
    n = X.shape[0]
    width = leaf_values.shape[1]
    at = np.empty(block, np.int32)
    for start in range(0, n, block):
        m = min(block, n - start)
        for t in range(roots.shape[0]):
            for j in range(m):
                at[j] = roots[t]
            # Every row takes `depth` steps; one that reached a leaf stays there (a leaf's
            # children are itself), so a step has no data-dependent branch.
            for _ in range(depths[t]):
                for j in range(m):
                    k = at[j]
                    x = X[start + j, feature[k]]
                    true_side = (x < threshold[k]) if strict else (x <= threshold[k])
                    if any_missing:  # same for every step: costs nothing when False
                        true_side = true_side | ((x != x) & missing_true[k])
                    at[j] = children[2 * k + true_side]
            for j in range(m):
                k = at[j]
                for c in range(width):
                    out[start + j, c] += leaf_values[k, c]
