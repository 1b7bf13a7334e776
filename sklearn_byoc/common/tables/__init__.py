"""A channel's or a processing input's data files as one table, in four jobs:

- ``scan``: which files of a folder are data, and their format;
- ``read``: CSV and Parquet files (or one host's share of them) into one frame;
- ``columns``: each column typed as numbers, text, true/false (``common/cells.py``) or
  dates (``common/dates.py``);
- ``target``: the column to predict, and the task it poses.

This module holds what they share: the :class:`Table` a folder reads as.
"""
from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CSV, PARQUET = "csv", "parquet"


@dataclass
class Table:
    frame: pd.DataFrame
    has_header: bool
    files: list[Path] = field(default_factory=list)
    # For each of ``files``: the position in ``frame`` of its first row, and that row's
    # 1-based record number in the file (2 after a CSV header); ``where`` turns a row's
    # position into a line.  Two numbers per file, not per row: a million rows would take
    # 16 MB.
    file_starts: list[int] | None = None
    first_records: list[int] | None = None
    format: str = CSV
    # Every column the files hold, in their order, before any was left out.
    all_columns: list[str] = field(default_factory=list)
    # Columns left out by ignore_columns, in file order.
    ignored: list[str] = field(default_factory=list)
    # Parquet columns of a type no estimator takes: name -> the type.
    unsupported: dict[str, str] = field(default_factory=dict)
    # Date features (common/dates.py), typed as datetime64: name -> whether it holds times.
    dates: dict[str, bool] = field(default_factory=dict)
    # For each of ``files`` read in part (a host's share): where its part starts, as
    # "byte 1048576" or "row group 3"; None for a file read whole.
    parts: list[str | None] = field(default_factory=list)

    def where(self, row_position: int) -> str:
        """'line 17 of train/part-1.csv' (or 'row 17 of part-1.parquet') for a row of the frame."""
        if self.file_starts is None or self.first_records is None:
            return f"row {row_position + 1}"
        index = bisect.bisect_right(self.file_starts, row_position) - 1
        path = self.files[index]
        record = row_position - self.file_starts[index] + self.first_records[index]
        part = self.parts[index] if index < len(self.parts) else None
        if part is not None:
            return f"record {record} of the part of {path} from {part}"
        if self.format == PARQUET:
            return f"row {record} of {path}"
        return f"line {_line_of_record(path, record)} of {path}"


def _line_of_record(path: Path, record: int) -> int:
    """The 1-based line where the ``record``-th record of a CSV file starts.

    pandas skips blank lines and lets quoted cells span lines, so a record's
    position in the frame is not its line in the file.  Only used in messages.
    """
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            seen, end = 0, 0
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                seen += 1
                if seen == record:
                    return start
    except (OSError, csv.Error):
        pass
    return record
