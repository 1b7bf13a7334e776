"""Reading the data files of a channel or processing input into one table.

SageMaker copies every object under a channel's S3 prefix into the channel's
folder, keeping the key's sub-folders, so a folder is read recursively and a
file's name says little.  Each file is one of:

- **Parquet** — a file that begins with ``PAR1``, the Parquet magic bytes,
  whatever its name: Spark, Glue and Athena ``UNLOAD`` write part files with
  or without a ``.parquet`` suffix;
- **a marker**, skipped with one warning that names them all: a file or
  folder whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``_temporary/``,
  ``_committed_*``, Parquet's ``_metadata``, ``.DS_Store``, ``.part-0.crc``), a
  ``*.crc`` file, and an empty (zero-byte) file;
- **CSV** — a file named ``*.csv``, ``*.txt`` or without an extension
  (Hadoop's ``part-00000``, Athena's ``UNLOAD`` text files), optionally
  compressed (``.gz``, ``.bz2``, ``.zip``, ``.xz``, ``.zst``, ``.tar``);
- anything else, which fails naming the file.

A folder holds one format.  CSV files may or may not start with a header:
SageMaker's built-in algorithms expect none (target first), while files
written by pandas or Spark usually have one.  ``header="auto"`` tells them
apart from the data itself.  Cells are typed by ``common/cells.py``, the rules
``serve`` applies to request cells.
"""
from __future__ import annotations

import csv
import io
import logging
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells, compat
from sklearn_byoc.common.contract import HEADER_CHOICES
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("tables")

CSV, PARQUET = "csv", "parquet"
PARQUET_MAGIC = b"PAR1"
# Spark and Hadoop mark a finished job with _SUCCESS and write checksums as
# .<name>.crc; a name starting with "." or "_" is bookkeeping, never data.
MARKER_PREFIXES = (".", "_")
MARKER_SUFFIXES = (".crc",)
CSV_EXTENSIONS = ("", ".csv", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".parq", ".pq")
# An extension is a dot, a letter and up to seven letters or digits: the dots
# in "part.00000" or "sales.2024-01-01" end no extension.
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}")


# pandas reads a file whose name ends in .gz, .bz2, .zip, .xz, .zst or .tar as
# compressed; a file that is not what its name says fails with these.
UNREADABLE_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError)
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")
SAMPLE_ROWS = 200
SNIFF_BYTES = 8192


@dataclass
class Table:
    frame: pd.DataFrame
    has_header: bool
    files: list[Path] = field(default_factory=list)
    # For each row of ``frame``: index into ``files`` and 1-based record number in
    # that file (a CSV header counts as record 1); ``where`` turns it into a line.
    row_file: np.ndarray | None = None
    row_line: np.ndarray | None = None
    format: str = CSV
    # Every column the files hold, in their order, before any was left out.
    all_columns: list[str] = field(default_factory=list)
    # Columns left out by ignore_columns, in file order.
    ignored: list[str] = field(default_factory=list)
    # Parquet columns of a type no estimator takes: name -> the type.
    unsupported: dict[str, str] = field(default_factory=dict)
    # For each of ``files`` read in part (a host's share): where its part starts, as
    # "byte 1048576" or "row group 3"; None for a file read whole.
    parts: list[str | None] = field(default_factory=list)

    def where(self, row_position: int) -> str:
        """'line 17 of train/part-1.csv' (or 'row 17 of part-1.parquet') for a row of the frame."""
        if self.row_file is None or self.row_line is None:
            return f"row {row_position + 1}"
        index = int(self.row_file[row_position])
        path, record = self.files[index], int(self.row_line[row_position])
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


@dataclass
class FolderFiles:
    """What a folder holds: its data files by format, and the markers skipped."""

    csv: list[Path] = field(default_factory=list)
    parquet: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _extension(name: str) -> str:
    """The lower-case extension of a file name, a compression suffix taken off first."""
    lowered = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
            break
    dot = lowered.rfind(".")
    if dot <= 0 or not _EXTENSION.fullmatch(lowered[dot:]):
        return ""
    return lowered[dot:]


def _is_marker(relative: Path) -> bool:
    return (any(part.startswith(MARKER_PREFIXES) for part in relative.parts)
            or relative.name.lower().endswith(MARKER_SUFFIXES))


