"""Reading the CSV files of a channel or processing input into one table.

SageMaker copies every object under a channel's S3 prefix into the channel's
folder, keeping the key's sub-folders, so a channel is read recursively and
file names carry no meaning.  CSV files may or may not start with a header:
SageMaker's built-in algorithms expect none (target first), while files
written by pandas or Spark usually have one.  ``header="auto"`` tells them
apart from the data itself.
"""
from __future__ import annotations

import csv
import logging
import lzma
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_byoc.common import compat
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("tables")

# Spark writes _SUCCESS markers and .crc files next to its output; hidden files
# are editor or OS droppings.  None of them is data.
SKIPPED_PREFIXES = (".", "_")
SKIPPED_SUFFIXES = (".crc", ".manifest", ".md", ".json")

# Markers read as "missing" on top of pandas' defaults ("", "NA", "NaN", "null", ...).
EXTRA_NA_VALUES = ["?"]

HEADER_CHOICES = ("auto", "present", "absent")

# pandas reads a file whose name ends in .gz, .bz2, .zip, .xz or .zst as
# compressed; a file that is not what its name says fails with these.
UNREADABLE_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError)
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")
SAMPLE_ROWS = 200


@dataclass
class Table:
    frame: pd.DataFrame
    has_header: bool
    files: list[Path] = field(default_factory=list)
    # For each row of ``frame``: index into ``files`` and 1-based record number in
    # that file (a header counts as record 1); ``where`` turns it into a line.
    row_file: np.ndarray | None = None
    row_line: np.ndarray | None = None

    def where(self, row_position: int) -> str:
        """'line 17 of train/part-1.csv' for a row of the frame."""
        if self.row_file is None or self.row_line is None:
            return f"row {row_position + 1}"
        path = self.files[int(self.row_file[row_position])]
        return f"line {_line_of_record(path, int(self.row_line[row_position]))} of {path}"


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


def list_data_files(folder: Path) -> list[Path]:
    """Every data file under ``folder``, recursively, in a stable order."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(SKIPPED_PREFIXES) for part in relative.parts):
            continue
        if path.name.lower().endswith(SKIPPED_SUFFIXES) or not path.is_file():
            continue
        files.append(path)
    return files


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def looks_like_header(first_row: list[str], rows: list[list[str]]) -> bool:
    """Decide whether ``first_row`` names the columns of ``rows``.

    A header never holds a number.  It is a header when some column is
    numeric below it while its own cell is text, or, for all-text data, when
    none of its cells reappears in its column.
    """
    cells = [c.strip() for c in first_row]
    if any(c and is_number(c) for c in cells):
        return False
    if not rows:
        # A lone line of text with no data below: treat as data; the caller
        # reports the too-small file if it matters.
        return False
    for j, cell in enumerate(cells):
        column = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
        if column and cell and sum(is_number(v) for v in column) >= 0.9 * len(column):
            return True
    named = [c for c in cells if c]
    if len(set(named)) != len(named) or not named:
        return False
    for j, cell in enumerate(cells):
        if cell and any(j < len(r) and r[j].strip() == cell for r in rows):
            return False
    return True


def _read_sample(path: Path) -> list[list[str]]:
    nul = None if path.name.lower().endswith(COMPRESSED_SUFFIXES) else \
        compat.nul_byte_offset(path)
    if nul is not None:
        raise UserError(f"{path} is not UTF-8 text (a NUL byte at offset {nul}); save it as "
                        "UTF-8 CSV")
    try:
        sample = pd.read_csv(path, header=None, nrows=SAMPLE_ROWS, dtype=str,
                             keep_default_na=False, encoding="utf-8",
                             skip_blank_lines=True)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc
    except pd.errors.EmptyDataError:
        return []
    except (pd.errors.ParserError, ValueError, *UNREADABLE_ERRORS) as exc:
        raise _not_csv(path, exc) from exc
    return sample.fillna("").values.tolist()


def _first_bad_utf8_byte(path: Path) -> int | None:
    """Offset of the first byte that is not UTF-8 in ``path`` (pandas reports it per chunk)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                pending = len(decoder.getstate()[0])  # bytes of a character cut by the chunk
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return offset - pending + exc.start
                offset += len(chunk)
    except OSError:
        return None
    return None


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> UserError:
    where = _first_bad_utf8_byte(path)
    return UserError(
        f"{path} is not UTF-8 text (invalid byte at offset "
        f"{where if where is not None else exc.start}); save it as UTF-8 CSV"
    )


