"""A cell as training saw it: missing values, numbers, categories and labels.

A model answers sensibly only when every stage turns the same cell into the
same value: ``train`` reading CSV or Parquet, ``processing evaluate`` reading
the test split, and ``serve`` reading CSV, JSON or JSON Lines.  This module is
that one definition.  Its functions are pure (no pandas, no state): a cell is
``None``, a ``str``, a ``bool``, an ``int`` or a ``float`` (numpy scalars are
taken as their Python values).

The rules, which ``serve/schema.py`` applies to every request cell:

- **missing** — ``None``, a float NaN, or text that is one of
  :data:`MISSING_MARKERS` once surrounding spaces are stripped.  Those are the
  strings pandas' CSV reader takes as missing by default, plus ``"?"``
  (the UCI convention), which training passes to the reader as well;
- **numbers** (:func:`parse_number`) — ints and floats as they are, text as
  Python's ``float()`` reads it after stripping spaces; missing is NaN; a
  boolean, or text that is no number, is refused;
- **categories** (:func:`category_text`) — text stripped of surrounding
  spaces; ``True``/``False`` as ``"True"``/``"False"``; a whole float as its
  integer (``2.0`` -> ``"2"``, so a JSON number matches the CSV text ``2``);
  missing is NaN, which is what scikit-learn's imputers take as missing in a
  column of objects;
- **labels** (:func:`label_value`) — class labels as JSON-friendly Python
  values: a whole float as an int (a target read as ``1.0`` is the class
  ``1``).

The vectorised forms (:func:`number_column`, :func:`category_column`) apply
the same functions to each distinct value of a column, so a column of five
million rows and twenty categories costs twenty calls.
"""
from __future__ import annotations

import math
from typing import Any

# pandas' default NA strings (pandas._libs.parsers.STR_NA_VALUES, compared in
# tests/unit/test_cells.py so the two cannot drift apart).
PANDAS_MISSING_MARKERS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
# Passed to pandas' reader as na_values on top of its defaults.
EXTRA_MISSING_MARKERS = ("?",)
MISSING_MARKERS = PANDAS_MISSING_MARKERS | frozenset(EXTRA_MISSING_MARKERS)

MISSING = math.nan


class CellError(ValueError):
    """A cell that cannot be what its column needs; the message says what it got."""


def _python(cell: Any) -> Any:
    """A numpy scalar as the Python value it holds (np.float64 is already a float)."""
    item = getattr(cell, "item", None)
    if item is not None and type(cell).__module__ == "numpy":
        return item()
    return cell


def is_missing(cell: Any) -> bool:
    cell = _python(cell)
    if cell is None:
        return True
    if isinstance(cell, float):
        return math.isnan(cell)
    if isinstance(cell, str):
        return cell.strip() in MISSING_MARKERS
    # pandas.NA and NaT: the values pandas' nullable columns use for missing.
    return type(cell).__name__ in ("NAType", "NaTType")


def parse_number(cell: Any) -> float:
    """The number a cell holds, NaN when it is missing; raises :class:`CellError` otherwise.

    An int beyond the float range gives ``inf`` (callers refuse non-finite
    values with their own message, naming row and column).
    """
    cell = _python(cell)
    if cell is None:
        return MISSING
    if isinstance(cell, bool):
        raise CellError(f"expected a number, got {cell!r}")
    if isinstance(cell, float):
        return cell
    if isinstance(cell, int):
        try:
            return float(cell)
        except OverflowError:  # a JSON integer beyond 1.8e308
            return math.inf
    if isinstance(cell, str):
        text = cell.strip()
        if text in MISSING_MARKERS:
            return MISSING
        try:
            return float(text)
        except ValueError:
            pass
    elif is_missing(cell):
        return MISSING
    raise CellError(f"expected a number, got {short(cell)}")


def is_number(text: str) -> bool:
    """Whether a text cell holds a number (a missing marker does not)."""
    try:
        return not math.isnan(parse_number(text))
    except CellError:
        return False


def category_text(cell: Any) -> str | float:
    """A categorical cell as the text training saw, NaN when it is missing."""
    cell = _python(cell)
    if cell is None:
        return MISSING
    if isinstance(cell, str):
        text = cell.strip()
        return MISSING if text in MISSING_MARKERS else text
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float):
        if math.isnan(cell):
            return MISSING
        return str(int(cell)) if cell.is_integer() else str(cell)
    if isinstance(cell, int):
        return str(cell)
    if is_missing(cell):
        return MISSING
    raise CellError(f"expected a text or number value, got {short(cell)}")


def label_value(value: Any) -> Any:
    """A class label as a JSON-friendly Python value (``1.0`` read from CSV is ``1``)."""
    value = _python(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def short(value: Any, limit: int = 60) -> str:
    """A cell for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


# -- whole columns ------------------------------------------------------------------
class Factorized:
    """A column as codes into its distinct cells (code -1: missing), made once by
    :func:`factorize` and taken by every whole-column function below in place of the cells."""

    def __init__(self, codes, uniques):
        self.codes, self.uniques = codes, uniques


def factorize(values) -> Factorized:
    return Factorized(*distinct(values))


def distinct(values):
    """(codes, distinct values) of a column (or of a :class:`Factorized` one); code -1 marks
    a missing cell."""
    import numpy as np
    import pandas as pd

    if isinstance(values, Factorized):
        return values.codes, values.uniques
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return _first_seen(np.asarray(values.codes), values.categories)
    array = np.asarray(values, dtype=object) if not hasattr(values, "dtype") else values
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def _first_seen(codes, categories):
    """(codes, distinct values) of pandas categories, the values in the order rows first
    show them, as ``pandas.factorize`` gives them (categories come sorted)."""
    import numpy as np
    import pandas as pd

    order = pd.unique(codes)
    order = order[order >= 0].astype(np.intp)
    recode = np.full(len(categories) + 1, -1, dtype=np.intp)  # the last: code -1, missing
    recode[order] = np.arange(len(order))
    return recode[codes], np.asarray(categories, dtype=object)[order]


def number_column(values):
    """(float64 array, boolean mask of cells that hold no number) for a column of cells.

    Missing cells are NaN and not in the mask; refused cells are NaN and in it.
    """
    import numpy as np

    codes, uniques = distinct(values)
    parsed = np.empty(len(uniques) + 1, dtype=np.float64)
    refused = np.zeros(len(uniques) + 1, dtype=bool)
    for i, cell in enumerate(uniques):
        try:
            parsed[i] = parse_number(cell)
        except CellError:
            parsed[i], refused[i] = np.nan, True
    parsed[-1] = np.nan  # code -1: missing
    return parsed[codes], refused[codes]


def _each_distinct(values, rule):
    """An object array of ``rule`` applied once per distinct cell (missing stays missing)."""
    import numpy as np

    codes, uniques = distinct(values)
    out = np.empty(len(uniques) + 1, dtype=object)
    for i, cell in enumerate(uniques):
        out[i] = rule(cell)
    out[-1] = MISSING
    return out[codes]


def category_column(values):
    """An object array of :func:`category_text` of each cell."""
    return _each_distinct(values, category_text)


def missing_mask(values):
    """Boolean mask of the missing cells of a column."""
    codes, uniques = distinct(values)
    import numpy as np

    flags = np.array([is_missing(c) for c in uniques] + [True], dtype=bool)
    return flags[codes]


def label_column(values):
    """An object array of :func:`label_value` of each cell (missing cells stay missing)."""
    return _each_distinct(values, label_value)
