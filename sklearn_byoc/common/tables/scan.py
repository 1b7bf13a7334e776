"""Which files of a folder are data, and in which format.

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

A folder holds one format.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import CSV, PARQUET

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
# compressed.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")
SNIFF_BYTES = 8192


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