def _neither(path: Path, why: str) -> UserError:
    return UserError(
        f"{path} is neither CSV nor Parquet ({why}); the trainer reads Parquet files and CSV "
        "files named *.csv, *.txt or without an extension: remove that file from the "
        "data's S3 prefix or folder"
    )


def _nul_byte(path: Path, offset: int) -> UserError:
    return UserError(f"{path} is not UTF-8 text (a NUL byte at offset {offset}); save it as "
                     "UTF-8 CSV")


def _kind_of(path: Path) -> str:
    """CSV or PARQUET for a data file; raises for a file that is neither."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head.startswith(PARQUET_MAGIC):
        return PARQUET
    extension = _extension(path.name)
    compressed = path.name.lower().endswith(COMPRESSED_SUFFIXES)
    if extension in PARQUET_EXTENSIONS and not compressed:
        raise UserError(
            f"{path} is named like a Parquet file but does not begin with PAR1, the bytes "
            "every Parquet file begins with: it is damaged or not Parquet; write it again "
            "or remove it"
        )
    if extension not in CSV_EXTENSIONS:
        raise _neither(path, f"its name ends in {extension}")
    if not compressed:
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UserError(f"{path} is UTF-16 text; save it as UTF-8 CSV")
        nul = head.find(b"\x00")
        if nul >= 0 and extension:
            raise _nul_byte(path, nul)
        if nul >= 0:
            raise _neither(path, f"it holds binary data, beginning {head[:8]!r}")
    return CSV


def scan_folder(folder: Path) -> FolderFiles:
    """Every file under ``folder``, recursively and in a stable order, by what it is."""
    found = FolderFiles()
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder)
        if _is_marker(relative):
            found.skipped.append(path)
            continue
        try:
            empty = path.stat().st_size == 0
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if empty:
            found.skipped.append(path)
        elif _kind_of(path) == PARQUET:
            found.parquet.append(path)
        else:
            found.csv.append(path)
    return found


def _names(paths: list[Path], folder: Path, limit: int = 10) -> str:
    shown = ", ".join(p.relative_to(folder).as_posix() for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def looks_like_header(first_row: list[str], rows: list[list[str]]) -> bool:
    """Decide whether ``first_row`` names the columns of ``rows``.

    A header never holds a number.  It is a header when some column is
    numeric below it while its own cell is text, or, for all-text data, when
    none of its cells reappears in its column.
    """
    names = [c.strip() for c in first_row]
    if any(c and cells.is_number(c) for c in names):
        return False
    if not rows:
        # A lone line of text with no data below: treat as data; the caller
        # reports the too-small file if it matters.
        return False
    for j, cell in enumerate(names):
        column = [r[j].strip() for r in rows if j < len(r) and r[j].strip()]
        if column and cell and sum(cells.is_number(v) for v in column) >= 0.9 * len(column):
            return True
    named = [c for c in names if c]
    if len(set(named)) != len(named) or not named:
        return False
    for j, cell in enumerate(names):
        if cell and any(j < len(r) and r[j].strip() == cell for r in rows):
            return False
    return True


def _read_sample(path: Path) -> list[list[str]]:
    nul = None if path.name.lower().endswith(COMPRESSED_SUFFIXES) else \
        compat.nul_byte_offset(path)
    if nul is not None:
        raise _nul_byte(path, nul)
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


def csv_part(path: Path, start: int, end: int, header_line: bool) -> bytes:
    """The lines of ``path`` that start in bytes [start, end), after its first line when
    ``header_line`` and ``start`` > 0 (each part then parses with the same columns).

    A line belongs to the part its first byte lies in: a part that starts inside a line
    leaves it to the part before, which reads past its end to finish it."""
    with path.open("rb") as handle:
        first = handle.readline() if header_line and start > 0 else b""
        if start > 0:
            handle.seek(start - 1)
            handle.readline()
        begin = handle.tell()
        data = handle.read(max(0, end - begin))
        if data and not data.endswith(b"\n"):
            data += handle.readline()
    return first + data


def read_csv_file(path: Path, header: str = "auto",
                  part: tuple[int, int] | None = None) -> tuple[pd.DataFrame, bool]:
    """One CSV file (or the lines of it that start in the byte range ``part``) as a frame of
    raw values, and whether it had a header."""
    rows = _read_sample(path)
    if not rows:
        return pd.DataFrame(), False
    if header == "auto":
        has_header = looks_like_header(rows[0], rows[1:])
    else:
        has_header = header == "present"
    # (0, 0): no lines, only the columns (a host whose share holds none of the rows).
    whole = part is None or part == (0, 0)
    source = path if whole else io.BytesIO(csv_part(path, *part, has_header))
    try:
        frame = pd.read_csv(
            source, nrows=0 if part == (0, 0) else None,
            header=0 if has_header else None,
            encoding="utf-8",
            skipinitialspace=True,
            na_values=list(cells.EXTRA_MISSING_MARKERS),
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


def _skip_warning(files: FolderFiles, folder: Path) -> None:
    if files.skipped:
        log.warning("skipping %d file(s) under %s that hold no data (markers, hidden or empty "
                    "files): %s", len(files.skipped), folder, _names(files.skipped, folder))


def _check_format(files: FolderFiles, folder: Path, what: str,
                  expected: tuple[str, str] | None) -> str | None:
    """The folder's one format; a folder that mixes formats, or disagrees with its
    ContentType (``expected``: the format and where it was said), fails naming both."""
    if files.csv and files.parquet:
        raise UserError(
            f"{what} folder {folder} mixes Parquet files ({_names(files.parquet, folder, 3)}) "
            f"and CSV files ({_names(files.csv, folder, 3)}); keep one format per channel"
        )
    found = PARQUET if files.parquet else CSV if files.csv else None
    if expected and found and found != expected[0]:
        held = files.parquet if found == PARQUET else files.csv
        raise UserError(
            f"{what} has {expected[1]} but its folder {folder} holds {FORMAT_NAMES[found]} "
            f"files ({_names(held, folder, 3)}); set the ContentType to "
            f"{CONTENT_TYPES[found]}, leave it unset, or give {FORMAT_NAMES[expected[0]]} files"
        )
    return found


CONTENT_TYPES = {CSV: "text/csv", PARQUET: "application/x-parquet"}
FORMAT_NAMES = {CSV: "CSV", PARQUET: "Parquet"}


# What one host of several reads of a folder's data files (train/shares.py): file ->
# None (all of it), a byte range of a CSV file, or a slice of a Parquet file's row groups.
Share = Callable[[list[Path], str], dict[Path, "tuple[int, int] | slice | None"]]


def read_folder(folder: Path, *, header: str = "auto", what: str = "input",
                expected: tuple[str, str] | None = None,
                ignore: Callable[[Table], list[str]] | None = None,
                share: Share | None = None) -> Table:
    """Every data file under ``folder`` (or this host's ``share`` of them) as one table of
    typed columns.

    Files must agree on their columns.  ``expected`` is the format a channel's
    ContentType names, and where it was said.  ``ignore`` picks, from the
    table as read, the columns to leave out before cells are typed (so a left-out
    column may hold anything).  A folder with no data at all is an error that
    names the folder; a share with no part of it reads no rows, with the columns.
    """
    if header not in HEADER_CHOICES:
        raise UserError(f"header must be one of {', '.join(HEADER_CHOICES)}, got {header!r}")
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} does not exist")
    files = scan_folder(folder)
    _skip_warning(files, folder)
    found = _check_format(files, folder, what, expected)
    if found is None:
        if files.skipped:
            raise UserError(f"{what} folder {folder} holds only empty files and markers "
                            f"({_names(files.skipped, folder, 5)}); check the S3 prefix or "
                            "local path given for it")
        raise UserError(f"{what} folder {folder} holds no data files; "
                        "check the S3 prefix or local path given for it")
    paths = files.parquet if found == PARQUET else files.csv
    parts = share(paths, found) if share is not None else {p: None for p in paths}
    if not parts:  # no rows for this host: the first file's columns, no rows
        parts = {paths[0]: (0, 0) if found == CSV else slice(0, 0)}
    table = _read_parquet(parts, folder, what) if found == PARQUET \
        else _read_csv(parts, folder, what, header)
    table.all_columns = [str(c) for c in table.frame.columns]
    if ignore is not None:
        table.ignored = ignore(table)
        if table.ignored:
            table.frame = table.frame.drop(columns=table.ignored)
    table.frame = type_columns(table)
    log.info("read %d rows x %d columns from %d %s file(s)%s under %s (header: %s)",
             len(table.frame), table.frame.shape[1], len(table.files),
             FORMAT_NAMES[found], "" if share is None else " (this host's share)", folder,
             "yes" if table.has_header else "no")
    return table


def read_channel_share(folder: Path, share: Share, **options) -> Table:
    """This host's share of a channel: a folder SageMaker left empty or did not make (a
    ``ShardedByS3Key`` shard with no objects) reads as no rows and no columns."""
    if not folder.is_dir() or not (lambda f: f.csv or f.parquet)(scan_folder(folder)):
        log.info("%s holds no data files on this host: it reads no rows", folder)
        return Table(pd.DataFrame(), has_header=True)
    return read_folder(folder, share=share, **options)


def _part_text(part) -> str | None:
    if isinstance(part, tuple) and part[0] > 0:
        return f"byte {part[0]}"
    if isinstance(part, slice) and (part.start or 0) > 0:
        return f"row group {part.start}"
    return None


def _stack(frames, used, header_flags, what_format: str, parts: list | None = None) -> Table:
    frames = _align(frames, used, header_flags)
    row_file = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
    row_line = np.concatenate([
        np.arange(len(f)) + (2 if h else 1) if what_format == CSV else np.arange(len(f)) + 1
        for f, h in zip(frames, header_flags)
    ])
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Table(combined.reset_index(drop=True), header_flags[0], used, row_file, row_line,
                 format=what_format, parts=[_part_text(p) for p in parts or []])


def _read_csv(parts: dict[Path, tuple[int, int] | None], folder: Path, what: str,
              header: str) -> Table:
    frames, used, header_flags, ranges = [], [], [], []
    paths = list(parts)
    for path, part in parts.items():
        frame, has_header = read_csv_file(path, header, part)
        if frame.empty and frame.shape[1] == 0:
            log.warning("skipping %s: it holds no rows", path)
            continue
        frames.append(frame)
        used.append(path)
        header_flags.append(has_header)
        ranges.append(part)
    if not frames:
        raise UserError(f"{what} folder {folder} holds only empty files "
                        f"({', '.join(str(f) for f in paths[:5])})")
    named = next((f for f, h in zip(frames, header_flags) if h), None)
    if named is not None and header == "auto":
        # A lone line naming the columns of the other files: Spark writes such a
        # file, a header and no rows, for an empty partition.
        names = [str(c) for c in named.columns]
        keep = [not (not h and len(f) == 1 and f.shape[1] == len(names)
                     and [str(v).strip() for v in f.iloc[0]] == names)
                for f, h in zip(frames, header_flags)]
        for path, kept in zip(used, keep):
            if not kept:
                log.warning("skipping %s: it holds only a header", path)
        frames, used, header_flags, ranges = ([x for x, k in zip(xs, keep) if k]
                                              for xs in (frames, used, header_flags, ranges))
    return _stack(frames, used, header_flags, CSV, ranges)


def _read_parquet(parts: dict[Path, slice | None], folder: Path, what: str) -> Table:
    from sklearn_byoc.common import parquet

    frames, used, unsupported, groups = [], [], {}, []
    paths = list(parts)
    for path, part in parts.items():
        frame, odd = parquet.read_file(path, part)
        if frame.shape[1] == 0 or (frame.empty and len(paths) > 1):
            log.warning("skipping %s: it holds no rows", path)
            continue
        frames.append(frame)
        used.append(path)
        groups.append(part)
        for name, kind in odd.items():
            unsupported.setdefault(name, f"{kind} in {path}")
    if not frames:
        raise UserError(f"{what} folder {folder} holds only Parquet files without rows "
                        f"({', '.join(str(f) for f in paths[:5])})")
    table = _stack(frames, used, [True] * len(frames), PARQUET, groups)
    table.unsupported = unsupported
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
        numbers, refused = cells.number_column(values)
        present = ~cells.missing_mask(values)
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
        frame[name] = _objects(cells.category_column(values), frame.index)
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
