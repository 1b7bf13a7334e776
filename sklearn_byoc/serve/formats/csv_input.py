"""The one CSV reader: header handling, row widths, the parser choice, block splitting.

Rows are records: they end at ``\\n``, ``\\r\\n`` or ``\\r`` outside quotes, as
for pandas when training read the data, and a quoted value may hold commas
and line breaks.  Row numbers in messages count records (blank lines are not
records), from the first record of the body.

A first record is a header when the Content-Type says ``header=present``;
never with ``header=absent``; otherwise when it holds no numbers and most of
its cells name the model's columns.  A header may list the columns in any
order, and may include the target (its column is ignored).

Bodies up to :data:`SMALL_CSV_BYTES` are parsed in Python (no set-up cost,
exact messages); larger ones by pandas' C parser, with every record's width
checked first (pandas pads a short row silently).  Bodies larger than a block
are read and predicted block by block, cut only between records.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Iterator

import numpy as np

from sklearn_byoc.common.cells import is_number
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.media import MediaType
from sklearn_byoc.serve.schema import MISSING_MARKERS, Records, Schema

UTF8_BOM = b"\xef\xbb\xbf"
# Rows end at \n, \r\n or \r, as for pandas when training read the data; not at the
# other breaks str.splitlines() knows (\x0c, \x1c-\x1e, \x85, \u2028, \u2029),
# which may sit inside a text value.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
SMALL_CSV_BYTES = 64 * 1024
QUOTE, NEWLINE, COMMA = 34, 10, 44


def body_text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"the body is not valid {charset} (bad byte at position {exc.start}); send UTF-8 "
            "text or name the charset in Content-Type", kind=f"not {charset} text") from None


def strip_bom(body: bytes, media: MediaType) -> bytes:
    # Excel's "CSV UTF-8" starts with one.
    return body[len(UTF8_BOM):] if media.utf8 and body.startswith(UTF8_BOM) else body


def csv_rows(text: str, first_row: int = 1) -> list[list[str]]:
    """The records of a CSV text, as lists of cells (blank lines skipped)."""
    if '"' in text:
        reader = csv.reader(io.StringIO(text, newline=""))  # any of \n, \r\n, \r ends a row
        try:
            rows = [r for r in reader if r and any(c.strip() for c in r)]
        except csv.Error as exc:  # a quoted value over csv's 131072-character limit
            raise RequestError(f"the CSV body cannot be read at record "
                               f"{first_row + reader.line_num - 1}: {exc}") from None
    else:
        rows = [line.split(",") for line in LINE_BREAK.split(text) if line.strip()]
    if not rows:
        raise RequestError("the CSV body holds no rows")
    return rows


class CsvReader:
    """Reads the CSV body of one request, whole or block by block.

    The header (if any) is found in the first block and names the columns of
    every later block.
    """

    def __init__(self, schema: Schema, media: MediaType):
        self.schema = schema
        self.media = media
        self.mapping: list[int | None] | None = None  # body column -> feature position
        self.started = False

    def read(self, body: bytes, first_row: int = 1) -> Records:
        """The records of ``body``, the block whose first record is ``first_row``."""
        first = not self.started
        self.started = True
        if first:
            body = strip_bom(body, self.media)
        if not body.strip():
            if first:
                raise RequestError("the request body is empty; send at least one row")
            return Records.empty(self.schema)
        if len(body) > SMALL_CSV_BYTES and self.media.utf8:
            records = self.read_large(body, first_row, first)
            if records is not None:
                return records
        return self.read_rows(body_text(body, self.media.charset), first_row, first)

    # -- the header -------------------------------------------------------------------------
    def _header(self, cells: list[str]) -> list[int | None] | None:
        """Body column -> feature position when ``cells`` is the header row, else None."""
        schema, declared = self.schema, self.media.header
        if declared is False:
            return None
        names = [c.strip() for c in cells]
        if declared is None:
            if any(n and is_number(n) for n in names):
                return None
            matched = sum(n in schema.position or n in schema.dropped for n in names)
            if matched == 0 or matched < len(names) / 2:
                return None
        unknown = [n for n in names if n not in schema.position and n not in schema.dropped]
        if unknown:
            raise RequestError(
                f"the header row names unknown column(s) {', '.join(map(repr, unknown[:10]))}; "
                f"the model expects {schema.describe()}", kind="unknown header columns")
        missing = [n for n in schema.names if n not in names]
        if missing:
            raise RequestError(
                f"the header row lacks feature(s) {', '.join(map(repr, missing[:10]))}; "
                f"the model expects {schema.describe()}", kind="header lacks features")
        return [schema.position.get(n) for n in names]

    # -- row by row -------------------------------------------------------------------------
    def read_rows(self, text: str, first_row: int = 1, first: bool = True) -> Records:
        """Row-by-row parsing: no set-up cost, and exact row numbers in errors."""
        rows = csv_rows(text, first_row)
        if first:
            self.mapping = self._header(rows[0])
            if self.mapping is not None:
                rows = rows[1:]
                if not rows:
                    raise RequestError("the CSV body holds a header row but no data rows")
        if self.mapping is None:
            return self.schema.from_positional_rows(rows, first_row=first_row)
        return self._by_header(rows, first_row)

    def _by_header(self, rows: list[list[str]], first_row: int) -> Records:
        mapping, schema = self.mapping, self.schema
        width = len(mapping)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise RequestError(f"row {first_row + i} has {len(row)} values but the header "
                                   f"names {width}", kind="wrong number of values",
                                   row=first_row + i)
        columns = {}
        for j, position in enumerate(mapping):
            if position is not None:
                name = schema.names[position]
                columns[name] = schema.column(name, [row[j] for row in rows], first_row)
        return schema.records(columns, len(rows))

    # -- pandas' C parser -------------------------------------------------------------------
    def read_large(self, body: bytes, first_row: int = 1, first: bool = True) -> Records | None:
        """None when the row-by-row parser must decide (it names the exact row at fault)."""
        import pandas as pd

        if b'"' in body:
            # Quoted values may hold commas and line breaks: only a real CSV reader
            # can count the values of each row.
            return None
        schema = self.schema
        if first:
            end = body.find(b"\n")
            first_line = body[: end if end >= 0 else len(body)].decode("utf-8", "replace")
            if "\r" in first_line.rstrip("\r"):
                return None  # bare carriage returns end records too: the row parser
            self.mapping = self._header(first_line.rstrip("\r").split(","))
            if self.mapping is not None:
                body = body[end + 1:] if end >= 0 else b""
                if not body.strip():
                    raise RequestError("the CSV body holds a header row but no data rows")
        if self.mapping is not None:
            positions = self.mapping
        else:
            # Headerless rows may carry the columns training ignored (schema.positions).
            end = body.find(b"\n")
            first_width = body[: end if end >= 0 else len(body)].count(b",") + 1
            try:
                positions = schema.positions(first_width, first_row) or \
                    list(range(schema.width))
            except RequestError:
                positions = list(range(schema.width))  # the width check below names the row
        width = len(positions)
        bad = _first_record_of_wrong_width(body, width)
        if bad is not None:
            record, got = bad
            row = first_row + record - 1
            raise schema.width_error(got, row) if self.mapping is None else RequestError(
                f"row {row} has {got} values but the header names {width}",
                kind="wrong number of values", row=row)
        # Text columns as pandas categories: the C parser hashes each distinct
        # value once, and the fast preprocessing works on the codes.
        dtypes = {j: (np.float64 if p is not None and schema.kinds[schema.names[p]] == "numeric"
                      else "category") for j, p in enumerate(positions)}
        try:
            frame = pd.read_csv(io.BytesIO(body), header=None, dtype=dtypes, encoding="utf-8",
                                skipinitialspace=True, na_values=["?"], skip_blank_lines=True,
                                names=list(range(width)), on_bad_lines="error")
        except (UnicodeDecodeError, ValueError, pd.errors.ParserError):
            return None
        columns = {}
        for j, position in enumerate(positions):
            if position is None:
                continue
            name = schema.names[position]
            if schema.kinds[name] == "date":
                values = schema.date_column(name, frame[j].astype(object).tolist(), first_row)
            elif schema.kinds[name] == "numeric":
                values = frame[j].to_numpy().astype(np.float64, copy=False)
                if np.isinf(values).any():
                    row = first_row + int(np.flatnonzero(np.isinf(values))[0])
                    raise RequestError(f"row {row}, feature {name!r}: infinite values are not "
                                       "accepted; send a number, or an empty value for missing",
                                       kind="not a finite number", row=row, feature=name)
            else:
                values = _clean_categories(frame[j].array)
            columns[name] = values
        return schema.records(columns, len(frame))


def _first_record_of_wrong_width(body: bytes, width: int) -> tuple[int, int] | None:
    """(1-based record number, its value count) of the first record without ``width``
    values, or None.  For bodies without quotes, where every comma separates values."""
    data = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(data == NEWLINE)
    ends = np.append(newlines, len(data)) if (len(data) and data[-1] != NEWLINE) else newlines
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(data == COMMA)
    per_line = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    blank = (ends - starts) <= 1
    bad = np.flatnonzero((per_line != width - 1) & ~blank)
    if not len(bad):
        return None
    line = int(bad[0])
    return line - int(blank[:line].sum()) + 1, int(per_line[line]) + 1


def _clean_categories(values):
    """Categories as the row-by-row path and training read cells: stripped, markers missing.

    Only the distinct values are touched, however many rows there are.
    """
    import pandas as pd

    stripped = [str(c).strip() for c in values.categories]
    kept = pd.Index([c for c in dict.fromkeys(stripped) if c not in MISSING_MARKERS],
                    dtype=object)
    remap = kept.get_indexer(stripped)
    codes = values.codes
    new_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)] if len(remap) else -1, -1)
    return pd.Categorical.from_codes(new_codes, categories=kept)


# -- block splitting --------------------------------------------------------------------------
def record_end(data: bytes, quoted: bool) -> int:
    """Length of the longest prefix of ``data`` that ends a record (0 if none does).

    ``data`` starts at a record boundary.  A newline ends a record only outside
    quotes: with an even number of quote characters before it (an escaped
    quote, ``""``, adds two).
    """
    if not quoted:
        return data.rfind(b"\n") + 1
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == NEWLINE)
    if not len(newlines):
        return 0
    quotes = np.flatnonzero(arr == QUOTE)
    outside = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


def blocks(stream, length: int, block_bytes: int):
    """The body read from ``stream`` in blocks of whole records.

    Batch transform sends up to 100 MB per request; parsing and predicting
    block by block keeps a worker's memory near one block's working set
    instead of several copies of the whole payload.
    """
    remaining, carry, quoted = length, b"", False
    while remaining > 0 or carry:
        chunk = stream.read(min(block_bytes, remaining)) if remaining > 0 else b""
        if remaining > 0 and not chunk:
            raise RequestError(f"the request body ended {remaining} bytes early")
        remaining -= len(chunk)
        quoted = quoted or b'"' in chunk
        data = carry + chunk
        if remaining > 0:
            cut = record_end(data, quoted)
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
        else:
            block, carry = data, b""
        yield block


def read_blocks(stream, length: int, block_bytes: int, schema: Schema,
                media: MediaType) -> Iterator[Records]:
    """The records of a body read from ``stream`` block by block; row numbers in
    errors count from the body's first record, and a header names every block's columns."""
    reader, row = CsvReader(schema, media), 1
    for block in blocks(stream, length, block_bytes):
        records = reader.read(block, row)
        records.first_row = row
        row += records.n
        yield records
