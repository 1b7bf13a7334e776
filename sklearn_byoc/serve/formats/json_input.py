"""JSON and JSON Lines request bodies.

``application/json``       ``{"instances": rows}``, a bare list of rows, or one row
``application/jsonlines``  one row per line

A row is a list of values in the model's feature order, or an object of
feature: value (any order; a missing key is a missing value).
"""
from __future__ import annotations

import json

from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.formats.csv_input import LINE_BREAK
from sklearn_byoc.serve.schema import Records, Schema

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
                           f"column {exc.colno}", kind="not valid JSON") from None
    except ValueError:  # an integer longer than Python converts (4300 digits)
        raise RequestError(TOO_MANY_DIGITS.format(where="the JSON body")) from None


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
                               f"{exc.colno}", kind="not valid JSON", row=number) from None
        except ValueError:  # an integer longer than Python converts (4300 digits)
            raise RequestError(TOO_MANY_DIGITS.format(where=f"line {number}")) from None
    return rows


def json_rows(text: str) -> tuple[list, str]:
    """The rows of a JSON body and how to name them in a message."""
    payload = json_value(text)
    if isinstance(payload, dict):
        if "instances" in payload:
            rows = payload["instances"]
            if not isinstance(rows, list):
                raise RequestError('"instances" must be a list of rows')
            return rows, '"instances"'
        return [payload], "the JSON object"
    if isinstance(payload, list):
        if payload and all(not isinstance(v, (list, dict)) for v in payload):
            return [payload], "the JSON list"  # one row
        return payload, "the JSON list"
    raise RequestError('send {"instances": [rows]}, a list of rows, or one row; got a JSON '
                       + type(payload).__name__)


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


def read_json(text: str, schema: Schema) -> Records:
    rows, where = json_rows(text)
    return rows_to_records(rows, schema, where)


def read_jsonlines(text: str, schema: Schema) -> Records:
    return rows_to_records(jsonlines_values(text), schema, "the JSON Lines body")
