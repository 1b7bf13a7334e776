"""The trainer's preprocessing, replayed with plain numpy.

scikit-learn's ColumnTransformer spends most of a small request selecting
DataFrame columns and re-validating its input at every step, and most of a large
table looking each text cell up in Python.  The fitted preprocessing of a model
made by ``train`` is simple — impute and scale the numeric columns (or pass them
on, for HistGradientBoosting, which takes missing values), one-hot or ordinal
encode the categorical ones — so its fitted state can be read once and applied
directly to the feature columns: by serve for every request, by train for the
rows it fits and scores the estimator on.

Nothing is assumed blindly: :func:`compile_preprocess` returns None for any
pipeline whose steps it does not know, and the compiled version is checked
against scikit-learn's own ``transform`` on generated rows (missing values,
unseen categories included) before it is used.  A model that fails the check
is served through scikit-learn as before.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("model")

# The columns to transform: name -> one array per feature, numbers as float64, text as
# objects (or a pandas Categorical).
Columns = Mapping[str, np.ndarray]

# Below this many rows a Python dict lookup beats pandas' vectorised hashing.
DICT_LOOKUP_ROWS = 64
UNSEEN = "\x00unseen category\x00"
PROBE_ROWS = 64


class Block:
    """The output columns, from ``start`` on, that one transformer of the ColumnTransformer
    fills: as many as its ``sized_by`` field has entries."""

    start: int
    sized_by: str

    @property
    def width(self) -> int:
        return len(getattr(self, self.sized_by))

    def view(self, out: np.ndarray) -> np.ndarray:
        return out[:, self.start:self.start + self.width]


@dataclass
class NumericBlock(Block):
    columns: list[str]
    fill: np.ndarray | None  # per column, the imputer's statistic (None: passed on as NaN)
    mean: np.ndarray | None
    scale: np.ndarray | None
    start: int
    sized_by = "columns"

    @property
    def names(self) -> list[str]:
        return self.columns

    def apply(self, columns: Columns, out: np.ndarray) -> None:
        block = self.view(out)
        for j, name in enumerate(self.columns):
            block[:, j] = columns[name]
        missing = np.isnan(block) if self.fill is not None else None
        if missing is not None and missing.any():
            np.copyto(block, np.broadcast_to(self.fill, block.shape), where=missing)
        if self.mean is not None:
            block -= self.mean
        if self.scale is not None:
            block /= self.scale


@dataclass
class CategoricalColumn:
    name: str
    categories: list[str]
    lookup: dict  # category -> row of ``table``
    table: np.ndarray  # (categories + missing + unseen, width): change from the base row
    missing_row: int
    unseen_row: int

    def __post_init__(self):
        # Only the output columns this input column can change (its own one-hot
        # block): adding the rest would add zeros.
        self.touched = np.flatnonzero(np.any(self.table != 0, axis=0))
        self.table = np.ascontiguousarray(self.table[:, self.touched])
        self._index = None

    def rows(self, values) -> np.ndarray:
        import pandas as pd

        if isinstance(values, pd.Categorical):  # large CSV bodies: one lookup per category
            per_category = np.array([self.lookup.get(c, self.unseen_row)
                                     for c in values.categories] + [self.missing_row],
                                    dtype=np.intp)
            return per_category[values.codes]  # code -1 (missing) picks the last entry
        if len(values) < DICT_LOOKUP_ROWS:
            lookup, unseen, missing = self.lookup, self.unseen_row, self.missing_row
            return np.fromiter(
                (lookup.get(v, unseen) if isinstance(v, str) else missing for v in values),
                dtype=np.intp, count=len(values))
        if self._index is None:
            self._index = pd.Index(self.categories, dtype=object)
        index = self._index.get_indexer(values)
        other = np.flatnonzero(index < 0)  # missing or unseen
        if len(other):
            index[other] = np.where(pd.isna(np.asarray(values, dtype=object)[other]),
                                    self.missing_row, self.unseen_row)
        return index


@dataclass
class CategoricalBlock(Block):
    columns: list[CategoricalColumn]
    base: np.ndarray  # the block's output for a reference row
    start: int
    sized_by = "base"

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def apply(self, columns: Columns, out: np.ndarray) -> None:
        block = self.view(out)
        block[:] = self.base
        for column in self.columns:
            if not len(column.touched):
                continue
            rows = column.rows(columns[column.name])
            if block.flags.f_contiguous:  # each output column contiguous: one at a time
                for k, j in enumerate(column.touched):
                    block[:, j] += column.table[rows, k]
            else:
                block[:, column.touched] += column.table[rows]


class FastPreprocess:
    def __init__(self, blocks, width: int):
        self.blocks = blocks
        self.width = width

    def transform(self, columns: Columns, n: int, order: str = "C") -> np.ndarray:
        """The preprocessing's output for ``n`` rows given as ``columns``.  ``order="F"``
        (columns contiguous) fills a large matrix column by column in a twentieth of the
        time; an estimator that wants rows contiguous copies it."""
        out = np.empty((n, self.width), dtype=np.float64, order=order)
        for block in self.blocks:
            block.apply(columns, out)
        return out

    def transform_frame(self, frame, order: str = "C") -> np.ndarray:
        """The same for a DataFrame holding the columns."""
        return self.transform({name: frame[name].to_numpy() for name in self.names},
                              len(frame), order)

    @property
    def names(self) -> list[str]:
        return [name for block in self.blocks for name in block.names]


# -- compiling ------------------------------------------------------------------
def _numeric_block(transformer, columns, start, takes_missing: bool):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if _passes_on(transformer):
        # Missing values go on to the estimator as NaN: only to one that takes them.
        return NumericBlock(list(columns), None, None, None, start) if takes_missing else None
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    fill = mean = scale = None
    for _, step in steps:
        if isinstance(step, SimpleImputer) and fill is None and mean is None:
            if step.strategy not in ("mean", "median", "most_frequent", "constant") \
                    or step.add_indicator:
                return None
            fill = np.asarray(step.statistics_, dtype=np.float64)
            if len(fill) != len(columns) or np.isnan(fill).any():
                return None
        elif isinstance(step, StandardScaler) and mean is None:
            mean = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else None
            scale = np.asarray(step.scale_, dtype=np.float64) if step.with_std else None
        else:
            return None
    if fill is None:
        return None
    return NumericBlock(list(columns), fill, mean, scale, start)


def _passes_on(transformer) -> bool:
    """A ColumnTransformer's "passthrough", which fitting makes an identity
    FunctionTransformer."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        return transformer == "passthrough"
    return isinstance(transformer, FunctionTransformer) and transformer.func is None


