"""A served model: the built-in request path, or the user's handler functions.

SageMaker's framework containers let a model bring its own inference code:
the SDK packs a ``Model``'s ``entry_point`` / ``source_dir`` into
``code/`` inside model.tar.gz and names the script in ``SAGEMAKER_PROGRAM``.
The script may define any of

    model_fn(model_dir)                      -> model
    input_fn(body, content_type)             -> data
    predict_fn(data, model)                  -> prediction
    output_fn(prediction, accept)            -> body, or (body, content_type)
    transform_fn(model, body, content_type, accept)   (replaces the three above)

and every function it leaves out falls back to the built-in one.  With no
script (or a script that defines none of them) requests take the built-in
path of ``sklearn_byoc.serve.app.invoke``, which is the fast one.

A handler that raises ``sklearn_byoc.serve.errors.RequestError("message", status=422)``
(or any other ``RequestError``/``UserError``) answers with that status and
message; any other exception answers 500 with the exception's message and
logs the traceback.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import codecs
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.schema import Records

log = logging.getLogger("serve")

HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
DEFAULT_PROGRAM = "inference.py"


class HandlerError(Exception):
    """A user handler failed in an unexpected way (answered as 500)."""

    def __init__(self, where: str, exc: BaseException):
        super().__init__(f"{where} raised {type(exc).__name__}: {exc}")


def code_dir(model_dir: Path) -> Path:
    """Where the model's inference code is.

    ``SAGEMAKER_SUBMIT_DIRECTORY`` names it when the SDK did not pack the code
    into model.tar.gz: a folder (SDK local mode mounts ``source_dir`` at
    /opt/ml/code) or an ``s3://`` URI of ``sourcedir.tar.gz``, fetched and
    unpacked under /tmp.  Otherwise it is ``code/`` in the model folder.
    """
    submit = os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY", "").strip()
    if submit.startswith("file://"):
        submit = submit[len("file://"):]
    if submit.startswith("s3://"):
        return fetch_code(submit)
    if submit and Path(submit).is_dir() and \
            (Path(submit) / os.environ.get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM)).is_file():
        return Path(submit)
    return model_dir / "code"


@functools.lru_cache(maxsize=None)
def fetch_code(uri: str) -> Path:
    """Fetched once per process, however many models (multi-model endpoints) use it."""
    from sklearn_byoc.common.archives import safe_extract
    from sklearn_byoc.common.s3 import download_object

    folder = Path(tempfile.mkdtemp(prefix="serve-code-"))
    archive = folder / "sourcedir.tar.gz"
    download_object(uri, archive, what="SAGEMAKER_SUBMIT_DIRECTORY",
                    hint_missing="check the model's source_dir/entry_point upload")
    safe_extract(archive, folder / "code")
    return folder / "code"


def find_program(model_dir: Path) -> Path | None:
    """The user's inference script for ``model_dir``, if it has one."""
    folder = code_dir(model_dir)
    name = os.environ.get("SAGEMAKER_PROGRAM", "").strip()
    if name:
        path = folder / name
        if not path.is_file():
            raise UserError(f"SAGEMAKER_PROGRAM={name!r} but {path} does not exist; the "
                            "model's code/ folder holds: "
                            + (", ".join(sorted(p.name for p in folder.iterdir()))
                               if folder.is_dir() else "nothing (no code/ folder)"))
        return path
    default = folder / DEFAULT_PROGRAM
    return default if default.is_file() else None


def install_requirements(folder: Path) -> None:
    """Install code/requirements.txt into /tmp (serverless: only /tmp is writable)."""
    requirements = folder / "requirements.txt"
    if not requirements.is_file():
        return
    target = Path(tempfile.gettempdir()) / "serve-packages" / folder.name
    log.info("installing %s into %s", requirements, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", "--target", str(target), "-r", str(requirements)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise UserError(f"installing {requirements} failed (pip exit {result.returncode}): "
                        f"{tail}")
    sys.path.insert(0, str(target))


def load_module(path: Path):
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"user_inference_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


