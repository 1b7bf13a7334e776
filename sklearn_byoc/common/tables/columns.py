"""Each column of a table typed: numbers, category text, or true/false values.

Cells are typed by ``common/cells.py``, the rules ``serve`` applies to request cells.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import Table


def type_columns(table: Table) -> pd.DataFrame:
    """Each column as numbers (float or int) or as category text (objects), by ``cells``.

    A column whose every present cell is a number is numeric; a column that is
    numeric apart from a few cells fails, because that is almost always a
    data error (a unit typed into a cell, a shifted row) and silently treating
    it as a category would train a different model than the user meant.
    A column of true/false values holds Python booleans; everything else is
    category text: stripped, missing markers missing.
    """
    frame = table.frame
    unsupported = [(n, table.unsupported[n]) for n in frame.columns if n in table.unsupported]
    if unsupported:
        name, kind = unsupported[0]
        raise UserError(
            f"column {name!r} holds {kind}; the trainer takes numbers, text and true/false "
            "values: convert it (a date to a number of days, say, or to text) or leave it out "
            "with ignore_columns"
            + (f" ({len(unsupported) - 1} more such column(s))" if len(unsupported) > 1 else "")
        )
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            _check_finite(table, name, column)
            continue
        if pd.api.types.is_bool_dtype(column) \
                or pd.api.types.infer_dtype(column, skipna=True) == "boolean":
            # True/False stay booleans: a target keeps them as its labels, and
            # conform_features gives a feature their text.
            frame[name] = column.astype(object)
            continue
        values = column.to_numpy(dtype=object)
        # Factorized once: parsing, missing markers and category text each look at the
        # distinct cells only.
        distinct = cells.factorize(values)
        numbers, refused = cells.number_column(distinct)
        present = ~cells.missing_mask(distinct)
        n_present, n_refused = int(present.sum()), int(refused.sum())
        if n_present and n_refused == 0:
            # Every cell a number pandas' reader left as text ("1_000", a number of
            # 10,000 digits): numbers, as serve reads such a cell.
            _check_finite(table, name, pd.Series(numbers), values)
            frame[name] = numbers
            continue
        if n_present and n_present - n_refused >= 0.9 * n_present:
            bad = np.flatnonzero(refused)
            first = int(bad[0])
            raise UserError(
                f"column {name!r} holds numbers except {_short(values[first])} at "
                f"{table.where(first)} ({len(bad)} such value(s)); correct it or leave "
                "the cell empty to mark it missing"
            )
        frame[name] = _objects(cells.category_column(distinct), frame.index)
    return frame


def _objects(values: np.ndarray, index) -> pd.Series:
    """A column of Python objects (pandas would infer its own string type from an array)."""
    return pd.Series(values, index=index, dtype=object)


def _check_finite(table: Table, name: str, column: pd.Series, text=None) -> None:
    """inf, or a number beyond the float range (1e400), that no estimator can fit."""
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        first = int(infinite[0])
        shown = f" ({_short(text[first])})" if text is not None else ""
        raise UserError(
            f"column {name!r} holds an infinite number (or one beyond 1.8e308){shown} at "
            f"{table.where(first)} ({len(infinite)} such value(s)); correct it "
            "or leave the cell empty to mark it missing"
        )


def _where_in(X: pd.DataFrame, row: int, table: Table) -> str:
    """Where row ``row`` of ``X`` is in the files (``X``'s index holds its place in ``table``)."""
    position = X.index[row]
    return table.where(int(position)) if isinstance(position, (int, np.integer)) \
        else f"row {row + 1}"


def conform_features(X: pd.DataFrame, kinds: dict[str, str], table: Table,
                     what: str) -> pd.DataFrame:
    """The feature columns typed the way training typed them (``kinds``: name -> kind).

    Numeric features become float64 (a cell that holds no number fails,
    naming it); categorical ones category text, so a column of numbers or
    true/false values read for a categorical feature matches what training saw.
    ``X``'s index holds each row's position in ``table``, for messages.
    """
    X = X.copy(deep=False)
    for name, kind in kinds.items():
        column = X[name]
        if kind == "numeric":
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                continue
            values = column.to_numpy(dtype=object)
            numbers, refused = cells.number_column(values)
            if refused.any():
                first = int(np.flatnonzero(refused)[0])
                raise UserError(
                    f"feature {name!r} is numeric in the model but the {what} holds "
                    f"{_short(values[first])} (first at {_where_in(X, first, table)}); fix "
                    "the value or leave the cell empty"
                )
            X[name] = numbers
        elif column.dtype != object \
                or pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            X[name] = _objects(cells.category_column(column.to_numpy(dtype=object)), X.index)
    return X


def _short(value, limit: int = 60) -> str:
    """A cell for a message: a 10 MB value must not make a 10 MB failure reason."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


# Identifier columns: a rule for tables of at least this many rows.
ID_MIN_ROWS = 100
ID_TEXT_DISTINCT = 0.95


def identifier_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(columns that identify rows, integer columns merely distinct on every row).

    An identifier is a text column distinct on at least 95 % of the rows, or an integer
    column that counts the rows (distinct on every row, one more on each row in file
    order): a model learns nothing from it that holds for new rows.  An integer column
    distinct on every row that does not count them (an amount, say) may mean something.
    """
    n = len(frame)
    if n < ID_MIN_ROWS:
        return [], []
    identifiers, distinct = [], []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            # Counted first (hashing): almost every column stops there, before the
            # per-cell look at the types.
            if column.nunique() >= ID_TEXT_DISTINCT * n \
                    and column.dropna().map(type).eq(str).all():
                identifiers.append(str(name))
        elif pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.to_numpy()
            if len(np.unique(values)) == n:
                steps = np.diff(values)
                (identifiers if np.all(steps == 1) else distinct).append(str(name))
    return identifiers, distinct
