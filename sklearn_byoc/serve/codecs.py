"""Request and response formats: CSV, JSON and JSON Lines.

Pure functions, no Flask: bytes and a content type in, :class:`Records` out;
a :class:`Prediction` and an accept type in, bytes out.

Input
  ``text/csv``               rows in training feature order, no header; or a first
                              row naming the features (any order; a target column
                              in it is ignored)
  ``application/json``       ``{"instances": rows}``, a bare list of rows, or one row;
                              a row is a list (feature order) or an object (by name)
  ``application/jsonlines``  one row per line, a list or an object

Output (``output`` = ``label`` | ``probabilities`` | ``all``)
  ``text/csv``               one line per row: the label; or the class probabilities;
                              or the label then the probabilities
  ``application/json``       ``{"predictions": [...], "probabilities": [[...]],
                              "classes": [...]}`` (keys by output)
  ``application/jsonlines``  one object per row: ``{"prediction": ...,
                              "probabilities": {class: p}}``
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from sklearn_byoc.serve.errors import NotAcceptable, RequestError, UnsupportedContentType
from sklearn_byoc.serve.schema import MISSING_MARKERS, Records, Schema

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
FORMATS = (CSV, JSON, JSONLINES)
ALIASES = {
    "text/csv": CSV, "application/csv": CSV, "text/x-csv": CSV,
    "application/json": JSON, "text/json": JSON,
    "application/jsonlines": JSONLINES, "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES,
    "application/ndjson": JSONLINES,
}
OUTPUTS = ("label", "probabilities", "all")

UTF8_BOM = b"\xef\xbb\xbf"
# Rows end at \n, \r\n or \r, as for pandas when training read the data; not at the
# other breaks str.splitlines() knows (\x0c, \x1c-\x1e, \x85, \u2028, \u2029),
# which may sit inside a text value or a JSON string.
LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Payloads up to this size are parsed in Python (no per-call set-up cost);
# larger ones by pandas' C parser.
SMALL_CSV_BYTES = 64 * 1024


@dataclass
class MediaType:
    kind: str  # canonical, one of FORMATS
    charset: str = "utf-8"


def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    kind, _, rest = (value or "").partition(";")
    params = {}
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def content_type(value: str | None) -> MediaType:
    """The request's format; a missing Content-Type means CSV, as for built-in algorithms."""
    kind, params = parse_media_type(value)
    if not kind:
        return MediaType(CSV)
    canonical = ALIASES.get(kind)
    if canonical is None:
        raise UnsupportedContentType(
            f"Content-Type {value!r} is not supported; send one of {', '.join(FORMATS)}"
        )
    charset = params.get("charset", "utf-8").lower()
    try:
        "".encode(charset)
    except LookupError:
        raise UnsupportedContentType(f"charset {charset!r} in Content-Type {value!r} is unknown; "
                                     "send UTF-8") from None
    return MediaType(canonical, charset)


def accept_type(value: str | None, default: str) -> str:
    """Pick the best supported type from an Accept header (q-values honoured)."""
    if not value or not value.strip():
        return default
    choices = []
    for index, item in enumerate(value.split(",")):
        kind, params = parse_media_type(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q <= 0 or not kind:
            continue
        if kind in ("*/*", "*"):
            resolved = default
        elif kind == "text/*":
            resolved = CSV
        elif kind == "application/*":
            resolved = default if default in (JSON, JSONLINES) else JSON
        else:
            resolved = ALIASES.get(kind)
        if resolved:
            choices.append((-q, index, resolved))
    if not choices:
        raise NotAcceptable(f"Accept {value!r} names no supported type; accept one of "
                            f"{', '.join(FORMATS)} (or */*)")
    return min(choices)[2]


# -- decoding -------------------------------------------------------------------
def decode(body: bytes, media: MediaType, schema: Schema, *, first_row: int = 1,
           mapping: list | None = None) -> Records:
    if not body or not body.strip():
        raise RequestError("the request body is empty; send at least one row")
    if first_row == 1 and media.charset in ("utf-8", "utf8") and body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM):]  # Excel's "CSV UTF-8" starts with one
    if media.kind == CSV:
        return decode_csv(body, schema, media.charset, first_row=first_row, mapping=mapping)
    text = body_text(body, media.charset)
    if media.kind == JSON:
        return decode_json(text, schema)
    return decode_jsonlines(text, schema)


