"""The formats serve reads and writes: one row per media type.

Each row says how a body of that type becomes records for a model with a
schema (``read``), what AWS's default input_fn would make of it for a model
without one (``array``), and how a prediction is written back (``write``) or
a user predict_fn's value (``write_value``).  A row that can read a large body
block by block, as it arrives, says how (``read_blocks``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.formats import csv_input, json_input, npy, output
from sklearn_byoc.serve.formats.output import Prediction
from sklearn_byoc.serve.media import CSV, JSON, JSONLINES, NPY, MediaType
from sklearn_byoc.serve.schema import Records, Schema


@dataclass(frozen=True)
class Format:
    media_type: str
    read: Callable[[bytes, MediaType, Schema], Records]
    array: Callable[[bytes, MediaType], Any]
    write: Callable[[Prediction, str], bytes]
    write_value: Callable[[Any], bytes]
    # (stream, length, block bytes, schema, media) -> the body's records, block by block.
    read_blocks: Callable[[BinaryIO, int, int, Schema, MediaType], Iterator[Records]] | None \
        = None

    def streams(self, media: MediaType) -> bool:
        """Whether a large body of this media type is read block by block: blocks are
        cut at newline bytes, which the decoder of a UTF-8 body keeps whole."""
        return self.read_blocks is not None and media.utf8


def _text(body: bytes, media: MediaType) -> str:
    if not body or not body.strip():
        raise RequestError("the request body is empty; send at least one row")
    return csv_input.body_text(csv_input.strip_bom(body, media), media.charset)


def _float32(rows) -> np.ndarray:
    """Rows as AWS's default input_fn gives them: float32, or the values as they are."""
    if not isinstance(rows, list) or not rows:
        raise RequestError("the body holds no rows")
    try:
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError):
        return np.asarray(rows, dtype=object)


FORMATS: dict[str, Format] = {
    CSV: Format(
        CSV,
        read=lambda body, media, schema: csv_input.CsvReader(schema, media).read(body),
        array=lambda body, media: _float32(csv_input.csv_rows(_text(body, media))),
        write=output.encode_csv,
        write_value=output.encode_csv_value,
        read_blocks=csv_input.read_blocks),
    JSON: Format(
        JSON,
        read=lambda body, media, schema: json_input.read_json(_text(body, media), schema),
        array=lambda body, media: _float32(json_input.json_rows(_text(body, media))[0]),
        write=output.encode_json,
        write_value=output.encode_json_value),
    JSONLINES: Format(
        JSONLINES,
        read=lambda body, media, schema: json_input.read_jsonlines(_text(body, media), schema),
        array=lambda body, media: _float32(json_input.jsonlines_values(_text(body, media))),
        write=output.encode_jsonlines,
        write_value=output.encode_jsonlines_value),
    NPY: Format(
        NPY,
        read=lambda body, media, schema: npy.read_npy(body, schema),
        array=lambda body, media: npy.load_array(body),
        write=npy.encode_npy,
        write_value=npy.encode_npy_value),
}
