"""One invocation: decode → predict → encode, with a user's handlers in place of any layer.

::

    input    FORMATS[content type].read          (or the user's input_fn)
    predict  ServedModel.predict                 (or the user's predict_fn)
    output   FORMATS[accept].write               (or the user's output_fn)

The defaults are the built-in behaviour; a user's ``model_fn``, ``input_fn``,
``predict_fn`` and ``output_fn`` each replace one layer (``transform_fn``
replaces the three request layers), and the layers they leave out keep
theirs: the default answer type, no newline after the last row, large CSV
bodies read block by block, error statuses.

Between layers a user function gets what AWS's scikit-learn image would give
it: the request body as ``str`` for ``text/csv`` and ``application/json``
(exactly those types) and as ``bytes`` otherwise; from the default
``model_fn`` the unpickled estimator; from the default ``input_fn`` a NumPy
array (float32 for text formats) or, for an estimator fitted on named
columns, a DataFrame with those names; from the default ``predict_fn`` what
``model.predict`` returns (``predict_proba`` with ``output=probabilities``).
The image's own record and prediction types never reach user code.

Plain functions and objects: nothing here knows of Flask or of processes.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.formats import FORMATS
from sklearn_byoc.serve.formats.output import Prediction, check_output, csv_header, jsonable
from sklearn_byoc.serve.media import CSV, JSON, NPY, RequestContext
from sklearn_byoc.serve.model import ServedModel
from sklearn_byoc.serve.schema import Records
from sklearn_byoc.serve.user_code import HandlerError, UserCode, load_user_code

# Bodies larger than this, of a format that streams, are parsed and predicted block by
# block as they are read, so a 100 MB batch payload never sits in memory several times.
BLOCK_BYTES = 4 * 1024 * 1024
# The content types for which AWS's containers hand input_fn a str, not bytes.
TEXT_BODY_TYPES = (JSON, CSV)


@dataclass
class Answer:
    body: bytes
    content_type: str
    status: int = 200
    rows: int | None = None
    # Seconds spent in each layer (decode, predict, encode; transform for transform_fn).
    timings: dict = field(default_factory=dict)


class Clock:
    """Adds up the time spent in each layer of one request."""

    def __init__(self):
        self.spent = {"decode": 0.0, "predict": 0.0, "encode": 0.0}
        self._started = time.perf_counter()

    def lap(self, layer: str) -> None:
        now = time.perf_counter()
        self.spent[layer] = self.spent.get(layer, 0.0) + now - self._started
        self._started = now


class Body:
    """A request body: read whole, or block by block as it arrives (formats that stream)."""

    def __init__(self, read: Callable[[], bytes], stream=None, length: int = 0,
                 block_bytes: int = BLOCK_BYTES):
        self._read = read
        self._data: bytes | None = None
        self.stream = stream
        self.length = length
        self.block_bytes = block_bytes

    @classmethod
    def of(cls, data: bytes, block_bytes: int = BLOCK_BYTES) -> "Body":
        return cls(lambda: data, io.BytesIO(data), len(data), block_bytes)

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._read()
        return self._data

    @property
    def large(self) -> bool:
        return self._data is None and self.stream is not None and \
            self.length > self.block_bytes


class ModelService:
    """Everything one model folder answers with: its model and its code's handlers."""

    def __init__(self, model_dir: Path, *, isolated: bool = False):
        self.model_dir = model_dir
        self.code: UserCode = load_user_code(model_dir, isolated=isolated)
        model_fn = self.code.get("model_fn")
        with self.code.loading():
            if model_fn is not None:
                loaded = model_fn(str(model_dir))
                self.model = loaded if isinstance(loaded, ServedModel) else \
                    ServedModel.wrap(loaded, source=f"model_fn of {self.code.program}")
            else:
                self.model = ServedModel.from_dir(model_dir)


# -- the layers -------------------------------------------------------------------------------
def handler_body(body: Body, context: RequestContext) -> str | bytes:
    data = body.read()
    if (context.content_type or CSV) in TEXT_BODY_TYPES:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(f"the body is not valid UTF-8 (bad byte at position "
                               f"{exc.start}); send UTF-8 text") from None
    return data


def default_input(model: ServedModel, body: Body, context: RequestContext):
    """The built-in input_fn: Records for a model with a schema, else an array."""
    media = context.media
    if model.schema is None:
        return FORMATS[media.kind].array(body.read(), media)
    return FORMATS[media.kind].read(body.read(), media, model.schema)


