"""Parquet files: reading a channel's part files, writing prepare's splits.

fastparquet does the work.  It was chosen by measurement over pyarrow,
DuckDB and Polars (``benchmarks/parquet_libraries.py``): it reads a
1,000,000-row file in half pyarrow's time and memory, adds about 16 MB to the
image instead of 168 MB, and pandas never imports it by itself (pandas
imports pyarrow at start-up whenever it is installed, which would cost every
``serve`` worker its memory and change pandas' string storage there).  Only
``train`` and ``processing`` import this module.

Files written with their default settings by pyarrow (so pandas), DuckDB and
Polars read as they are (``tests/fixtures/parquet``); Spark's and Glue's
writer also defaults to data pages of version 1.  fastparquet does not read
data pages of format version 2 holding nulls, nor the ``DELTA_*`` and
``BYTE_STREAM_SPLIT`` encodings; such a file fails with a reason that names it
and says how to write it instead.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_byoc.common.errors import UserError


def _fastparquet():
    # fastparquet reads a pandas option that pandas 3 deprecates, and warns on import;
    # the warning is the library's, not the job's.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*future.infer_string.*")
        import fastparquet
    return fastparquet


def _unreadable(path: Path, exc: Exception) -> UserError:
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    hint = ("; write it with data page version 1 and the default encodings (Spark's, "
            "pyarrow's and pandas' defaults) or as CSV"
            if isinstance(exc, NotImplementedError) or "Encoding" in detail
            else "; it is damaged or not Parquet: write it again or remove it")
    return UserError(f"{path} cannot be read as Parquet ({type(exc).__name__}: {detail}){hint}")


def _plain(column: pd.Series) -> tuple[pd.Series | None, str | None]:
    """A column as numpy-backed values the trainer types, or (None, the type it has)."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        column = column.astype(object)
        dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        # Nullable booleans: True/False and NaN for null.
        if isinstance(dtype, pd.BooleanDtype):
            values = column.to_numpy(dtype=object, na_value=np.nan)
            return pd.Series(values, index=column.index, dtype=object), None
        return column, None
    if pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):  # Int64, Float32 with nulls
            return pd.Series(column.to_numpy(dtype=np.float64, na_value=np.nan),
                             index=column.index), None
        return column, None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return column, None  # a date feature (common/dates.py), typed by tables.columns
    if pd.api.types.is_timedelta64_dtype(dtype):
        return None, f"{dtype} values"
    if dtype == object or pd.api.types.is_string_dtype(dtype):
        present = column[column.notna()]
        if present.empty:
            return column.astype(object), None
        kinds = {type(v) for v in present.iloc[:1000]}
        if kinds <= {str}:
            return (column if column.dtype == object else column.astype(object)), None
        if kinds <= {bytes}:
            # BYTE_ARRAY without the UTF8 annotation (Hive's binary-as-string).
            try:
                return column.map(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v,
                                  na_action="ignore").astype(object), None
            except UnicodeDecodeError:
                return None, "binary values that are not UTF-8 text"
        names = sorted(k.__name__ for k in kinds)
        return None, f"{', '.join(names)} values (a nested or binary Parquet type)"
    return None, f"{dtype} values"


# Parquet's physical types (fastparquet's thrift numbers) by their Arrow-like names.
_PHYSICAL = {0: "bool", 1: "int32", 2: "int64", 3: "timestamp[ns] (INT96)", 4: "float",
             5: "double", 6: "binary", 7: "fixed_size_binary"}
_CONVERTED = {0: "string", 6: "date32", 9: "timestamp[ms]", 10: "timestamp[us]",
              15: "int8", 16: "int16", 17: "int32", 18: "int64", 11: "uint8", 12: "uint16",
              13: "uint32", 14: "uint64", 19: "json", 20: "bson", 4: "enum"}


def _type_name(element) -> str:
    """The Arrow-like name of a Parquet schema element's type (``list<int64>``,
    ``struct<a: string>``, ``timestamp[us, tz=UTC]``), as far as the footer tells it."""
    children = list(getattr(element, "children", {}).values())
    logical = element.logicalType
    if children:
        if (logical is not None and logical.LIST is not None) or element.converted_type == 3:
            inner = children[0]
            inner_children = list(getattr(inner, "children", {}).values())
            item = inner_children[0] if len(inner_children) == 1 else inner
            return f"list<{_type_name(item)}>"
        if (logical is not None and logical.MAP is not None) or element.converted_type in (1, 2):
            pair = list(getattr(children[0], "children", {}).values())
            if len(pair) == 2:
                return f"map<{_type_name(pair[0])}, {_type_name(pair[1])}>"
            return "map"
        return "struct<" + ", ".join(f"{c.name}: {_type_name(c)}" for c in children) + ">"
    if logical is not None:
        if logical.TIMESTAMP is not None:
            unit = logical.TIMESTAMP.unit
            unit = "ms" if unit.MILLIS is not None else "us" if unit.MICROS is not None else "ns"
            zone = ", tz=UTC" if logical.TIMESTAMP.isAdjustedToUTC else ""
            return f"timestamp[{unit}{zone}]"
        if logical.DECIMAL is not None or element.converted_type == 5:
            return f"decimal({element.precision}, {element.scale})"
        if logical.TIME is not None:
            return "time"
    if element.converted_type == 5:
        return f"decimal({element.precision}, {element.scale})"
    if element.converted_type in _CONVERTED:
        return _CONVERTED[element.converted_type]
    name = _PHYSICAL.get(element.type, "unknown")
    if element.type == 7:
        name += f"[{element.type_length}]"
    return name


