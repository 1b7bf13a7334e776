"""NumPy's ``.npy`` format (``application/x-npy``): what the SDK's NumpySerializer sends.

``SKLearnPredictor`` serializes with ``np.save`` and reads the answer with
``np.load(allow_pickle=False)``.  A request is a 2-D array of rows, or a 1-D
array as one row; a text array (``<U...``, what ``np.array`` makes of rows
that mix numbers and text) is typed cell by cell, as CSV is.  Nothing from a
request is unpickled: an object array is refused with a way to send it.
"""
from __future__ import annotations

import io

import numpy as np

from sklearn_byoc.serve.errors import NotAcceptable, RequestError
from sklearn_byoc.serve.schema import Records, Schema

NPY_MAGIC = b"\x93NUMPY"
OBJECT_ARRAY = ("the NPY body holds an object array, which can only be read by unpickling it, "
                "and serve never unpickles a request; send df.to_numpy(dtype=str) or a numeric "
                "array (np.save of either), or send CSV or JSON")


def load_array(body: bytes) -> np.ndarray:
    """The array of an NPY body, never unpickled."""
    if not body:
        raise RequestError("the request body is empty; send np.save's output of an array")
    if not body.startswith(NPY_MAGIC):
        hint = " (an .npz archive: send one array, saved with np.save)" \
            if body.startswith(b"PK") else ""
        raise RequestError(f"the body is not an NPY array{hint}; send the bytes np.save writes, "
                           "or name the body's real format in Content-Type")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RequestError(OBJECT_ARRAY, kind="NPY object array") from None
        if "EOF" in str(exc):
            raise RequestError(f"the NPY body is cut short ({exc}); send the whole of what "
                               "np.save writes") from None
        raise RequestError(f"the NPY body cannot be read: {exc}") from None
    except (OSError, EOFError) as exc:
        raise RequestError(f"the NPY body is cut short or damaged: {exc}") from None
    return array


def as_rows(array: np.ndarray) -> np.ndarray:
    if array.ndim == 1:
        return array.reshape(1, -1)
    if array.ndim != 2:
        raise RequestError(f"the NPY array has shape {array.shape}; send a 2-D array of rows "
                           "or a 1-D array for one row")
    return array


def read_npy(body: bytes, schema: Schema) -> Records:
    array = load_array(body)
    if array.dtype.names is not None:  # a structured array: one field per feature
        if array.ndim != 1:
            raise RequestError(f"the structured NPY array has shape {array.shape}; send a 1-D "
                               "array of records")
        rows = [dict(zip(array.dtype.names, record)) for record in array.tolist()]
        return schema.from_named_rows(rows)
    rows = as_rows(array)
    kind = rows.dtype.kind
    if kind in "iuf":
        return schema.from_numeric_array(rows)
    if kind == "U":
        return schema.from_positional_rows(rows.tolist())
    if kind == "S":
        try:
            return schema.from_positional_rows(np.char.decode(rows, "utf-8").tolist())
        except UnicodeDecodeError:
            raise RequestError("the NPY byte-string array is not UTF-8 text; send a str "
                               "array (dtype <U) or numbers") from None
    if kind == "b":
        return schema.from_positional_rows(rows.tolist())
    raise RequestError(f"the NPY array holds {rows.dtype} values; send numbers or text")


def save(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def plain_array(values, what: str) -> np.ndarray:
    """``values`` as an array NumpyDeserializer loads without pickle: numbers or <U text."""
    array = np.asarray(values)
    if array.dtype != object:
        return array
    items = array.tolist()
    flat = np.ravel(np.asarray(items, dtype=object))
    if all(isinstance(v, str) for v in flat):
        return np.asarray(items, dtype=str)
    if all(isinstance(v, (bool, int, float, np.number)) and not isinstance(v, np.bool_)
           for v in flat):
        return np.asarray(items, dtype=np.float64)
    kinds = ", ".join(sorted({type(v).__name__ for v in flat}))
    raise NotAcceptable(f"{what} mixes kinds of values ({kinds}) that an NPY array holds only "
                        "by pickling; accept application/json or text/csv")


def encode_npy(prediction, output: str) -> bytes:
    if output == "all":
        raise NotAcceptable("output=all cannot be answered as application/x-npy (one array "
                            "holds one kind of value); accept application/json or text/csv, "
                            "or ask for output=label or output=probabilities")
    if output == "probabilities":
        return save(np.asarray(prediction.probabilities, dtype=np.float64))
    return save(plain_array(prediction.labels, "the predicted labels"))


def encode_npy_value(value) -> bytes:
    """What a user's predict_fn returned, as NPY."""
    return save(plain_array(value, "the prediction"))
