"""What a request asks for, decided once: its format, the answer's format, the output.

A request's headers are read here and nowhere else.  :class:`RequestContext`
carries the raw headers a user's handler may want (Content-Type, Accept,
custom attributes, the inference id) and the decisions the built-in layers
use (:attr:`RequestContext.media`, :meth:`RequestContext.answer_type`,
:attr:`RequestContext.output`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

from sklearn_byoc.serve.errors import NotAcceptable, RequestError, UnsupportedContentType

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
# Every media type serve reads and writes, in the order error messages list them.
MEDIA_TYPES = (CSV, JSON, JSONLINES, NPY)
ALIASES = {
    "text/csv": CSV, "application/csv": CSV, "text/x-csv": CSV,
    "application/json": JSON, "text/json": JSON,
    "application/jsonlines": JSONLINES, "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES,
    "application/ndjson": JSONLINES,
    "application/x-npy": NPY, "application/npy": NPY,
}
OUTPUTS = ("label", "probabilities", "all")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"


@dataclass(frozen=True)
class MediaType:
    kind: str  # canonical, one of MEDIA_TYPES
    charset: str = "utf-8"
    # text/csv;header=present|absent: True, False, or None (decide from the rows).
    header: bool | None = None

    @property
    def utf8(self) -> bool:
        return self.charset in ("utf-8", "utf8")


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
            f"Content-Type {value!r} is not supported; send one of {', '.join(MEDIA_TYPES)}")
    charset = params.get("charset", "utf-8").lower()
    try:
        "".encode(charset)
    except LookupError:
        raise UnsupportedContentType(f"charset {charset!r} in Content-Type {value!r} is unknown; "
                                     "send UTF-8") from None
    header = params.get("header")
    if header is not None:
        header = header.lower()
        if header not in ("present", "absent"):
            raise RequestError(f"Content-Type {value!r}: header={header!r} must be present or "
                               "absent (or left out to let serve tell from the first row)")
        header = header == "present"
    return MediaType(canonical, charset, header)


def canonical_type(value: str) -> str | None:
    """The canonical media type a configured type names, or None."""
    return ALIASES.get(parse_media_type(value)[0])


def accept_type(value: str | None, default: str) -> str:
    """The best supported type of an Accept header (q-values honoured)."""
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
            resolved = default if default != CSV else JSON
        else:
            resolved = ALIASES.get(kind)
        if resolved:
            choices.append((-q, index, resolved))
    if not choices:
        raise NotAcceptable(f"Accept {value!r} names no supported type; accept one of "
                            f"{', '.join(MEDIA_TYPES)} (or */*)")
    return min(choices)[2]


def accept_header(value: str | None) -> bool:
    """Whether the Accept header asks CSV answers to start with a header row
    (``text/csv;header=present``)."""
    for item in (value or "").split(","):
        kind, params = parse_media_type(item)
        if ALIASES.get(kind) != CSV or "header" not in params:
            continue
        header = params["header"].lower()
        if header not in ("present", "absent"):
            raise NotAcceptable(f"Accept {item.strip()!r}: header={params['header']!r} must be "
                                "present or absent")
        return header == "present"
    return False


def output_choice(custom_attributes: str | None, default: str) -> str:
    """``output=probabilities`` in the custom attributes header picks the answer's content."""
    if not custom_attributes:
        return default
    for part in custom_attributes.replace(";", ",").split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "output":
            choice = value.strip().lower()
            if choice not in OUTPUTS:
                raise RequestError(f"custom attribute output={value.strip()!r} must be one of "
                                   f"{', '.join(OUTPUTS)}")
            return choice
    return default


def announced_length(content_length: str | None, transfer_encoding: str | None = None
                     ) -> int | None:
    """The body size the headers announce; None when they announce none (a chunked
    body, or no Content-Length).  gunicorn answers 400 to a value that is not a
    length before the app sees it; under any other server such a value counts as none."""
    if content_length is None or transfer_encoding:
        return None
    try:
        length = int(content_length)
    except ValueError:
        return None
    return length if length >= 0 else None