def _not_csv(path: Path, exc: Exception) -> UserError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if path.name.lower().endswith(COMPRESSED_SUFFIXES):
        detail += "; its name says it is compressed, so it is read that way"
    return UserError(f"{path} is not valid CSV ({detail}); fix or remove that file")


def read_csv_file(path: Path, header: str = "auto") -> tuple[pd.DataFrame, bool]:
    """One CSV file as a frame of raw values, and whether it had a header."""
    rows = _read_sample(path)
    if not rows:
        return pd.DataFrame(), False
    if header == "auto":
        has_header = looks_like_header(rows[0], rows[1:])
    else:
        has_header = header == "present"
    try:
        frame = pd.read_csv(
            path,
            header=0 if has_header else None,
            encoding="utf-8",
            skipinitialspace=True,
            na_values=EXTRA_NA_VALUES,
            low_memory=False,
        )
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), has_header
    except (pd.errors.ParserError, ValueError, *UNREADABLE_ERRORS) as exc:
        raise _not_csv(path, exc) from exc
    if has_header:
        frame.columns = [str(c).strip() for c in frame.columns]
        unnamed = [c for c in frame.columns if c.startswith("Unnamed: ")]
        if unnamed:
            raise UserError(
                f"{path} has a header with {len(unnamed)} empty column name(s); "
                "give every column a name or remove the header"
            )
    else:
        frame.columns = [f"column_{i}" for i in range(frame.shape[1])]
    return frame, has_header


def read_csv_folder(folder: Path, *, header: str = "auto", what: str = "input") -> Table:
    """Every CSV file under ``folder`` as one table.

    Files must agree on their columns.  Empty files are skipped with a
    warning (Spark and Athena write them); a folder with no data at all is an
    error that names the folder.
    """
    if header not in HEADER_CHOICES:
        raise UserError(f"header must be one of {', '.join(HEADER_CHOICES)}, got {header!r}")
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} does not exist")
    files = list_data_files(folder)
    if not files:
        raise UserError(f"{what} folder {folder} holds no data files; "
                        "check the S3 prefix or local path given for it")
    frames, used, header_flags = [], [], []
    for path in files:
        frame, has_header = read_csv_file(path, header)
        if frame.empty and frame.shape[1] == 0:
            log.warning("skipping %s: it holds no rows", path)
            continue
        frames.append(frame)
        used.append(path)
        header_flags.append(has_header)
    if not frames:
        raise UserError(f"{what} folder {folder} holds only empty files "
                        f"({', '.join(str(f) for f in files[:5])})")
    frames = _align(frames, used, header_flags)
    row_file = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
    row_line = np.concatenate([
        np.arange(len(f)) + (2 if h else 1) for f, h in zip(frames, header_flags)
    ])
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    table = Table(combined.reset_index(drop=True), header_flags[0], used, row_file, row_line)
    table.frame = normalize_columns(table)
    log.info("read %d rows x %d columns from %d file(s) under %s (header: %s)",
             len(table.frame), table.frame.shape[1], len(used), folder,
             "yes" if table.has_header else "no")
    return table