def column_types(schema) -> dict[str, str]:
    """Each top-level column of a Parquet file's schema (fastparquet's ``SchemaHelper``) ->
    its Arrow-like type name."""
    return {name: _type_name(element) for name, element in schema.root.children.items()}


def _dates_from_ints(column: pd.Series) -> pd.Series:
    present = column.dropna()
    if len(present) and not isinstance(present.iloc[0], (int, np.integer)):
        return pd.Series(pd.to_datetime(column), index=column.index)  # datetime.date values
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    stamps = np.full(len(values), np.datetime64("NaT", "ns"))
    present = ~np.isnan(values)
    stamps[present] = values[present].astype(np.int64).astype("datetime64[ns]")
    return pd.Series(stamps, index=column.index)


def row_group_rows(path: Path) -> list[int]:
    """The rows of each row group of a Parquet file, from its footer alone."""
    fastparquet = _fastparquet()
    try:
        with path.open("rb") as handle:
            return [group.num_rows for group in fastparquet.ParquetFile(handle).row_groups]
    except Exception as exc:  # noqa: BLE001 - any failure to decode is the file's
        raise _unreadable(path, exc) from exc


def read_file(path: Path, row_groups: slice | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One Parquet file (or a slice of its row groups) as a frame, and its columns of a type
    no estimator takes."""
    fastparquet = _fastparquet()

    try:
        with path.open("rb") as handle:
            parquet = fastparquet.ParquetFile(handle)
            if row_groups is not None:
                parquet = parquet[row_groups]
            frame = _read_columns(parquet)
            types = column_types(parquet.schema)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode is the file's
        raise _unreadable(path, exc) from exc
    names = [str(c) for c in frame.columns]
    empty = [i for i, n in enumerate(names) if not n.strip()]
    if empty:
        raise UserError(f"{path} has {len(empty)} column(s) without a name; give every "
                        "column a name")
    frame.columns = names
    unsupported: dict[str, str] = {}
    for name in names:
        column = frame[name]
        kind = types.get(name, "")
        if kind == "date32" and column.dtype == object:
            # fastparquet reads a DATE column that pandas' metadata calls "date" as an
            # object column of nanoseconds since 1970-01-01.
            column = _dates_from_ints(column)
            frame[name] = column
        plain, found = _plain(column)
        if plain is None:
            unsupported[name] = f"Parquet type {kind}" if kind else found
        elif plain is not column:  # only converted columns are replaced, not copied all
            frame[name] = plain
    return frame, unsupported


def _read_columns(parquet) -> pd.DataFrame:
    """The file's columns, read one at a time, each text column's repeated values shared.

    fastparquet makes one Python string per text cell (about 55 bytes for a short
    one, against 8 for a reference): read whole, ten text columns of a million rows
    peak above the model's fitting.  Read one column at a time, only one column's
    strings are alive at once.  A pandas writer's stored index is left out: rows are
    numbered from 0.
    """
    index = {i if isinstance(i, str) else i.get("name")
             for i in parquet.pandas_metadata.get("index_columns", [])}
    names = [c for c in parquet.columns + list(parquet.cats) if c not in index]
    columns = {}
    for name in names:
        # categories=[]: dictionary-encoded text comes back as text, not as a
        # pandas Categorical rebuilt from the writer's pandas metadata.
        column = parquet.to_pandas(columns=[name], categories=[], index=False)[name]
        columns[name] = _shared(column)
    return pd.DataFrame(columns, index=pd.RangeIndex(parquet.count()), copy=False)


def _shared(column: pd.Series) -> pd.Series:
    """A text column with one string object per distinct value."""
    if column.dtype != object:
        return column
    values = column.to_numpy()
    present = column.first_valid_index()
    if present is None or not isinstance(values[present], str):
        return column
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells (nested values): read_file reports the column
        return column
    kept = codes >= 0
    values = values.copy()  # pandas hands out a read-only view
    values[kept] = np.asarray(uniques, dtype=object)[codes[kept]]
    return pd.Series(values, index=column.index, dtype=object)


def write_file(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as one Snappy-compressed Parquet file, under a temporary name then renamed."""
    fastparquet = _fastparquet()

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    text = {name: "utf8" for name in frame.columns
            if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name].dtype)}
    # A column of Python booleans (with missing cells) is written as booleans.
    for name in list(text):
        present = frame[name].dropna()
        if len(present) and all(isinstance(v, (bool, np.bool_)) for v in present.iloc[:1000]):
            text[name] = "bool"
    try:
        fastparquet.write(str(partial), frame.reset_index(drop=True), compression="SNAPPY",
                          write_index=False, object_encoding=text or "infer", stats=True)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