def environ_key(header: str) -> str:
    """Where WSGI keeps a request header (PEP 3333): ``HTTP_`` and the name in capitals,
    dashes as underscores."""
    return "HTTP_" + header.upper().replace("-", "_")


def environ_header(key: str) -> str:
    """The header name of a WSGI environ key: ``HTTP_X_AMZN_FOO`` -> ``X-Amzn-Foo``."""
    name = key[5:] if key.startswith("HTTP_") else key
    return "-".join(part.capitalize() for part in name.split("_"))


def new_request_id() -> str:
    """The id of a request that came without an X-Amzn-SageMaker-Inference-Id."""
    return os.urandom(8).hex()


CUSTOM_ATTRIBUTES_KEY = environ_key(CUSTOM_ATTRIBUTES)
INFERENCE_ID_KEY = environ_key(INFERENCE_ID)


@dataclass(frozen=True)
class RequestContext:
    """One request as a handler sees it: headers in, decisions made once.

    A user's ``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``
    that takes one more argument than AWS's signatures receives this object.
    """

    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    inference_id: str | None = None
    # The endpoint's defaults (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
    # SAGEMAKER_INFERENCE_OUTPUT).
    default_accept: str | None = None
    default_output: str = "label"
    # A batch transform job (SAGEMAKER_BATCH): one answer line per record.
    batch: bool = False
    request_id: str = field(default_factory=new_request_id)
    # The request's WSGI environ, where the headers are read from when asked for.
    environ: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: dict, **defaults) -> "RequestContext":
        """``defaults``: the endpoint's default accept and output, and the request id."""
        return cls(content_type=environ.get("CONTENT_TYPE"), accept=environ.get("HTTP_ACCEPT"),
                   custom_attributes=environ.get(CUSTOM_ATTRIBUTES_KEY),
                   inference_id=environ.get(INFERENCE_ID_KEY), environ=environ,
                   **defaults)

    @cached_property
    def headers(self) -> dict:
        """The request's headers by their usual names (``Content-Type``, ``Accept``, ...)."""
        environ = self.environ or {}
        found = {environ_header(key): value for key, value in environ.items()
                 if key.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                found[environ_header(key)] = environ[key]
        return found

    def validate(self, *, writes_answer: bool) -> None:
        """Refuses, before any layer runs, what no answer can satisfy: an unknown
        ``output=`` (400) and, when the built-in output layer writes the answer
        (``writes_answer``), an Accept it cannot write (406).  The decisions are kept
        for the layers that use them."""
        for decision in ("output", "answer_type", "answer_header") if writes_answer \
                else ("output",):
            getattr(self, decision)  # decided and cached now; a refusal raises here

    @cached_property
    def media(self) -> MediaType:
        return content_type(self.content_type)

    @cached_property
    def output(self) -> str:
        return output_choice(self.custom_attributes, self.default_output)

    @cached_property
    def answer_type(self) -> str:
        """The answer's media type: Accept, else the endpoint's default, else the request's."""
        return accept_type(self.accept, self.default_accept or self.media.kind)

    @cached_property
    def answer_header(self) -> bool:
        """Whether a CSV answer starts with a row naming its columns (the classes)."""
        if self.answer_type != CSV or not accept_header(self.accept):
            return False
        if self.batch:
            raise RequestError(
                f"Accept {self.accept!r}: a batch transform job joins one answer line per "
                "record, so an answer cannot start with a header row; leave ;header=present "
                "out of the job's Accept")
        return True

    @property
    def handler_accept(self) -> str:
        """What AWS's containers pass a user's output_fn: Accept, else the default."""
        accept = (self.accept or "").strip()
        if accept and accept not in ("*/*", "*"):
            return accept
        return self.default_accept or self.handler_content_type

    @property
    def handler_content_type(self) -> str:
        return self.content_type or CSV
