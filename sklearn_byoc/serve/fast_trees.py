"""Tree models evaluated with plain numpy for small requests.

A 100-tree forest's ``predict_proba`` on one row costs about 3.6 ms in
scikit-learn, nearly all of it per-tree call overhead (a thread-pool task,
input validation and a lock per tree), and a HistGradientBoosting model about
0.4 ms.  Walking every tree at once — one array of node indices, one step per
level — gives the same answer in a few dozen numpy operations.  For large
requests scikit-learn's compiled loops are faster, so this path serves only
requests of at most :data:`SMALL_ROWS` rows.

Nothing is assumed blindly: :func:`compile_trees` returns None for any model
whose layout it does not know, and the compiled model is checked against
scikit-learn's own ``predict`` / ``predict_proba`` on generated rows (every
threshold, the values either side of it, missing values, every category)
before it is used: labels identical, probabilities within rtol 1e-9 /
atol 1e-12.  A model that fails the check is served by scikit-learn.

The fitted state read here is scikit-learn's own.  The public part (``tree_``
of a decision tree, ``estimators_`` of a forest) is stable; the
HistGradientBoosting part is not public, so every private name this module
reads is in :data:`PRIVATE_NAMES`, checked at load by :func:`missing_private_names`
and by a unit test on each scikit-learn line the image is built for.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np

log = logging.getLogger("serve")

# benchmarks/fast_trees.py, one thread: the walk is 3-14x faster than scikit-learn at
# 64 rows, 1.5-4x at 256 and slower at 1,024 (iris, trees 8 deep); a deeper forest
# needs more steps, so the cut stays where every model still wins clearly.
SMALL_ROWS = 64
PROBE_ROWS = 256
RTOL, ATOL = 1e-9, 1e-12

# Every private attribute of scikit-learn read below: (owner, attribute).
PRIVATE_NAMES = (
    ("HistGradientBoosting", "_predictors"),
    ("HistGradientBoosting", "_baseline_prediction"),
    ("HistGradientBoosting", "_bin_mapper"),
    ("HistGradientBoosting", "_preprocessor"),
    ("_BinMapper", "make_known_categories_bitsets"),
    ("TreePredictor", "nodes"),
    ("TreePredictor", "raw_left_cat_bitsets"),
)
NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right",
               "depth", "is_leaf", "is_categorical", "bitset_idx")


@dataclass
class Forest:
    """Trees as flat arrays: node i of every tree in one index space."""

    feature: np.ndarray      # intp; 0 at leaves
    threshold: np.ndarray    # float64; +inf at leaves (every value goes "left", to itself)
    left: np.ndarray         # intp; a leaf points to itself
    right: np.ndarray
    missing_left: np.ndarray  # bool: where NaN goes
    roots: np.ndarray        # intp, one per tree
    depth: int               # the deepest leaf's depth
    leaf_value: np.ndarray   # (nodes, outputs): what a leaf adds
    categorical: np.ndarray | None = None  # bool per node: a split on category codes
    category_left: np.ndarray | None = None  # (nodes, 256) bool: codes going left
    float32: bool = False    # scikit-learn's trees compare X cast to float32

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf reached in each tree for each row: shape (trees, rows)."""
        n = X.shape[0]
        values = X.astype(np.float32).astype(np.float64) if self.float32 else X
        rows = np.tile(np.arange(n), len(self.roots))
        node = np.repeat(self.roots, n)
        flat = values.ravel()
        width = values.shape[1]
        for _ in range(self.depth):
            v = flat[rows * width + self.feature[node]]
            go_left = v <= self.threshold[node]
            missing = np.isnan(v)
            if missing.any():
                go_left = np.where(missing, self.missing_left[node], go_left)
            if self.categorical is not None:
                split = self.categorical[node] & ~missing
                if split.any():
                    codes = v[split].astype(np.intp)
                    go_left[split] = self.category_left[node[split], codes]
            node = np.where(go_left, self.left[node], self.right[node])
        return node.reshape(len(self.roots), n)


@dataclass
class CategoryEncoder:
    """HistGradientBoosting's own input step (scikit-learn 1.4 on, with categorical
    features): category values become their index among the fitted categories (unknown
    and missing: NaN) and the categorical columns move to the front."""

    order: np.ndarray           # input column of each internal column
    categories: list[np.ndarray]  # sorted fitted values, one array per categorical column

    def encode(self, X: np.ndarray) -> np.ndarray:
        out = X[:, self.order]
        for j, categories in enumerate(self.categories):
            values = out[:, j]
            index = np.searchsorted(categories, values)
            inside = index < len(categories)
            hit = inside & (categories[np.where(inside, index, 0)] == values)
            out[:, j] = np.where(hit, index, np.nan)
        return out


