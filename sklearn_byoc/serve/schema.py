"""The model's input schema, and turning raw cells into typed feature columns.

Decoders hand over cells (strings from CSV, JSON values) by feature; this
module types them the way the training data was typed — numbers as float64,
categories as strings, a date feature as its numeric part columns
(``common/dates.py``) — and reports a bad cell by row and column.  A request
carries the features as training read them (a date as one column of ISO-8601
text); :class:`Records` holds the columns the fitted pipeline takes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sklearn_byoc.common import cells as cell_rules
from sklearn_byoc.common import dates
from sklearn_byoc.common.model_files import ModelMetadata
from sklearn_byoc.serve.errors import RequestError

# How a cell is read (missing markers, numbers, categories) is decided once, for
# every stage, in common/cells.py.
MISSING_MARKERS = cell_rules.MISSING_MARKERS


@dataclass
class Records:
    """Decoded input: one array per column the model takes, all of length ``n``, in the
    model's order (each date feature as its parts)."""

    columns: dict[str, np.ndarray]
    n: int
    first_row: int = 1  # the body's row number of the first record (block by block)

    @classmethod
    def empty(cls, schema: "Schema") -> "Records":
        return cls({name: np.empty(0, dtype=np.float64 if kind == "numeric" else object)
                    for name, kind in schema.model_kinds.items()}, 0)

    def frame(self):
        import pandas as pd

        # Text columns as plain objects, as the pipeline saw them in training.
        columns = {name: (np.asarray(values, dtype=object)
                          if isinstance(values, pd.Categorical) else values)
                   for name, values in self.columns.items()}
        return pd.DataFrame(columns, copy=False)

    def array(self, dtype=np.float32) -> np.ndarray:
        """The rows as one array: of ``dtype`` when every feature is a number, else of
        objects."""
        columns = list(self.columns.values())
        if not columns:
            return np.empty((self.n, 0), dtype=dtype)
        if all(np.asarray(c).dtype.kind == "f" for c in columns):
            return np.column_stack(columns).astype(dtype, copy=False)
        return np.column_stack([np.asarray(c, dtype=object) for c in columns])