def user_input(model: ServedModel, data, context: RequestContext):
    """What the built-in input_fn gives a user's predict_fn."""
    if not isinstance(data, Records):
        return data
    if model.named:
        return data.frame()
    # AWS's default input_fn casts text formats to float32 and leaves NPY as sent.
    return data.array(np.float64 if context.media.kind == NPY else np.float32)


def decode_and_predict(model: ServedModel, body: Body, context: RequestContext,
                       clock: Clock) -> Prediction:
    """The built-in input and predict layers together: a large body block by block when
    its format streams."""
    media = context.media
    fmt = FORMATS[media.kind]
    probabilities = context.output != "label"
    if model.schema is not None and fmt.streams(media) and body.large:
        parts = []
        for records in fmt.read_blocks(body.stream, body.length, body.block_bytes,
                                       model.schema, media):
            clock.lap("decode")
            if records.n:
                parts.append(model.predict(records, probabilities=probabilities))
            clock.lap("predict")
        if not parts:
            raise RequestError("the request body is empty; send at least one row")
        return Prediction.concat(parts)
    data = default_input(model, body, context)
    clock.lap("decode")
    prediction = default_predict(model, data, context)
    clock.lap("predict")
    return prediction


def default_predict(model: ServedModel, data, context: RequestContext) -> Prediction:
    probabilities = context.output != "label"
    if isinstance(data, Records):
        return model.predict(data, probabilities=probabilities)
    try:
        return model.predict_value(data, probabilities=probabilities)
    except UserError:
        raise
    except Exception as exc:
        if model.schema is not None:
            raise
        raise HandlerError("model.predict", exc) from exc


def default_output(prediction, context: RequestContext) -> Answer:
    answer_type = context.answer_type
    fmt = FORMATS[answer_type]
    if isinstance(prediction, Prediction):
        check_output(prediction, context.output)
        body = fmt.write(prediction, context.output)
        if context.answer_header:
            body = csv_header(prediction, context.output) + b"\n" + body
        return Answer(body, answer_type)
    return Answer(fmt.write_value(prediction), answer_type)


def as_answer(result: Any, default_type: str) -> Answer:
    """What a user's output_fn or transform_fn returned, as an answer."""
    body, content_type = (result if isinstance(result, tuple) and len(result) == 2
                          else (result, default_type))
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, (bytes, bytearray)):
        body = json.dumps(jsonable(body)).encode("utf-8")
        content_type = JSON
    return Answer(bytes(body), str(content_type))


# -- the chain --------------------------------------------------------------------------------
def invoke(service: ModelService, body: Body, context: RequestContext) -> Answer:
    """One request through the one chain of layers."""
    code, model = service.code, service.model
    clock = Clock()
    transform_fn = code.get("transform_fn")
    input_fn, predict_fn, output_fn = (code.get(n) for n in ("input_fn", "predict_fn",
                                                               "output_fn"))
    context.validate(writes_answer=transform_fn is None and output_fn is None)
    output = context.output
    if transform_fn is not None:
        result = transform_fn(model.estimator, handler_body(body, context),
                              context.handler_content_type, context.handler_accept,
                              context=context)
        clock.lap("transform")
        return _timed(as_answer(result, context.handler_accept), clock, None)

    if predict_fn is None:
        model.check_output(output)
    if input_fn is None and predict_fn is None:
        prediction = decode_and_predict(model, body, context, clock)
    else:
        if input_fn is not None:
            data = input_fn(handler_body(body, context), context.handler_content_type,
                            context=context)
        else:
            data = default_input(model, body, context)
        clock.lap("decode")
        if predict_fn is not None:
            prediction = predict_fn(user_input(model, data, context), model.estimator,
                                    context=context)
        else:
            prediction = default_predict(model, data, context)
        clock.lap("predict")

    if output_fn is not None:
        value = prediction.as_value(output) if isinstance(prediction, Prediction) \
            else prediction
        answer = as_answer(output_fn(value, context.handler_accept, context=context),
                           context.handler_accept)
    else:
        answer = default_output(prediction, context)
    clock.lap("encode")
    return _timed(answer, clock, prediction)


def _timed(answer: Answer, clock: Clock, prediction) -> Answer:
    answer.timings = clock.spent
    try:
        answer.rows = len(prediction) if prediction is not None else None
    except TypeError:  # a user's predict_fn may return anything
        answer.rows = None
    return answer