class FastTrees:
    """predict / predict_proba of one fitted tree model, for small requests."""

    def __init__(self, forest: Forest, *, kind: str, classes=None, baseline=None,
                 link: str = "identity", categorical_features=None, known=None,
                 encoder: "CategoryEncoder | None" = None):
        self.forest = forest
        self.kind = kind            # "mean" (trees, forests) or "sum" (boosting)
        self.classes = None if classes is None else np.asarray(classes)
        self.baseline = baseline    # boosting: the raw start value per output
        self.link = link            # identity, exp, sigmoid, softmax
        self.categorical_features = categorical_features  # column indexes, or None
        self.known = known          # (features, 256) bool: the codes seen in fitting
        self.encoder = encoder      # the model's own category encoding, where it has one

    # -- when it can answer ----------------------------------------------------------------
    def takes(self, X) -> bool:
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] > SMALL_ROWS \
                or X.dtype != np.float64:
            return False
        if self.kind == "mean" and np.isnan(X).any():
            return False  # scikit-learn decides what a tree does with NaN (or refuses it)
        if self.categorical_features is not None and self.encoder is None:
            codes = X[:, self.categorical_features]
            finite = ~np.isnan(codes)
            values = codes[finite]
            if ((values < 0) | (values > 255) | (values != np.floor(values))).any():
                return False
            columns = np.nonzero(finite)[1]
            if not self.known[columns, values.astype(np.intp)].all():
                return False  # a code unseen in fitting: scikit-learn decides
        return True

    # -- predicting ------------------------------------------------------------------------
    def _output(self, X: np.ndarray) -> np.ndarray:
        leaves = self.forest.leaves(X if self.encoder is None else self.encoder.encode(X))
        values = self.forest.leaf_value[leaves]  # (trees, rows, outputs)
        if self.kind == "mean":
            return values.sum(axis=0) / leaves.shape[0]
        return self.baseline + values.sum(axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = self._output(X)
        if self.kind == "mean":
            return out
        if self.link == "sigmoid":
            p = 1.0 / (1.0 + np.exp(-out[:, 0]))
            return np.column_stack([1.0 - p, p])
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.classes is not None:
            return self.classes[self.predict_proba(X).argmax(axis=1)]
        out = self._output(X)[:, 0]
        return np.exp(out) if self.link == "exp" else out


# -- compiling ----------------------------------------------------------------------------------
def missing_private_names(estimator) -> list[str]:
    """The private names of :data:`PRIVATE_NAMES` a fitted HistGradientBoosting model lacks."""
    missing = []
    for attribute in ("_predictors", "_baseline_prediction", "_bin_mapper"):
        if not hasattr(estimator, attribute):
            missing.append(f"{type(estimator).__name__}.{attribute}")
    mapper = getattr(estimator, "_bin_mapper", None)
    if mapper is not None and not callable(getattr(mapper, "make_known_categories_bitsets",
                                                   None)):
        missing.append("_BinMapper.make_known_categories_bitsets")
    predictors = getattr(estimator, "_predictors", None) or [[]]
    first = predictors[0][0] if predictors and predictors[0] else None
    if first is not None:
        for attribute in ("nodes", "raw_left_cat_bitsets"):
            if not hasattr(first, attribute):
                missing.append(f"TreePredictor.{attribute}")
        nodes = getattr(first, "nodes", None)
        if nodes is not None:
            missing += [f"TreePredictor.nodes['{f}']" for f in NODE_FIELDS
                        if f not in (nodes.dtype.names or ())]
    return missing


def _joined(parts: list[dict], key: str) -> np.ndarray:
    """One array of every tree's ``key``, tree after tree."""
    return np.concatenate([part[key] for part in parts])


def _bits(bitsets: np.ndarray) -> np.ndarray:
    """Bitsets of 256 category codes (8 uint32 words each) as (rows, 256) booleans."""
    return np.unpackbits(bitsets.view(np.uint8).reshape(len(bitsets), -1), axis=1,
                         bitorder="little").astype(bool)


def _sklearn_forest(trees, n_outputs: int, classifier: bool) -> Forest | None:
    parts = []
    offset = 0
    for tree in trees:
        t = tree.tree_
        if t.n_outputs != 1:
            return None
        value = np.asarray(t.value, dtype=np.float64)[:, 0, :]  # (nodes, classes or 1)
        if classifier:
            total = value.sum(axis=1, keepdims=True)
            total[total == 0] = 1.0
            value = value / total
        if value.shape[1] != n_outputs:
            return None
        leaf = t.children_left < 0
        nodes = np.arange(t.node_count)
        parts.append(dict(
            feature=np.where(leaf, 0, t.feature).astype(np.intp),
            threshold=np.where(leaf, np.inf, t.threshold).astype(np.float64),
            left=np.where(leaf, nodes, t.children_left).astype(np.intp) + offset,
            right=np.where(leaf, nodes, t.children_right).astype(np.intp) + offset,
            root=offset, depth=int(t.max_depth),
            value=np.where(leaf[:, None], value, 0.0)))
        offset += t.node_count
    if not parts:
        return None
    join = partial(_joined, parts)
    return Forest(feature=join("feature"), threshold=join("threshold"), left=join("left"),
                  right=join("right"), missing_left=np.zeros(offset, dtype=bool),
                  roots=np.array([p["root"] for p in parts], dtype=np.intp),
                  depth=max(p["depth"] for p in parts), leaf_value=join("value"),
                  float32=True)


def _trees_and_forests(estimator) -> FastTrees | None:
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classifier = isinstance(estimator, (DecisionTreeClassifier, RandomForestClassifier,
                                        ExtraTreesClassifier))
    if isinstance(estimator, (DecisionTreeClassifier, DecisionTreeRegressor)):
        trees = [estimator]
    elif isinstance(estimator, (RandomForestClassifier, RandomForestRegressor,
                                ExtraTreesClassifier, ExtraTreesRegressor)):
        trees = list(estimator.estimators_)
    else:
        return None
    if getattr(estimator, "n_outputs_", 1) != 1:
        return None
    classes = estimator.classes_ if classifier else None
    forest = _sklearn_forest(trees, len(classes) if classifier else 1, classifier)
    if forest is None:
        return None
    return FastTrees(forest, kind="mean", classes=classes)


def _boosting(estimator) -> FastTrees | None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if not isinstance(estimator, (HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor)):
        return None
    missing = missing_private_names(estimator)
    if missing:
        log.info("HistGradientBoosting is served through scikit-learn: this scikit-learn "
                 "has no %s", ", ".join(missing))
        return None
    classifier = isinstance(estimator, HistGradientBoostingClassifier)
    if classifier:
        link = "sigmoid" if len(estimator.classes_) == 2 else "softmax"
        if estimator.loss not in ("log_loss", "auto", "binary_crossentropy",
                                  "categorical_crossentropy"):
            return None
    else:
        links = {"squared_error": "identity", "absolute_error": "identity",
                 "poisson": "exp", "gamma": "exp"}
        if not isinstance(estimator.loss, str) or estimator.loss not in links:
            return None
        link = links[estimator.loss]
    predictors = estimator._predictors
    per_iteration = len(predictors[0])
    parts, offset = [], 0
    for iteration in predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            index = np.arange(len(nodes))
            value = np.zeros((len(nodes), per_iteration))
            value[leaf, k] = nodes["value"][leaf]
            categorical = nodes["is_categorical"].astype(bool) & ~leaf
            bitsets = np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32)
            category_left = np.zeros((len(nodes), 256), dtype=bool)
            if categorical.any():
                category_left[categorical] = _bits(bitsets)[nodes["bitset_idx"][categorical]]
            parts.append(dict(
                feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
                threshold=np.where(leaf | categorical, np.inf, nodes["num_threshold"]),
                left=np.where(leaf, index, nodes["left"]).astype(np.intp) + offset,
                right=np.where(leaf, index, nodes["right"]).astype(np.intp) + offset,
                missing_left=np.where(leaf, True, nodes["missing_go_to_left"].astype(bool)),
                categorical=categorical, category_left=category_left,
                root=offset, depth=int(nodes["depth"].max()), value=value))
            offset += len(nodes)
    join = partial(_joined, parts)
    has_categories = any(p["categorical"].any() for p in parts)
    forest = Forest(feature=join("feature"), threshold=join("threshold").astype(np.float64),
                    left=join("left"), right=join("right"), missing_left=join("missing_left"),
                    roots=np.array([p["root"] for p in parts], dtype=np.intp),
                    depth=max(p["depth"] for p in parts), leaf_value=join("value"),
                    categorical=join("categorical") if has_categories else None,
                    category_left=join("category_left") if has_categories else None)
    features = known = encoder = None
    categorical_mask = getattr(estimator, "is_categorical_", None)
    if categorical_mask is not None and np.any(categorical_mask):
        categorical_mask = np.asarray(categorical_mask, dtype=bool)
        features = np.flatnonzero(categorical_mask)
        if getattr(estimator, "_preprocessor", None) is not None:
            encoder = _category_encoder(estimator, categorical_mask)
            if encoder is None:
                return None
        else:
            known = _known_codes(estimator, features)
    return FastTrees(forest, kind="sum", classes=estimator.classes_ if classifier else None,
                     baseline=np.asarray(estimator._baseline_prediction,
                                         dtype=np.float64).reshape(1, -1),
                     link=link, categorical_features=features, known=known,
                     encoder=encoder)