class ModelService:
    """Everything needed to answer invocations for one model folder."""

    def __init__(self, model_dir: Path):
        from sklearn_byoc.serve.predictor import Predictor

        self.model_dir = model_dir
        self.functions: dict[str, Callable] = {}
        program = find_program(model_dir)
        if program is not None:
            install_requirements(program.parent)
            module = load_module(program)
            self.functions = {n: getattr(module, n) for n in HANDLER_NAMES
                              if callable(getattr(module, n, None))}
            log.info("%s defines %s", program,
                     ", ".join(self.functions) or "no handler functions")
        if "model_fn" in self.functions:
            self.model = self._call("model_fn", str(model_dir))
            self.predictor = self.model if isinstance(self.model, Predictor) else None
        else:
            self.predictor = Predictor.from_dir(model_dir)
            self.model = self.predictor

    @property
    def is_builtin(self) -> bool:
        return not (set(self.functions) - {"model_fn"}) and self.predictor is not None

    def _call(self, name: str, *args):
        try:
            return self.functions[name](*args)
        except UserError:
            raise
        except Exception as exc:
            log.exception("%s failed", name)
            raise HandlerError(name, exc) from exc

    # -- the request path with user functions -----------------------------------
    def invoke_custom(self, body: bytes, content_type: str | None, accept: str | None,
                      output: str) -> tuple[bytes, str]:
        content_type = content_type or codecs.CSV
        accept_header = accept if accept and accept.strip() not in ("*/*", "*") else None
        if "transform_fn" in self.functions:
            result = self._call("transform_fn", self.model, body, content_type,
                                accept_header or content_type)
            return as_answer(result, accept_header or content_type)
        if "input_fn" in self.functions:
            data = self._call("input_fn", body, content_type)
        else:
            data = self.default_input(body, content_type)
        if "predict_fn" in self.functions:
            prediction = self._call("predict_fn", data, self.model)
        else:
            prediction = self.default_predict(data)
        answer_type = accept_header or content_type
        if "output_fn" in self.functions:
            return as_answer(self._call("output_fn", prediction, answer_type), answer_type)
        canonical = codecs.accept_type(answer_type, codecs.content_type(content_type).kind)
        if isinstance(prediction, codecs.Prediction):
            return codecs.encode(prediction, canonical, output), canonical
        return encode_any(prediction, canonical), canonical

    def default_input(self, body: bytes, content_type: str):
        media = codecs.content_type(content_type)
        if self.predictor is not None:
            return codecs.decode(body, media, self.predictor.schema)
        return decode_any(body, media)

    def default_predict(self, data):
        """The built-in predict_fn; class probabilities come along when the model has them."""
        if self.predictor is None:
            if not hasattr(self.model, "predict"):
                raise HandlerError("predict_fn", TypeError(
                    f"the model from model_fn ({type(self.model).__name__}) has no predict(); "
                    "define predict_fn"))
            try:
                return self.model.predict(data)
            except Exception as exc:
                raise HandlerError("model.predict", exc) from exc
        records = to_records(data, self.predictor.schema)
        return self.predictor.predict(records, probabilities=self.predictor.has_probabilities)


def to_records(data, schema) -> Records:
    """What a user input_fn returned, as records for the built-in model."""
    if isinstance(data, Records):
        return data
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # a DataFrame
        return schema.from_named_rows(data.to_dict(orient="records"))
    rows = data.tolist() if isinstance(data, np.ndarray) else list(data)
    if rows and all(isinstance(r, dict) for r in rows):
        return schema.from_named_rows(rows)
    if rows and not isinstance(rows[0], (list, tuple)):
        rows = [rows]
    return schema.from_positional_rows([list(r) for r in rows])


def decode_any(body: bytes, media: codecs.MediaType):
    """Schema-free decoding for a model brought by model_fn: a 2-D numpy array."""
    text = codecs.body_text(body, media.charset)
    if media.kind == codecs.CSV:
        rows = codecs.csv_rows(text)
    elif media.kind == codecs.JSON:
        payload = codecs.json_value(text)
        rows = payload.get("instances", payload) if isinstance(payload, dict) else payload
    else:
        rows = codecs.jsonlines_values(text)
    if not isinstance(rows, list) or not rows:
        raise RequestError("the body holds no rows")
    try:
        return np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError):
        return np.asarray(rows, dtype=object)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    return value


def encode_any(prediction, accept: str) -> bytes:
    """Encode what a user predict_fn returned (arrays, lists, dicts, scalars)."""
    value = _jsonable(prediction)
    if accept == codecs.JSON:
        body = value if isinstance(value, dict) else {"predictions": value}
        return json.dumps(body, separators=(",", ":")).encode("utf-8")
    rows = value if isinstance(value, list) else [value]
    if accept == codecs.JSONLINES:
        return ("\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n").encode()
    lines = []
    for row in rows:
        cells = row if isinstance(row, list) else [row]
        lines.append(",".join(codecs.csv_cell(c) for c in cells))
    return ("\n".join(lines) + "\n").encode("utf-8")


def as_answer(result: Any, default_type: str) -> tuple[bytes, str]:
    body, content_type = (result if isinstance(result, tuple) and len(result) == 2
                          else (result, default_type))
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, (bytes, bytearray)):
        body = json.dumps(_jsonable(body)).encode("utf-8")
        content_type = codecs.JSON
    return bytes(body), content_type
