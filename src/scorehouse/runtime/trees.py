"""A faster evaluator for the tree ensemble that ends a compiled graph.

ONNX Runtime's TreeEnsemble kernel walks every tree for one row before it starts the next,
so a deep forest's nodes are fetched from memory again for every row (on one core it is
slower than scikit-learn's own predict). Here the same trees are walked tree by tree over
blocks of rows, one branch-free step per level (a leaf points to itself), so a tree stays
in cache and the walks of many rows overlap (measured: BENCHMARKS.md). The rest of the graph
(imputation, scaling, one-hot) still runs in ONNX Runtime; this takes its output.

It is used only where it reproduces ONNX Runtime: `split` accepts a graph whose outputs are
those of one final TreeEnsembleClassifier/Regressor with features compared by <= or <, no
post-transform; and `SplitGraph.check` compares both on probe rows before first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

log = logging.getLogger("scorehouse.runtime")

#: Rows walked together through one tree: enough for many independent walks in flight,
#: few enough that their feature rows stay in cache.
BLOCK = 1024
#: Batches from this size up are walked as float32 where that loses nothing (`_narrowest`).
NARROW_MIN_ROWS = 64
#: How far the kernel may drift from ONNX Runtime, whose outputs are float32 (relative for
#: values beyond 1).
CHECK_TOLERANCE = 1e-6

_TREES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


#: One node of a walk: the row goes to l when x <= t (or x is NaN and `Trees.nan_left`),
#: else to r. Thresholds are stored so that `<=` decides for `<` trees too (the next value
#: down). 16 bytes in the float32 form: a step reads one cache line.
NODE64 = np.dtype([("t", np.float64), ("f", np.int32), ("l", np.int32), ("r", np.int32)])
#: The same for float32 rows: a float32 threshold rounded down, which decides exactly as
#: the float64 one does for every float32 x.
NODE32 = np.dtype([("t", np.float32), ("f", np.int32), ("l", np.int32), ("r", np.int32)])


@dataclass
class Trees:
    """A tree ensemble as node records (see NODE64) and leaf values; leaves point to themselves."""

    nodes64: np.ndarray  # NODE64 records, for float64 rows
    nodes32: np.ndarray  # NODE32 records, for rows float32 holds exactly
    nan_left: np.ndarray  # bool, per node: NaN goes to l
    roots: np.ndarray  # int32, per tree
    depths: np.ndarray  # int32, per tree
    leaf_values: np.ndarray  # float64 (nodes, outputs)
    base: np.ndarray  # float64 (outputs,)
    average: bool  # regressor AVERAGE: divide the sum by the number of trees
    binary: bool = False  # a two-class model keeping one weight per leaf
    positive: bool = True  # binary weights all >= 0: P = [1 - s, s] (else [-s, s])

    @cached_property
    def any_missing(self) -> bool:
        """Some node sends NaN to l (else NaN takes r everywhere, as `x <= t` does)."""
        return bool(self.nan_left.any())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores of rows X (shape (n, features)): probabilities or values, float64."""
        from .tree_walk import walk, walk_missing

        X = _narrowest(X)
        nodes = self.nodes32 if X.dtype == np.float32 else self.nodes64
        out = np.zeros((X.shape[0], self.leaf_values.shape[1]))
        nan_routing = self.any_missing and bool(np.isnan(X).any())
        (walk_missing if nan_routing else walk)(
            X, nodes, self.nan_left, self.roots, self.depths, self.leaf_values, out, BLOCK)
        if self.average:
            out /= len(self.roots)
        out += self.base
        if not self.binary:
            return out
        # ONNX Runtime's two-class case: the one score is the second class's.
        s = out[:, 0]
        return np.column_stack([1.0 - s if self.positive else -s, s])

    def warm(self) -> None:
        """Load (or compile) the walk that float32 rows take, so no batch waits for it."""
        width = int(self.nodes32["f"].max()) + 1 if len(self.nodes32) else 1
        self.predict(np.zeros((1, width), np.float32))


