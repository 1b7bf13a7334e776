"""What pandas' chunked CSV parse needs to give what parsing each column whole gives.

``pandas.read_csv`` parses a file in chunks (on several threads for a local file) unless
told ``low_memory=False``, which takes twice as long; each chunk types its columns on its
own, so a column of numbers with a word in a later chunk comes out as floats and strings
mixed.  ``read.read_csv_file`` reads in chunks, with the columns a sample shows to hold text
as categories, and these functions put right what chunking changed.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells

log = logging.getLogger("tables")


def text_columns(rows: list[list[str]]) -> list[int]:
    """Positions of the columns in which some sample row holds a present cell that is no
    number: read as pandas categories, so its C parser keeps each distinct text once."""
    width = max((len(r) for r in rows), default=0)
    return [j for j in range(width)
            if any(j < len(r) and r[j].strip() not in cells.MISSING_MARKERS
                   and not cells.is_number(r[j]) for r in rows)]


# Cells above this magnitude parse as uint64 in a whole column but as float64 where
# pandas joins an int64 chunk with a uint64 one.
UINT_ONLY = 2.0 ** 63


def not_whole_column(column: pd.Series) -> bool | None:
    """Whether a column read in chunks may differ from the same column parsed whole: None
    for a column of True/False categories, which ``booleans`` turns into that parse."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        if _category_truths(categories) is not None:
            return None
        kind = pd.api.types.infer_dtype(categories, skipna=True)
        if kind == "string":
            # Every category a number: pandas 3.0 leaves them as text, where the whole
            # column parses as numbers (pandas 3.1 parses the categories themselves).
            return len(categories) > 0 and all(cells.is_number(c) for c in categories)
        return kind != "empty"
    if pd.api.types.is_float_dtype(dtype):
        values = np.abs(column.to_numpy())
        return bool(((values >= UINT_ONLY) & (values < np.inf)).any())
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return False
    # A chunk of numbers (or True/False) next to a chunk of text: the whole column is text.
    return pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty", "boolean")


# What pandas' C parser reads as True and as False.
TRUE_TEXT = frozenset({"True", "TRUE", "true"})
FALSE_TEXT = frozenset({"False", "FALSE", "false"})


def _category_truths(categories: pd.Index) -> np.ndarray | None:
    """Each category as a bool where every one is a true/false value: parsed already
    (pandas 3.1), or as the text pandas 3.0 leaves in categories; else None."""
    if pd.api.types.is_bool_dtype(categories.dtype):
        return np.asarray(categories, dtype=bool)
    values = list(categories)
    if not values or not all(isinstance(v, str) and v in TRUE_TEXT | FALSE_TEXT
                             for v in values):
        return None
    return np.array([v in TRUE_TEXT for v in values], dtype=bool)


def booleans(column: pd.Series) -> np.ndarray:
    """A column of True/False categories as the whole-column parse gives it: bool, or
    objects with NaN where cells are missing."""
    codes = column.cat.codes.to_numpy()
    values = _category_truths(column.cat.categories)[codes]
    if not (codes < 0).any():
        return values
    values = values.astype(object)
    values[codes < 0] = np.nan
    return values


def as_whole_columns(frame: pd.DataFrame, parse: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """``frame`` (parsed in chunks) with each column as the whole-column parse gives it."""
    again = []
    for j in range(frame.shape[1]):
        differs = not_whole_column(frame.iloc[:, j])
        if differs is None:
            frame.isetitem(j, booleans(frame.iloc[:, j]))
        elif differs:
            again.append(j)
    if again:
        log.info("parsing %d column(s) again, whole, as their cells differ in kind: %s",
                 len(again), ", ".join(str(frame.columns[j]) for j in again[:10]))
        whole = parse(usecols=again, low_memory=False)
        for k, j in enumerate(again):
            frame.isetitem(j, whole.iloc[:, k])
    return frame


def same_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The frames with each column that every file read as categories holding the same
    categories, so they stack as categories (pandas would stack them as a million objects)."""
    alike = [j for j in range(frames[0].shape[1])
             if all(isinstance(f.dtypes.iloc[j], pd.CategoricalDtype) for f in frames)]
    if not alike:
        return frames
    frames = [f.copy(deep=False) for f in frames]
    for j in alike:
        categories = pd.api.types.union_categoricals(
            [f.iloc[:, j].array for f in frames], ignore_order=True).categories
        for frame in frames:
            frame.isetitem(j, frame.iloc[:, j].cat.set_categories(categories))
    return frames

