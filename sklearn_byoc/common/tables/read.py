"""CSV and Parquet files, or one host's share of them, into one frame of raw values.

CSV files may or may not start with a header: SageMaker's built-in algorithms expect none
(target first), while files written by pandas or Spark usually have one.
``header="auto"`` tells them apart from the data itself.  The frame's columns are then
typed by ``tables.columns``.
"""
from __future__ import annotations

import io
import logging
import lzma
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells, compat
from sklearn_byoc.common.contract import HEADER_CHOICES
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.memory import release_free_memory
from sklearn_byoc.common.tables import CSV, PARQUET, Table, csv_chunks
from sklearn_byoc.common.tables.columns import type_columns
from sklearn_byoc.common.tables.scan import (COMPRESSED_SUFFIXES, FolderFiles, _names,
                                             _nul_byte, scan_folder)

log = logging.getLogger("tables")

# A file that is not what its name says fails with these.
UNREADABLE_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError)
SAMPLE_ROWS = 200


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


def _refuse_a_name_twice(path: Path, header: list[str]) -> None:
    # Checked on the header as written: pandas renames an exact repeat ("k", "k.1").
    names = pd.Index([name.strip() for name in header if name.strip()])
    twice = names[names.duplicated()]
    if len(twice):
        raise UserError(
            f"{path} has two columns named {twice[0]!r} (spaces around a name do not "
            "count); give each column its own name"
        )


def read_csv_file(path: Path, header: str = "auto",
                  part: tuple[int, int] | None = None) -> tuple[pd.DataFrame, bool]:
    """One CSV file (or the lines of it that start in the byte range ``part``) as a frame of
    raw values, and whether it had a header.

    Each column is what pandas gives when it parses that column whole.  The file is parsed
    in chunks, which is twice as fast; the columns some sample row shows to hold text are
    read as categories; a column whose chunks parsed differently (numbers in one, text in
    the next) is parsed again, whole."""
    rows = _read_sample(path)
    if not rows:
        return pd.DataFrame(), False
    if header == "auto":
        has_header = looks_like_header(rows[0], rows[1:])
    else:
        has_header = header == "present"
    if has_header:
        _refuse_a_name_twice(path, rows[0])
    # (0, 0): no lines, only the columns (a host whose share holds none of the rows).
    whole = part is None or part == (0, 0)
    data = None if whole else csv_part(path, *part, has_header)

    def parse(**options) -> pd.DataFrame:
        with warnings.catch_warnings():
            # Chunks typed differently: the columns concerned are parsed again below.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(
                path if whole else io.BytesIO(data),
                header=0 if has_header else None,
                encoding="utf-8",
                skipinitialspace=True,
                na_values=list(cells.EXTRA_MISSING_MARKERS),
                **options,
            )

    try:
        if part == (0, 0):
            frame = parse(nrows=0, low_memory=False)
        else:
            text = csv_chunks.text_columns(rows[1:] if has_header else rows)
            frame = parse(dtype={j: "category" for j in text})
            frame = csv_chunks.as_whole_columns(frame, parse)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc
    except pd.errors.EmptyDataError:
        if whole:
            return pd.DataFrame(), has_header
        # A host's byte range in which no line starts: no rows, but the file's columns.
        frame = pd.DataFrame(columns=rows[0] if has_header else range(len(rows[0])))
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
    starts = np.concatenate([[0], np.cumsum([len(f) for f in frames])[:-1]]).tolist()
    first = [2 if h and what_format == CSV else 1 for h in header_flags]
    combined = pd.concat(csv_chunks.same_categories(frames), ignore_index=True) \
        if len(frames) > 1 else frames[0]
    return Table(combined.reset_index(drop=True), header_flags[0], used, starts, first,
                 format=what_format, parts=[_part_text(p) for p in parts or []])


def _read_csv(parts: dict[Path, tuple[int, int] | None], folder: Path, what: str,
              header: str) -> Table:
    frames, used, header_flags, ranges = [], [], [], []
    paths = list(parts)
    nothing = None  # a file or part without rows: its columns, if no file has rows
    for path, part in parts.items():
        frame, has_header = read_csv_file(path, header, part)
        if frame.empty and frame.shape[1] == 0:
            log.warning("skipping %s: it holds no rows", path)
            continue
        if frame.empty:
            # A file (or a host's part of one) with columns and no rows: only its columns
            # count, and only when no file has rows (stacked, it would make ints floats).
            nothing = nothing or (frame, path, has_header, part)
            continue
        frames.append(frame)
        used.append(path)
        header_flags.append(has_header)
        ranges.append(part)
    if not frames and nothing is not None:
        frames, used, header_flags, ranges = ([x] for x in nothing)
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
    table = _stack(frames, used, header_flags, CSV, ranges)
    del frames
    release_free_memory()  # what the parser's threads freed
    return table


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