def _category_encoder(estimator, categorical_mask) -> CategoryEncoder | None:
    """The model's own category step as a CategoryEncoder, if it has the known layout."""
    from sklearn.preprocessing import OrdinalEncoder

    preprocessor = estimator._preprocessor
    encoder = preprocessor.named_transformers_.get("encoder")
    indices = getattr(preprocessor, "output_indices_", {}).get("encoder")
    n = int(categorical_mask.sum())
    if not isinstance(encoder, OrdinalEncoder) or indices != slice(0, n) \
            or len(encoder.categories_) != n:
        return None
    categories = [np.asarray(c, dtype=np.float64) for c in encoder.categories_]
    categories = [c[~np.isnan(c)] for c in categories]  # missing is encoded as NaN anyway
    if any((np.diff(c) <= 0).any() for c in categories):
        return None
    order = np.concatenate([np.flatnonzero(categorical_mask), np.flatnonzero(~categorical_mask)])
    return CategoryEncoder(order, categories)


def _known_codes(estimator, features) -> np.ndarray:
    bitsets, index = estimator._bin_mapper.make_known_categories_bitsets()
    bits = _bits(np.asarray(bitsets, dtype=np.uint32))
    known = np.zeros((len(features), 256), dtype=bool)
    for row, feature in enumerate(features):
        known[row] = bits[index[feature]]
    return known