def _align(frames, paths, header_flags):
    """Make every file's columns match the first file's, or say which differs."""
    first, first_path = frames[0], paths[0]
    aligned = [first]
    for frame, path, has_header in zip(frames[1:], paths[1:], header_flags[1:]):
        if has_header != header_flags[0]:
            raise UserError(
                f"{path} {'has' if has_header else 'lacks'} a header row but {first_path} "
                f"{'has' if header_flags[0] else 'lacks'} one; make all files in the "
                "folder alike"
            )
        if has_header:
            if set(frame.columns) != set(first.columns):
                missing = sorted(set(first.columns) - set(frame.columns))
                extra = sorted(set(frame.columns) - set(first.columns))
                raise UserError(
                    f"{path} has different columns from {first_path}"
                    + (f"; missing: {', '.join(missing)}" if missing else "")
                    + (f"; extra: {', '.join(extra)}" if extra else "")
                )
            frame = frame[list(first.columns)]
        elif frame.shape[1] != first.shape[1]:
            raise UserError(
                f"{path} has {frame.shape[1]} columns but {first_path} has "
                f"{first.shape[1]}; all files in the folder must have the same columns"
            )
        aligned.append(frame)
    return aligned


def normalize_columns(table: Table) -> pd.DataFrame:
    """Numbers stay numbers, text becomes object; a column of numbers with a stray word fails.

    A column that is numeric apart from a few cells is almost always a data
    error (a unit typed into a cell, a shifted row), and silently treating it
    as a category would train a different model than the user meant.
    """
    frame = table.frame
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            frame[name] = column.astype(object)
            continue
        if pd.api.types.is_numeric_dtype(column):
            _check_finite(table, name, column)
            continue
        text = column.astype(object)
        # When pandas gives up reading a column as numbers (a value with thousands of
        # digits), its empty cells stay '' instead of missing.
        blank = text.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
        present = text.notna() & ~blank
        numbers = pd.to_numeric(text.where(present), errors="coerce")
        n_present, n_numeric = int(present.sum()), int(numbers.notna().sum())
        if n_present and n_numeric >= 0.9 * n_present and n_numeric < n_present:
            bad = np.flatnonzero((present & numbers.isna()).to_numpy())
            first = int(bad[0])
            raise UserError(
                f"column {name!r} holds numbers except {_short(text.iloc[first])} at "
                f"{table.where(first)} ({len(bad)} such value(s)); correct it or leave "
                "the cell empty to mark it missing"
            )
        frame[name] = text.where(present, np.nan).map(
            lambda v: v.strip() if isinstance(v, str) else v
        ).astype(object)
    return frame


def _check_finite(table: Table, name: str, column: pd.Series) -> None:
    """inf, or a number beyond the float range (1e400), that no estimator can fit."""
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        raise UserError(
            f"column {name!r} holds an infinite number (or one beyond 1.8e308) at "
            f"{table.where(int(infinite[0]))} ({len(infinite)} such value(s)); correct it "
            "or leave the cell empty to mark it missing"
        )


def _short(value, limit: int = 60) -> str:
    """A cell for a message: a 10 MB value must not make a 10 MB failure reason."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def _bad_target(option: str, value, expected: str, hint: str = "") -> UserError:
    """A bad target: a hyperparameter error for train, an option error for processing."""
    from sklearn_byoc.common.contract import HyperparameterError

    if option.startswith("-"):
        return UserError(f"{option} must be {expected}, got {value!r}"
                         + (f"; {hint}" if hint else ""))
    return HyperparameterError(option, value, expected, hint=hint)


def resolve_target(table: Table, target: str | None, *, option: str = "target") -> str:
    """The target column's name; ``target`` is a name or a 0-based index (default 0).

    ``option`` names where the value came from: the ``target`` hyperparameter
    or processing's ``--target`` option.
    """
    columns = list(table.frame.columns)
    if target is None or target == "":
        return columns[0]
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
    raise _bad_target(option, target, "a column of the data",
                      "columns: " + ", ".join(map(str, columns[:50])))


def infer_task(y: pd.Series) -> str:
    """Text or a few whole-number values: classification; otherwise regression."""
    values = y.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    numbers = values.to_numpy(dtype=float)
    if np.all(np.mod(numbers, 1) == 0) and values.nunique() <= 20:
        return "classification"
    return "regression"