def body_text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"the body is not valid {charset} (bad byte at position {exc.start}); send UTF-8 "
            "text or name the charset in Content-Type"
        ) from None


def _header_map(cells: list[str], schema: Schema) -> list[int | None] | None:
    """Column -> feature position when ``cells`` is a header row, else None.

    A header row holds no numbers and at least half its cells name features
    (or the target, whose column is then ignored).
    """
    names = [c.strip() for c in cells]
    if any(n and _is_number(n) for n in names):
        return None
    matched = sum(n in schema.position or n == schema.target for n in names)
    if matched == 0 or matched < len(names) / 2:
        return None
    unknown = [n for n in names if n not in schema.position and n != schema.target]
    if unknown:
        raise RequestError(
            f"the header row names unknown column(s) {', '.join(map(repr, unknown[:10]))}; "
            f"the model expects {schema.describe()}"
        )
    missing = [n for n in schema.names if n not in names]
    if missing:
        raise RequestError(
            f"the header row lacks feature(s) {', '.join(map(repr, missing[:10]))}; "
            f"the model expects {schema.describe()}"
        )
    return [schema.position.get(n) for n in names]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def decode_csv(body: bytes, schema: Schema, charset: str = "utf-8", *,
               first_row: int = 1, mapping: list | None = None) -> Records:
    """``mapping``: the header of an earlier block of the same body, if it had one."""
    if len(body) > SMALL_CSV_BYTES and charset in ("utf-8", "utf8"):
        records = decode_csv_large(body, schema, first_row=first_row, mapping=mapping)
        if records is not None:
            return records
    return decode_csv_rows(body_text(body, charset), schema, first_row=first_row, mapping=mapping)


def _columns_by_header(rows: list[list[str]], mapping: list, schema: Schema,
                       first_row: int) -> Records:
    width = len(mapping)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise RequestError(f"row {first_row + i} has {len(row)} values but the header "
                               f"names {width}")
    columns = {}
    for j, position in enumerate(mapping):
        if position is not None:
            name = schema.names[position]
            columns[name] = schema.column(name, [row[j] for row in rows], first_row)
    ordered = {name: columns[name] for name in schema.names}
    return Records(ordered, len(rows), mapping)


def csv_rows(text: str, first_row: int = 1) -> list[list[str]]:
    """The non-blank rows of a CSV text, as lists of cells."""
    if '"' in text:
        reader = csv.reader(io.StringIO(text, newline=""))  # any of \n, \r\n, \r ends a row
        try:
            rows = [r for r in reader if r and any(c.strip() for c in r)]
        except csv.Error as exc:  # a quoted value over csv's 131072-character limit
            raise RequestError(f"the CSV body cannot be read at line "
                               f"{first_row + reader.line_num - 1}: {exc}") from None
    else:
        rows = [line.split(",") for line in LINE_BREAK.split(text) if line.strip()]
    if not rows:
        raise RequestError("the CSV body holds no rows")
    return rows


def decode_csv_rows(text: str, schema: Schema, *, first_row: int = 1,
                    mapping: list | None = None) -> Records:
    """Row-by-row parsing: no set-up cost, and exact row numbers in errors."""
    rows = csv_rows(text, first_row)
    if mapping is not None:
        return _columns_by_header(rows, mapping, schema, first_row)
    mapping = _header_map(rows[0], schema) if first_row == 1 else None
    if mapping is None:
        return schema.from_positional_rows(rows, first_row=first_row)
    rows = rows[1:]
    if not rows:
        raise RequestError("the CSV body holds a header row but no data rows")
    return _columns_by_header(rows, mapping, schema, first_row)


def _first_line_of_wrong_width(body: bytes, width: int) -> int | None:
    """1-based number of the first line without ``width`` fields, or None.

    pandas fills short rows with missing values silently; counting the
    delimiters catches a row with a value too few.  Only for bodies without
    quotes, where every comma separates fields.
    """
    data = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    ends = np.append(newlines, len(data)) if (len(data) and data[-1] != 10) else newlines
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(data == 44)
    per_line = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    blank = (ends - starts) <= 1
    bad = np.flatnonzero((per_line != width - 1) & ~blank)
    return int(bad[0]) + 1 if len(bad) else None