def compile_trees(estimator) -> FastTrees | None:
    """A numpy version of a fitted tree model's predictions, or None if it can't be made."""
    try:
        fast = _trees_and_forests(estimator) or _boosting(estimator)
    except Exception as exc:  # noqa: BLE001 - an unexpected layout only costs speed
        log.info("trees are served through scikit-learn (%s: %s)", type(exc).__name__, exc)
        return None
    if fast is None:
        return None
    return fast if _agrees(fast, estimator) else None


# -- checking -----------------------------------------------------------------------------------
def probe_matrix(fast: FastTrees, width: int, rows: int = PROBE_ROWS,
                 seed: int = 0) -> np.ndarray:
    """Rows whose values sit on, just below and just above the model's thresholds, with
    missing values where the model handles them and every known category."""
    rng = np.random.default_rng(seed)
    forest = fast.forest
    order = fast.encoder.order if fast.encoder is not None else np.arange(width)
    split = np.isfinite(forest.threshold)
    X = rng.normal(0.0, 1.0, (rows, width))
    for internal, column in enumerate(order):
        thresholds = forest.threshold[split & (forest.feature == internal)]
        if len(thresholds):
            near = np.concatenate([thresholds, np.nextafter(thresholds, -np.inf),
                                   np.nextafter(thresholds, np.inf)])
            if forest.float32:
                near = np.concatenate([near, thresholds.astype(np.float32).astype(np.float64)])
            X[:, column] = rng.choice(near, rows)
    if fast.encoder is not None:
        for internal, categories in enumerate(fast.encoder.categories):
            # every fitted category and one the model never saw
            values = np.append(categories, categories.max(initial=0.0) + 1.0)
            X[:, order[internal]] = rng.choice(values, rows)
    elif fast.categorical_features is not None:
        for row, column in enumerate(fast.categorical_features):
            codes = np.flatnonzero(fast.known[row])
            X[:, column] = rng.choice(codes, rows) if len(codes) else 0.0
    if fast.kind == "sum":
        X[rng.random((rows, width)) < 0.1] = np.nan
    return X


def _agrees(fast: FastTrees, estimator) -> bool:
    width = int(getattr(estimator, "n_features_in_", 0) or 0)
    if width <= 0:
        return False
    X = probe_matrix(fast, width)
    same = True
    for start in range(0, len(X), SMALL_ROWS):
        chunk = X[start:start + SMALL_ROWS]
        if not fast.takes(chunk):
            return False
        if fast.classes is not None:
            expected = np.asarray(estimator.predict_proba(chunk), dtype=np.float64)
            got = fast.predict_proba(chunk)
            same = expected.shape == got.shape and \
                np.allclose(got, expected, rtol=RTOL, atol=ATOL) and \
                np.array_equal(fast.predict(chunk), estimator.predict(chunk))
        else:
            expected = np.asarray(estimator.predict(chunk), dtype=np.float64)
            same = np.allclose(fast.predict(chunk), expected, rtol=RTOL, atol=ATOL)
        if not same:
            break
    if not same:
        log.warning("the fast tree evaluation disagrees with scikit-learn on this %s; "
                    "serving through scikit-learn", type(estimator).__name__)
    return same