def _narrowest(X: np.ndarray) -> np.ndarray:
    """X as float32 when that loses nothing (half the memory traffic), else float64.

    Comparing a float32 with a float64 threshold promotes it exactly, so the result is the
    same; inputs rounded to float32 (as scikit-learn trees compare them) always qualify.
    Small batches stay float64: the traffic saved is nothing next to the checks' cost.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.shape[0] < NARROW_MIN_ROWS:
        return X
    with np.errstate(over="ignore"):  # beyond float32's range: not equal, so stays float64
        head = X[:1]
        if not np.array_equal(head.astype(np.float32), head, equal_nan=True):
            return X  # decided by the first row, as for scaled features: no pass over X
        narrow = X.astype(np.float32)
    return narrow if np.array_equal(narrow, X, equal_nan=True) else X


@dataclass
class SplitGraph:
    """A graph cut before its tree ensemble: ONNX Runtime runs `prefix`, `trees` the rest."""

    prefix: bytes  # the graph up to the ensemble's input
    suffix: bytes  # the ensemble alone, to check `trees` against
    trees: Trees
    output: str  # "probabilities" or the regressor's output name
    checked: bool | None = field(default=None)  # None: not yet compared with ORT

    def check(self, session: Any) -> bool:
        """Compare the kernel with ONNX Runtime on probe rows; False disables the kernel."""
        if self.checked is None:
            suffix = session(self.suffix)
            diff = 0.0
            probe = _probe(self.trees)
            probes = [probe, np.nan_to_num(probe, nan=0.5)] if self.trees.any_missing else [probe]
            # Every compiled walk: float64 rows and rows float32 holds; with NaN routing
            # and without, where the model routes NaN.
            with np.errstate(over="ignore"):  # thresholds beyond float32's range
                rounded = [p.astype(np.float32).astype(np.float64) for p in probes]
            for X in [x for pair in zip(probes, rounded, strict=True) for x in pair]:
                got = self.trees.predict(X)
                want = suffix.run([self.output], {"X": X})[0]
                want = np.asarray(want, np.float64).reshape(got.shape)
                # Relative beyond 1: ORT rounds its outputs to float32.
                diff = max(diff, float(np.max(np.abs(got - want) / np.maximum(1, np.abs(want)))))
            self.checked = diff <= CHECK_TOLERANCE
            if not self.checked:
                log.warning("tree kernel differs from ONNX Runtime by %.3g on probe rows; "
                            "using ONNX Runtime alone", diff)
        return self.checked


def split(model_bytes: bytes) -> SplitGraph | None:
    """The graph cut before a final tree ensemble, or None when it has no such shape.

    After the ensemble only Cast and Identity nodes may follow (converters add them to name
    and type the outputs); the scores output must reach a graph output through them.
    """
    import onnx

    model = onnx.load_from_string(model_bytes)
    nodes = list(model.graph.node)
    at = [i for i, n in enumerate(nodes) if n.op_type in _TREES]
    if len(at) != 1 or any(n.op_type not in ("Cast", "Identity") for n in nodes[at[0] + 1:]):
        return None
    node = nodes[at[0]]
    name = node.output[-1]  # the classifier's probabilities, the regressor's values
    for n in nodes[at[0] + 1:]:
        if n.input[0] == name:
            name = n.output[0]
    if name not in {o.name for o in model.graph.output}:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    parsed = _parse(node.op_type, attrs)
    if parsed is None:
        return None
    return SplitGraph(_before(model, at[0]).SerializeToString(),
                      _after(model, at[0], name).SerializeToString(), parsed, name)


def _before(model: Any, at: int) -> Any:
    """The model up to node `at`, whose input becomes the output (as float64)."""
    import onnx

    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    tree_input = cut.graph.node[at].input[0]
    del cut.graph.node[at:]
    del cut.graph.output[:]
    cut.graph.output.append(onnx.helper.make_tensor_value_info(
        tree_input, onnx.TensorProto.DOUBLE, [None, None]))
    return cut


def _after(model: Any, at: int, output: str) -> Any:
    """Node `at` and what follows, reading "X": the part the kernel replaces, to check it."""
    import onnx

    tail = []
    for i, node in enumerate(model.graph.node[at:]):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if i == 0:
            copy.input[0] = "X"
        tail.append(copy)
    x = onnx.helper.make_tensor_value_info("X", onnx.TensorProto.DOUBLE, [None, None])
    outputs = [o for o in model.graph.output if o.name == output]
    graph = onnx.helper.make_graph(tail, "trees", [x], outputs)
    return onnx.helper.make_model(graph, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)


def _numbers(attrs: dict[str, Any], name: str) -> np.ndarray | None:
    if f"{name}_as_tensor" in attrs:
        from onnx import numpy_helper

        return numpy_helper.to_array(attrs[f"{name}_as_tensor"]).astype(np.float64)
    if name in attrs:
        return np.asarray(attrs[name], dtype=np.float64)
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(op: str, attrs: dict[str, Any]) -> Trees | None:
    """Flat arrays of a TreeEnsemble node's attributes; None for what the kernel lacks."""
    if _text(attrs.get("post_transform", b"NONE")) != "NONE":
        return None
    modes = np.asarray(attrs["nodes_modes"])  # bytes
    leaf = modes == b"LEAF"
    branches = {_text(m) for m in np.unique(modes[~leaf])}
    if not branches <= {"BRANCH_LEQ"} and not branches <= {"BRANCH_LT"}:
        return None
    tree_ids = np.asarray(attrs["nodes_treeids"], np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], np.int64)
    n = len(tree_ids)
    find = _Finder(tree_ids, node_ids)
    here = np.arange(n, dtype=np.int64)
    children = np.empty(2 * n, np.int32)
    for side, key in ((1, "nodes_truenodeids"), (0, "nodes_falsenodeids")):
        to = np.where(leaf, 0, np.asarray(attrs[key], np.int64))
        children[side::2] = np.where(leaf, here, find(tree_ids, to))
    trees = np.unique(tree_ids)
    roots = find(trees, np.zeros_like(trees)).astype(np.int32)
    classifier = op == "TreeEnsembleClassifier"
    prefix = "class" if classifier else "target"
    if classifier:
        labels = attrs.get("classlabels_strings") or attrs.get("classlabels_int64s") or []
        outputs = len(labels)
    else:
        if _text(attrs.get("aggregate_function", b"SUM")) not in ("SUM", "AVERAGE"):
            return None
        outputs = int(attrs.get("n_targets", 1))
    weights = _numbers(attrs, f"{prefix}_weights")
    thresholds = _numbers(attrs, "nodes_values")
    if weights is None or thresholds is None:  # not an ensemble the kernel can read
        return None
    ids = np.asarray(attrs[f"{prefix}_ids"], np.int64)
    binary = classifier and outputs == 2 and len(set(ids.tolist())) == 1
    width = 1 if binary else outputs
    if binary:
        ids = np.zeros_like(ids)
    leaf_values = np.zeros((n, width))
    w_nodes = find(np.asarray(attrs[f"{prefix}_treeids"], np.int64),
                   np.asarray(attrs[f"{prefix}_nodeids"], np.int64))
    np.add.at(leaf_values, (w_nodes, ids), weights)
    base = _numbers(attrs, "base_values")
    base = np.zeros(width) if base is None or not len(base) else base
    if len(base) != width:
        return None
    missing = np.asarray(attrs.get("nodes_missing_value_tracks_true", [0] * n), bool)
    threshold = np.where(leaf, np.inf, thresholds)
    feature = np.where(leaf, 0, np.asarray(attrs["nodes_featureids"], np.int64))
    nodes64, nodes32 = _records(feature, threshold, children, strict=branches == {"BRANCH_LT"})
    return Trees(
        nodes64=nodes64, nodes32=nodes32, nan_left=missing & ~leaf, roots=roots,
        depths=_depths(children, roots, leaf, np.searchsorted(trees, tree_ids)),
        leaf_values=leaf_values, base=base,
        average=not classifier and _text(attrs.get("aggregate_function", b"SUM")) == "AVERAGE",
        binary=binary, positive=bool(np.all(weights >= 0)))