def decode_csv_large(body: bytes, schema: Schema, *, first_row: int = 1,
                     mapping: list | None = None) -> Records | None:
    """pandas' C parser for large bodies; None when the row-by-row parser must decide.

    Malformed bodies go to :func:`decode_csv_rows`, which names the exact row
    and value at fault.
    """
    import pandas as pd

    if mapping is None and first_row == 1:
        end = body.find(b"\n")
        first_line = body[: end if end >= 0 else len(body)].decode("utf-8", "replace")
        try:
            first = next(csv.reader([first_line]), [])
        except csv.Error:  # a bare carriage return, an over-long value
            return None
        if not first:
            return None
        mapping = _header_map(first, schema)
        if mapping is not None:
            body = body[end + 1:] if end >= 0 else b""
            if not body.strip():
                raise RequestError("the CSV body holds a header row but no data rows")
    if b'"' in body:
        # Quoted values may hold commas and newlines: only a real CSV reader
        # can count the values of each row (pandas pads a short row silently).
        return None
    # Column j of the body holds feature positions[j] (None: a target column).
    positions = mapping if mapping is not None else list(range(schema.width))
    width = len(positions)
    # Text columns as pandas categories: the C parser hashes each distinct
    # value once, and the fast preprocessing works on the codes.
    # pandas pads a row with too few values silently, and crawls through one
    # with far too many: every line's values are counted first (without quotes
    # every comma separates two values).
    bad_line = _first_line_of_wrong_width(body, width)
    if bad_line is not None:
        line = body.split(b"\n", bad_line)[bad_line - 1]
        got, row = line.count(b",") + 1, first_row + bad_line - 1
        raise RequestError(schema.width_message(got, row) if mapping is None else
                           f"row {row} has {got} values but the header names {width}")
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
        values = frame[j].to_numpy()
        if schema.kinds[name] == "numeric":
            values = values.astype(np.float64, copy=False)
            if np.isinf(values).any():
                row = first_row + int(np.flatnonzero(np.isinf(values))[0])
                raise RequestError(f"row {row}, feature {name!r}: infinite values are not "
                                   "accepted; send a number, or an empty value for missing")
        else:
            values = _clean_categories(frame[j].array)
        columns[name] = values
    ordered = {name: columns[name] for name in schema.names}
    return Records(ordered, len(frame), mapping)


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


def csv_blocks(stream, length: int, block_bytes: int):
    """Split a CSV request body into blocks of whole lines while reading it.

    Batch transform sends up to 100 MB per request; parsing and predicting
    block by block keeps a worker's memory near one block's working set
    instead of several copies of the whole payload.  Yields (block, number of
    the block's first row).
    """
    remaining, carry, row = length, b"", 1
    while remaining > 0 or carry:
        chunk = stream.read(min(block_bytes, remaining)) if remaining > 0 else b""
        if remaining > 0 and not chunk:
            raise RequestError(f"the request body ended {remaining} bytes early")
        remaining -= len(chunk)
        data = carry + chunk
        if remaining > 0:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
        else:
            block, carry = data, b""
        if block.strip():
            yield block, row
            row += sum(1 for line in block.split(b"\n") if line.strip())


TOO_MANY_DIGITS = ("{where} holds a number with thousands of digits, more than can be read; "
                   "send numbers as ordinary decimals (1e300, 12.5)")


def json_value(text: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise RequestError("the JSON body is nested too deeply; send rows as flat lists or "
                           "objects") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno}") from None
    except ValueError:  # an integer longer than Python converts (4300 digits)
        raise RequestError(TOO_MANY_DIGITS.format(where="the JSON body")) from None


def rows_to_records(rows: list, schema: Schema, where: str) -> Records:
    if not rows:
        raise RequestError(f"{where} holds no rows")
    if all(isinstance(r, dict) for r in rows):
        return schema.from_named_rows(rows)
    if all(isinstance(r, list) for r in rows):
        for i, row in enumerate(rows):
            for value in row:
                if isinstance(value, (list, dict)):
                    raise RequestError(f"row {i + 1} holds a nested {type(value).__name__}; "
                                       "each value must be a number, text or null")
        return schema.from_positional_rows(rows)
    kinds = sorted({type(r).__name__ for r in rows})
    raise RequestError(f"{where} must be a list of rows, each a list of values or an object "
                       f"of feature: value; found {', '.join(kinds)}")