class Schema:
    def __init__(self, metadata: ModelMetadata):
        self.names = metadata.feature_names
        self.kinds = metadata.kinds
        # What the fitted pipeline takes: each date feature as its numeric parts.
        self.date_parts = metadata.date_parts
        self.model_kinds = dates.column_kinds(self.kinds, self.date_parts)
        self.model_names = list(self.model_kinds)
        self.position = {name: i for i, name in enumerate(self.names)}
        self.target = metadata.target
        self.ignored = list(metadata.ignored_columns)
        # Columns a request may carry that are not features: the target, and those
        # training left out (ignore_columns), dropped by name.
        self.dropped = frozenset(n for n in [metadata.target, *self.ignored] if n)
        self.width = len(self.names)
        # Rows without a header may also carry the ignored columns, where training
        # saw them, with or without the target: width -> body column -> feature position.
        self.layouts: dict[int, list[int | None]] = {}
        if self.ignored and metadata.columns:
            full = [c.name if c.role == "feature" else None for c in metadata.columns]
            without_target = [c.name if c.role == "feature" else None
                              for c in metadata.columns if c.role != "target"]
            for layout in (full, without_target):
                self.layouts[len(layout)] = [self.position.get(n) if n else None
                                             for n in layout]

    def positions(self, width: int, row: int = 1) -> list[int | None] | None:
        """Body column -> feature position for headerless rows of ``width`` values; None
        when they are the features alone, in training order."""
        if width == self.width:
            return None
        layout = self.layouts.get(width)
        if layout is None:
            raise self.width_error(width, row)
        return layout

    def describe(self, limit: int = 30) -> str:
        names = ", ".join(self.names[:limit])
        more = f", ... ({self.width} in all)" if self.width > limit else ""
        return f"{self.width} features in this order: {names}{more}"

    # -- typing cells -------------------------------------------------------
    def numeric_column(self, name: str, cells: list, first_row: int = 1) -> np.ndarray:
        try:
            # numpy would read JSON true/false as 1.0/0.0: booleans take the
            # checking path below.
            if any(type(c) is bool for c in cells):
                raise TypeError
            values = np.array(cells, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            values = None
        # A list inside a cell (a JSON object's value) makes a 2-D array.
        if values is None or values.shape != (len(cells),):
            values = np.array([self._number(name, c, first_row + i)
                               for i, c in enumerate(cells)], dtype=np.float64)
        if not np.isfinite(values).all():
            bad = np.flatnonzero(np.isinf(values))
            if len(bad):
                first = int(bad[0])
                raise RequestError(
                    f"row {first_row + first}, feature {name!r}: {_short(cells[first])} "
                    "is not a finite number; send a number, or an empty value for missing",
                    kind="not a finite number", row=first_row + first, feature=name)
        return values

    @staticmethod
    def _number(name: str, cell, row: int) -> float:
        try:
            return cell_rules.parse_number(cell)
        except cell_rules.CellError as exc:
            raise RequestError(f"row {row}, feature {name!r}: {exc}", kind="not a number",
                               row=row, feature=name) from None

    def categorical_column(self, name: str, cells: list, first_row: int = 1) -> np.ndarray:
        out = np.empty(len(cells), dtype=object)
        for i, cell in enumerate(cells):
            out[i] = self._category(name, cell, first_row + i)
        return out

    @staticmethod
    def _category(name: str, cell, row: int):
        try:
            return cell_rules.category_text(cell)
        except cell_rules.CellError as exc:
            raise RequestError(f"row {row}, feature {name!r}: {exc}",
                               kind="not a text or number value", row=row,
                               feature=name) from None

    def date_column(self, name: str, cells: list, first_row: int = 1) -> np.ndarray:
        array = np.empty(len(cells), dtype=object)
        for i, cell in enumerate(cells):
            array[i] = cell
        try:
            values, refused = dates.date_column(array)
        except TypeError:  # unhashable cells (a JSON list or object): one by one
            values = np.empty(len(cells), dtype=dates.UNIT)
            for i, cell in enumerate(cells):
                values[i] = self._date(name, cell, first_row + i)
            return values
        for first in np.flatnonzero(refused)[:1]:
            self._date(name, cells[first], first_row + int(first))
        return values

    @staticmethod
    def _date(name: str, cell, row: int) -> np.datetime64:
        try:
            return dates.parse_date(cell)
        except cell_rules.CellError as exc:
            raise RequestError(f"row {row}, feature {name!r}: {exc}", kind="not a date",
                               row=row, feature=name) from None

    def column(self, name: str, cells: list, first_row: int = 1) -> np.ndarray:
        """A feature's cells typed: numbers, category text, or a date feature's instants
        (``datetime64``, which :meth:`records` turns into its parts)."""
        kind = self.kinds[name]
        if kind == "numeric":
            return self.numeric_column(name, cells, first_row)
        if kind == "date":
            return self.date_column(name, cells, first_row)
        return self.categorical_column(name, cells, first_row)

    def records(self, columns: dict[str, np.ndarray], n: int) -> Records:
        """The typed feature columns as the model's columns: a date feature's parts in
        its place."""
        out: dict[str, np.ndarray] = {}
        for name in self.names:
            if name in self.date_parts:
                out.update(dates.expand(name, columns[name], self.date_parts[name]))
            else:
                out[name] = columns[name]
        return Records(out, n)

    # -- rows -----------------------------------------------------------------
    def from_positional_rows(self, rows: list[list], *, first_row: int = 1) -> Records:
        """Rows of values in training feature order (ignored columns and the target may
        sit where training saw them; see :meth:`positions`)."""
        width = len(rows[0]) if rows else self.width
        positions = self.positions(width, first_row)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise self.width_error(len(row), first_row + i)
        if positions is None:
            columns = {name: self.column(name, [row[j] for row in rows], first_row)
                       for j, name in enumerate(self.names)}
        else:
            columns = {self.names[p]: self.column(self.names[p], [row[j] for row in rows],
                                                  first_row)
                       for j, p in enumerate(positions) if p is not None}
        return self.records(columns, len(rows))

    def from_numeric_array(self, rows: np.ndarray, *, first_row: int = 1) -> Records:
        """A 2-D array of numbers in training feature order (an NPY body)."""
        positions = self.positions(rows.shape[1], first_row)
        if positions is not None:
            rows = rows[:, [positions.index(p) for p in range(self.width)]]
        columns = {}
        for j, name in enumerate(self.names):
            if self.kinds[name] == "numeric":
                values = rows[:, j].astype(np.float64)
                bad = np.flatnonzero(np.isinf(values))
                if len(bad):
                    raise RequestError(
                        f"row {first_row + int(bad[0])}, feature {name!r}: {values[bad[0]]} "
                        "is not a finite number; send a number, or NaN for missing",
                        kind="not a finite number", row=first_row + int(bad[0]), feature=name)
                columns[name] = values
            else:
                columns[name] = self.column(name, rows[:, j].tolist(), first_row)
        return self.records(columns, len(rows))

    def from_named_rows(self, rows: list[dict]) -> Records:
        """Rows as objects keyed by feature name; a missing key is a missing value."""
        known = self.position
        for i, row in enumerate(rows):
            unknown = [k for k in row if k not in known and k not in self.dropped]
            if unknown:
                raise RequestError(
                    f"row {i + 1} has unknown feature(s) {', '.join(map(repr, unknown[:10]))}; "
                    f"the model expects {self.describe()}", kind="unknown features", row=i + 1)
            if not any(k in known for k in row):
                raise RequestError(f"row {i + 1} names none of the model's features; the model "
                                   f"expects {self.describe()}", kind="no known features",
                                   row=i + 1)
        columns = {name: self.column(name, [row.get(name) for row in rows])
                   for name in self.names}
        return self.records(columns, len(rows))

    def width_error(self, got: int, row: int) -> RequestError:
        return RequestError(self.width_message(got, row), kind="wrong number of values",
                            row=row)

    def width_message(self, got: int, row: int) -> str:
        hint = ""
        if self.layouts:
            ignored = ", ".join(map(repr, self.ignored[:10]))
            widths = " or ".join(str(w) for w in sorted(self.layouts))
            hint = (f" (or {widths} values: with the column(s) training ignored, {ignored}, "
                    "and the target, where the training data had them)")
        elif got == self.width + 1 and self.target:
            hint = (f" (it looks like the target column {self.target!r} is included; "
                    "send features only)")
        return f"row {row} has {got} values but the model expects {self.describe()}{hint}"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"