def _categorical_block(transformer, columns, start):
    """Probe the fitted transformer one column at a time.

    One-hot and ordinal encoding are separable: the output for a row is the
    output for a reference row plus, per column, the change that column's
    value makes (NaN where the ordinal code is unknown: NaN stays NaN).  The
    check in :func:`compile_preprocess` confirms it for the real model.
    """
    import pandas as pd
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
    if not isinstance(encoder, (OneHotEncoder, OrdinalEncoder)) or \
            len(encoder.categories_) != len(columns):
        return None
    categories = [[c for c in cats if isinstance(c, str)] for cats in encoder.categories_]
    reference = {name: (cats[0] if cats else UNSEEN) for name, cats in zip(columns, categories)}

    def run(frame):
        out = transformer.transform(frame)
        return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)

    base = run(pd.DataFrame([reference], columns=list(columns), dtype=object))[0]
    compiled = []
    for name, cats in zip(columns, categories):
        values = list(cats) + [np.nan, UNSEEN]
        probe = pd.DataFrame({c: [reference[c]] * len(values) for c in columns}, dtype=object)
        probe[name] = pd.Series(values, dtype=object)
        table = run(probe) - base
        compiled.append(CategoricalColumn(name, list(cats), {c: i for i, c in enumerate(cats)},
                                          table, len(cats), len(cats) + 1))
    return CategoricalBlock(compiled, base, start)


def compile_preprocess(pipeline, kinds: Mapping[str, str]) -> FastPreprocess | None:
    """A numpy version of ``pipeline``'s preprocessing step, or None if it can't be made.

    ``kinds``: each column the pipeline takes -> numeric or categorical."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from sklearn_byoc.common.compat import refuses_missing

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    preprocess = pipeline.steps[0][1]
    if not isinstance(preprocess, ColumnTransformer) or preprocess.remainder != "drop":
        return None
    blocks, start = [], 0
    try:
        for name, transformer, columns in preprocess.transformers_:
            if name == "remainder" or transformer == "drop":
                continue
            columns = list(columns)
            if any(c not in kinds for c in columns):
                return None
            held = {kinds[c] for c in columns}
            if held == {"numeric"}:
                block = _numeric_block(transformer, columns, start,
                                       not refuses_missing(pipeline.steps[-1][1]))
            elif held == {"categorical"}:
                block = _categorical_block(transformer, columns, start)
            else:
                return None
            if block is None:
                return None
            blocks.append(block)
            start += block.width
    except Exception as exc:  # noqa: BLE001 - an unexpected layout only costs speed
        log.info("no numpy preprocessing for this pipeline (%s): scikit-learn's own "
                 "transform is used", exc)
        return None
    fast = FastPreprocess(blocks, start)
    return fast if _agrees(fast, preprocess, kinds) else None


def probe_rows(kinds: Mapping[str, str], blocks, rows: int = PROBE_ROWS,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Rows that visit every category, missing values, unseen values and extremes."""
    rng = np.random.default_rng(seed)
    categories = {c.name: c.categories for b in blocks if isinstance(b, CategoricalBlock)
                  for c in b.columns}
    columns = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            values = rng.normal(0, 1e3, rows)
            values[rng.random(rows) < 0.2] = np.nan
            values[:3] = [0.0, -1e9, 1e9]
            columns[name] = values
        else:
            cats = categories.get(name, []) + [np.nan, UNSEEN]
            picks = [cats[i % len(cats)] for i in range(rows)]
            rng.shuffle(picks)
            columns[name] = np.array(picks, dtype=object)
    return columns


def _agrees(fast: FastPreprocess, preprocess, kinds: Mapping[str, str]) -> bool:
    import pandas as pd

    rows = probe_rows(kinds, fast.blocks)
    expected = preprocess.transform(pd.DataFrame(rows, copy=False))
    expected = np.asarray(expected.toarray() if hasattr(expected, "toarray") else expected,
                          dtype=np.float64)
    got = fast.transform(rows, PROBE_ROWS)
    same = expected.shape == got.shape and np.allclose(got, expected, rtol=1e-9, atol=1e-12,
                                                       equal_nan=True)
    if not same:
        log.warning("the numpy preprocessing disagrees with scikit-learn on this model; "
                    "scikit-learn's own transform is used")
    return same