def decode_json(text: str, schema: Schema) -> Records:
    payload = json_value(text)
    if isinstance(payload, dict):
        if "instances" in payload:
            rows = payload["instances"]
            if not isinstance(rows, list):
                raise RequestError('"instances" must be a list of rows')
            return rows_to_records(rows, schema, '"instances"')
        return rows_to_records([payload], schema, "the JSON object")
    if isinstance(payload, list):
        if payload and all(not isinstance(v, (list, dict)) for v in payload):
            return rows_to_records([payload], schema, "the JSON list")  # one row
        return rows_to_records(payload, schema, "the JSON list")
    raise RequestError('send {"instances": [rows]}, a list of rows, or one row; got a JSON '
                       + type(payload).__name__)


def decode_jsonlines(text: str, schema: Schema) -> Records:
    return rows_to_records(jsonlines_values(text), schema, "the JSON Lines body")


def jsonlines_values(text: str) -> list:
    """One JSON value per non-blank line."""
    rows = []
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except RecursionError:
            raise RequestError(f"line {number} is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise RequestError(f"line {number} is not valid JSON: {exc.msg} at column "
                               f"{exc.colno}") from None
        except ValueError:  # an integer longer than Python converts (4300 digits)
            raise RequestError(TOO_MANY_DIGITS.format(where=f"line {number}")) from None
    return rows


# -- encoding -------------------------------------------------------------------
@dataclass
class Prediction:
    labels: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list | None = None

    @classmethod
    def concat(cls, parts: list["Prediction"]) -> "Prediction":
        if len(parts) == 1:
            return parts[0]
        probabilities = None
        if parts[0].probabilities is not None:
            probabilities = np.concatenate([p.probabilities for p in parts])
        return cls(np.concatenate([p.labels for p in parts]), probabilities, parts[0].classes)


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain_list(values: np.ndarray) -> list:
    if values.dtype.kind == "f":
        values = np.where(np.isfinite(values), values, np.nan)
        return [None if v != v else v for v in values.tolist()]
    return [_plain(v) for v in values.tolist()] if values.dtype == object else values.tolist()


def encode(prediction: Prediction, accept: str, output: str) -> bytes:
    if output != "label" and prediction.probabilities is None:
        raise RequestError(f"output={output} needs class probabilities, which this model "
                           "does not give (regression or no predict_proba); use output=label")
    if accept == CSV:
        return encode_csv(prediction, output)
    labels = _plain_list(prediction.labels)
    proba = prediction.probabilities.tolist() if output != "label" else None
    if accept == JSON:
        body = {}
        if output in ("label", "all"):
            body["predictions"] = labels
        if proba is not None:
            body["probabilities"] = proba
            body["classes"] = [_plain(c) for c in prediction.classes]
        return json.dumps(body, separators=(",", ":")).encode("utf-8")
    classes = [str(_plain(c)) for c in prediction.classes] if proba is not None else None
    lines = []
    for i, label in enumerate(labels):
        item = {}
        if output in ("label", "all"):
            item["prediction"] = label
        if proba is not None:
            item["probabilities"] = dict(zip(classes, proba[i]))
        lines.append(json.dumps(item, separators=(",", ":")))
    # No newline after the last row: batch transform's AssembleWith=Line adds
    # one after each answer, and one here too would leave an empty line.
    return "\n".join(lines).encode("utf-8")


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _label_cells(labels: np.ndarray) -> list[str]:
    if labels.dtype.kind in "iub":
        return [str(v) for v in labels.tolist()]
    if labels.dtype.kind == "f":
        return ["" if v != v or v in (math.inf, -math.inf) else repr(v)
                for v in labels.tolist()]
    values = labels.tolist()
    distinct = set(values)
    if all(type(v) is str and csv_cell(v) == v for v in distinct):
        return values  # plain text labels are their own cells
    # Class labels repeat: format each distinct one once.
    cells: dict = {}
    out = []
    for value in values:
        cell = cells.get(value)
        if cell is None:
            cell = cells[value] = csv_cell(_plain(value))
        out.append(cell)
    return out


def encode_csv(prediction: Prediction, output: str) -> bytes:
    if output == "label":
        lines = _label_cells(prediction.labels)
    else:
        proba = prediction.probabilities.tolist()
        probabilities = [",".join(map(repr, row)) for row in proba]
        if output == "probabilities":
            lines = probabilities
        else:
            lines = [label + "," + p
                     for label, p in zip(_label_cells(prediction.labels), probabilities)]
    # No newline after the last row: batch transform's AssembleWith=Line adds
    # one after each answer, and one here too would leave an empty line.
    return "\n".join(lines).encode("utf-8")