def _records(feature: np.ndarray, threshold: np.ndarray, children: np.ndarray, strict: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """NODE64 and NODE32 records whose `x <= t` decides as the model's comparison does."""
    t64 = np.nextafter(threshold, -np.inf) if strict else threshold  # x < t: x <= next down
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, then stepped down
        t32 = t64.astype(np.float32)
    above = t32.astype(np.float64) > t64  # rounded up: take the float32 just below
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    records = []
    for dtype, t in ((NODE64, t64), (NODE32, t32)):
        r = np.zeros(len(feature), dtype)
        r["t"], r["f"] = t, feature
        r["l"], r["r"] = children[1::2], children[0::2]
        records.append(r)
    return records[0], records[1]


class _Finder:
    """Node positions by (tree id, node id), for whole arrays of ids at once."""

    def __init__(self, tree_ids: np.ndarray, node_ids: np.ndarray):
        self.stride = int(node_ids.max()) + 1 if len(node_ids) else 1
        keys = tree_ids * self.stride + node_ids
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def __call__(self, tree_ids: np.ndarray, node_ids: np.ndarray) -> np.ndarray:
        keys = tree_ids * self.stride + node_ids
        at = np.searchsorted(self.sorted, keys).clip(0, len(self.sorted) - 1)
        if not np.array_equal(self.sorted[at], keys):
            raise ValueError("a tree node refers to a node that does not exist")
        return self.order[at]


def _depths(children: np.ndarray, roots: np.ndarray, leaf: np.ndarray, tree_of: np.ndarray
            ) -> np.ndarray:
    """The depth of each tree: every tree's nodes walked level by level, all at once."""
    depth = np.zeros(len(leaf), np.int32)
    level, d = roots.astype(np.int64), 0
    while True:
        inner = level[~leaf[level]]
        if not len(inner):
            break
        d += 1
        level = np.concatenate([children[2 * inner], children[2 * inner + 1]]).astype(np.int64)
        depth[level] = d
    depths = np.zeros(len(roots), np.int32)
    np.maximum.at(depths, tree_of, depth)
    return depths


def _probe(trees: Trees, rows: int = 512) -> np.ndarray:
    """Rows that land on both sides of many thresholds, with some NaN: where kernels differ."""
    rng = np.random.default_rng(0)
    feature, threshold = trees.nodes64["f"], trees.nodes64["t"]
    width = int(feature.max()) + 1 if len(feature) else 1
    X = rng.normal(size=(rows, width))
    inner = threshold < np.inf
    for f in range(width):
        cuts = threshold[inner & (feature == f)]
        if len(cuts):
            pick = rng.choice(cuts, rows)
            with np.errstate(over="ignore"):  # thresholds near the float64 maximum
                X[:, f] = pick + rng.choice([-1e-9, 0.0, 1e-9], rows) * np.maximum(1.0, np.abs(pick))
    X[rng.random(X.shape) < 0.05] = np.nan
    return X
