"""The column to predict, when it is named or not, and the task its values pose."""
from __future__ import annotations

import difflib
import logging

import numpy as np
import pandas as pd

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import Table

log = logging.getLogger("tables")


def _bad_target(option: str, value, expected: str, hint: str = "") -> UserError:
    """A bad target: a hyperparameter error for train, an option error for processing."""
    from sklearn_byoc.common.errors import HyperparameterError

    if option.startswith("-"):
        return UserError(f"{option} must be {expected}, got {value!r}"
                         + (f"; {hint}" if hint else ""))
    return HyperparameterError(option, value, expected, hint=hint)


# A header column of one of these names (any case) is the target when none is named.
TARGET_NAMES = ("target", "label", "class", "y")


def default_target(table: Table, *, option: str = "target") -> str:
    """The target when none is named; the log says which rule chose it.

    With a header: the one column named target, label, class or y; with none
    of them, the first column (SageMaker's built-in algorithms take the
    first); with several, no guess.  Without a header: the first column.
    """
    columns = [str(c) for c in table.frame.columns]
    if not table.has_header:
        log.info("target: %r, the first column (the data has no header row)", columns[0])
        return columns[0]
    named = [c for c in columns if c.strip().lower() in TARGET_NAMES]
    if len(named) == 1:
        log.info("target: %r, the only column named target, label, class or y", named[0])
        return named[0]
    if not named:
        log.info("target: %r, the first column (no column is named target, label, class or "
                 "y; SageMaker's built-in algorithms take the first)", columns[0])
        return columns[0]
    how = f"{option} NAME" if option.startswith("-") else f"{option}=NAME"
    raise UserError(
        f"the data has {len(named)} columns that could be the target "
        f"({', '.join(map(repr, named))}): say which one with {how}"
    )


def resolve_target(table: Table, target: str | None, *, option: str = "target") -> str:
    """The target column's name; ``target`` is a name or a 0-based index of the files'
    columns (see :func:`default_target` when it is not given).

    ``option`` names where the value came from: the ``target`` hyperparameter
    or processing's ``--target`` option.
    """
    if target is None or target == "":
        return default_target(table, option=option)
    columns = table.all_columns or [str(c) for c in table.frame.columns]
    if target in columns:
        return target
    try:
        index = int(target)
    except ValueError:
        index = None
    if index is not None:
        if -len(columns) <= index < len(columns):
            return columns[index]
        raise _bad_target(option, target, f"a column index between 0 and {len(columns) - 1}")
    if not table.has_header:
        raise _bad_target(option, target, "a 0-based column index",
                          "the data has no header row, so columns have no names")
    close = difflib.get_close_matches(target, [str(c) for c in columns], n=1)
    raise _bad_target(option, target, "a column of the data",
                      (f"did you mean {close[0]!r}? " if close else "")
                      + "columns: " + ", ".join(map(str, columns[:50])))


def infer_task(y: pd.Series) -> str:
    """Text or a few whole-number values: classification; otherwise regression."""
    values = y.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    numbers = values.to_numpy(dtype=float)
    if np.all(np.mod(numbers, 1) == 0) and values.nunique() <= 20:
        return "classification"
    return "regression"
