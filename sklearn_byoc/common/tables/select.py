"""Columns a user names by name or 0-based index (``ignore_columns``, ``keep_columns``,
``prepare --ignore-columns``), turned into the table's column names once."""
from __future__ import annotations

import difflib
import logging
from typing import Callable

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import Table

log = logging.getLogger(__name__)

# (the item given, what it must be, a hint) -> the error naming the option it came from
OptionError = Callable[[str, str, str], UserError]


def option_error(option: str) -> OptionError:
    """Errors for a command-line option such as ``--ignore-columns``."""
    def error(item: str, expected: str, hint: str) -> UserError:
        return UserError(f"{option} must name {expected}, got {item!r}"
                         + (f"; {hint}" if hint else ""))
    return error


def named_columns(items: list[str], columns: list[str], *, has_header: bool,
                  error: OptionError) -> list[str]:
    """``items`` (names, or 0-based indexes counted from the end when negative) as the
    column names they mean, each once, in the order given."""
    names = []
    for item in items:
        if item in columns:
            names.append(item)
            continue
        try:
            index = int(item)
        except ValueError:
            index = None
        if index is not None and -len(columns) <= index < len(columns):
            names.append(columns[index])
        elif index is not None:
            raise error(item, f"a column index between 0 and {len(columns) - 1}", "")
        elif not has_header:
            raise error(item, "0-based column indexes",
                        "the data has no header row, so columns have no names")
        else:
            close = difflib.get_close_matches(item, columns, n=1)
            raise error(item, "a column of the data (name or 0-based index)",
                        (f"did you mean {close[0]!r}? " if close else "")
                        + "columns: " + ", ".join(columns[:50]))
    return list(dict.fromkeys(names))


def leave_out(items: list[str], error: OptionError, what: str) -> Callable[[Table], list[str]]:
    """The columns to leave out of a table as it is read (``read_folder(ignore=...)``), in
    file order, logged once."""
    def resolve(table: Table) -> list[str]:
        columns = [str(c) for c in table.frame.columns]
        chosen = set(named_columns(items, columns, has_header=table.has_header, error=error))
        if chosen:
            log.info("leaving out column(s) %s (%s)",
                     ", ".join(repr(c) for c in columns if c in chosen), what)
        return [c for c in columns if c in chosen]
    return resolve
