"""Each column of a table typed: numbers, category text, true/false values or dates.

Cells are typed by ``common/cells.py`` and ``common/dates.py``, the rules ``serve``
applies to request cells.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells, dates
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import Table


def type_columns(table: Table) -> pd.DataFrame:
    """Each column as numbers (float or int) or as category text (objects), by ``cells``.

    A column whose every present cell is a number is numeric; a column that is
    numeric apart from a few cells fails, because that is almost always a
    data error (a unit typed into a cell, a shifted row) and silently treating
    it as a category would train a different model than the user meant.
    A column of true/false values holds Python booleans.  A column of Parquet dates or
    timestamps, or of text whose every present cell is an ISO-8601 date, is a date
    feature: naive ``datetime64[us]`` (UTC where the values had a zone), recorded in
    ``table.dates``; text that is dates apart from a few cells fails, as numbers do.
    Everything else is category text: stripped, missing markers missing.
    """
    frame = table.frame
    unsupported = [(n, table.unsupported[n]) for n in frame.columns if n in table.unsupported]
    if unsupported:
        name, kind = unsupported[0]
        others = [n for n, _ in unsupported[1:]]
        raise UserError(
            f"column {name!r} holds {kind}, which no estimator takes (the trainer takes "
            "numbers, text, true/false values, dates and timestamps): leave it out with "
            f"ignore_columns={','.join(str(n) for n, _ in unsupported)}, or convert it"
            + (f" ({len(others)} more such column(s): {', '.join(map(repr, others[:10]))})"
               if others else "")
        )
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            frame[name] = dates.typed_dates(column)
            table.dates[str(name)] = dates.has_times(frame[name].to_numpy())
            continue
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            _check_finite(table, name, column)
            continue
        if pd.api.types.is_bool_dtype(column) \
                or pd.api.types.infer_dtype(column, skipna=True) == "boolean":
            # True/False stay booleans: a target keeps them as its labels, and
            # conform_features gives a feature their text.
            frame[name] = column.astype(object)
            continue
        # Factorized once: parsing, missing markers and category text each look at the
        # distinct cells only.  A column read as categories is its codes already.
        if _text_categories(column):
            distinct = cells.factorize(column.array)
            values = _Cells(distinct)
        else:
            values = column.to_numpy(dtype=object)
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
        if n_present and _typed_as_dates(table, name, values, distinct, n_present):
            continue
        frame[name] = _objects(cells.category_column(distinct), frame.index)
    return frame


def _text_categories(column: pd.Series) -> bool:
    """Whether a column is pandas categories of text (how CSV text columns are read)."""
    return isinstance(column.dtype, pd.CategoricalDtype) and pd.api.types.infer_dtype(
        column.dtype.categories, skipna=True) in ("string", "empty")


class _Cells:
    """The cells of a factorized column by row, each looked up when asked for (a message
    shows one; the column is never made into a million objects)."""

    def __init__(self, distinct: cells.Factorized):
        self.distinct = distinct

    def __getitem__(self, row: int):
        code = self.distinct.codes[row]
        return self.distinct.uniques[code] if code >= 0 else cells.MISSING


def _typed_as_dates(table: Table, name, values, distinct, n_present: int) -> bool:
    """Types a text column as dates when its present cells are ISO-8601 dates; fails
    when all but a few are (the rule numbers follow)."""
    first = next((c for c in distinct.uniques if isinstance(c, str)
                  and c.strip() not in cells.MISSING_MARKERS), None)
    if first is None or not dates.is_date_text(first):
        return False  # only a column whose first present cell looks like a date is parsed
    parsed, refused = dates.date_column(distinct)
    n_refused = int(refused.sum())
    if n_refused == 0:
        table.frame[name] = parsed
        table.dates[str(name)] = dates.has_times(parsed)
        return True
    if n_present - n_refused >= 0.9 * n_present:
        bad = np.flatnonzero(refused)
        raise UserError(
            f"column {name!r} holds ISO-8601 dates except {_short(values[int(bad[0])])} at "
            f"{table.where(int(bad[0]))} ({len(bad)} such value(s)); correct it (as "
            "2024-03-01 or 2024-03-01T12:30:00) or leave the cell empty to mark it missing"
        )
    return False


def _objects(values: np.ndarray, index) -> pd.Series:
    """A column of Python objects (pandas would infer its own string type from an array)."""
    return pd.Series(values, index=index, dtype=object, copy=False)


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
                     what: str, parts: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The feature columns typed the way training typed them (``kinds``: name -> kind).

    Numeric features become float64 (a cell that holds no number fails,
    naming it); categorical ones category text, so a column of numbers or
    true/false values read for a categorical feature matches what training saw.
    A date feature becomes its part columns (``parts``: date feature -> its parts), in
    its place.  ``X``'s index holds each row's position in ``table``, for messages.
    """
    X = X.copy(deep=False)
    expanded = {}
    for name, kind in kinds.items():
        column = X[name]
        if kind == "date":
            expanded[name] = dates.expand(name, _date_values(column, name, X, table, what),
                                          (parts or {})[name])
        elif kind == "numeric":
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                continue
            values = column.to_numpy(dtype=object)
            numbers, refused = cells.number_column(values)
            _refuse_first(refused, values, X, table, f"feature {name!r} is numeric in the "
                          f"model but the {what}", "fix the value or leave the cell empty")
            X[name] = numbers
        elif column.dtype != object \
                or pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            X[name] = _objects(cells.category_column(column.to_numpy(dtype=object)), X.index)
    if not expanded:
        return X
    columns = {}
    for name in X.columns:
        if name in expanded:
            columns.update((part, pd.Series(values, index=X.index))
                           for part, values in expanded[name].items())
        else:
            columns[name] = X[name]
    return pd.DataFrame(columns, index=X.index, copy=False)


def _date_values(column: pd.Series, name: str, X: pd.DataFrame, table: Table,
                 what: str) -> np.ndarray:
    """A date feature's column as ``datetime64[us]``: as typed on reading, or parsed from
    the text (or other cells) read for it."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return dates.typed_dates(column)
    values = column.to_numpy(dtype=object)
    parsed, refused = dates.date_column(values)
    _refuse_first(refused, values, X, table, f"feature {name!r} is a date in the model but "
                  f"the {what}", "write it as an ISO-8601 date (2024-03-01 or "
                  "2024-03-01T12:30:00) or leave the cell empty")
    return parsed


def _refuse_first(refused: np.ndarray, values, X: pd.DataFrame, table: Table, said: str,
                  fix: str) -> None:
    """Fails naming the first refused cell of a feature, and where it is."""
    if refused.any():
        first = int(np.flatnonzero(refused)[0])
        raise UserError(f"{said} holds {_short(values[first])} (first at "
                        f"{_where_in(X, first, table)}); {fix}")


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
